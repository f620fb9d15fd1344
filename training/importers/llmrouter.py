"""LLMRouter's routing training set as graded calls.

Source: ``data/llmrouter/train.jsonl.gz`` (ulab-uiuc/LLMRouter), one line per
prompt: ``{"split", "task", "prompt", "scores": {model: grade}}``. Each
(prompt, model) pair becomes one call; a model missing from ``scores`` or
scored ``null`` has no record for that prompt and yields no call.

The file has no ids, so ``request_id`` is derived from the prompt text (SHA-1,
16 hex digits): stable across re-imports and across copies of the file. It
has no output texts either, so ``output_tokens`` stays unset and cost falls
back to the ladder's typical output length.

Grades are 0/1 except on ``commongen``, whose scores are partial credit
(F1-style overlap); those calls are marked ``validator:f1`` so a reader knows a
0.4 there is not a coin flip. (``natural_qa`` and ``trivia_qa`` are also
open-answer tasks, but their scores in this file are strictly 0 or 1.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from router_model.calls import GradedCall
from router_model.features import tokens_for_chars
from training.importers._common import (
    GRADER_EXACT_MATCH,
    Where,
    fixed_time,
    jsonl_objects,
    ladder_models,
    open_text,
    require_str,
    unit_grade,
)

SOURCE = "llmrouter"
TIERS_FILE = "llmrouter.toml"
TIMESTAMP = fixed_time("2025-06-01T00:00:00+00:00")
PARTIAL_CREDIT_TASKS = frozenset({"commongen"})
GRADER_F1 = "validator:f1"


def iter_calls(src: Path, *, all_models: bool = False) -> Iterator[GradedCall]:
    """Calls of the ladder's three models, or of all nine with ``all_models``."""
    wanted = None if all_models else ladder_models(TIERS_FILE)
    with open_text(src) as handle:
        for where, obj in jsonl_objects(src, handle):
            yield from _line_calls(where, obj, wanted)


def request_id(prompt: str) -> str:
    return f"{SOURCE}-{hashlib.sha1(prompt.encode('utf-8')).hexdigest()[:16]}"


def _line_calls(
    where: Where, obj: dict[str, Any], wanted: Sequence[str] | None
) -> Iterator[GradedCall]:
    task = require_str(obj, "task", where)
    prompt = require_str(obj, "prompt", where)
    scores = obj.get("scores")
    if not isinstance(scores, dict):
        raise where.error(f"must be an object of model -> grade, got {scores!r}", "scores")
    models = list(scores) if wanted is None else [m for m in wanted if m in scores]
    grader = GRADER_F1 if task in PARTIAL_CREDIT_TASKS else GRADER_EXACT_MATCH
    tags = {"source": SOURCE, "task": task}
    rid, input_tokens = request_id(prompt), tokens_for_chars(len(prompt))
    for model in models:
        if scores[model] is None:
            continue
        if not model:
            raise where.error("model names must be non-empty", "scores")
        yield GradedCall(
            request_id=rid,
            timestamp=TIMESTAMP,
            model=model,
            prompt=prompt,
            input_tokens=input_tokens,
            grade=unit_grade(scores[model], where, f"scores.{model}"),
            grader=grader,
            tags=tags,
        )
