"""RouteLLM's binary-correctness table (Mixtral-8x7B vs GPT-4) as graded calls.

Source: ``data/routellm/binary_correctness.csv.gz`` (lm-sys/RouteLLM,
``routellm/evals``): columns ``prompt``, one column per model holding
``True``/``False``, and ``task`` (``gsm8k`` or ``mmlu:<subject>``). Every cell
is a record, so every row yields one call per model.

``request_id`` is ``routellm-<task>-<row>``, the row being the 0-based index
of the data row. The file repeats a few MMLU questions within a subject (with
identical grades); ids from the prompt text would merge those rows into one
request answered twice by the same model, which is not what happened.

The answers themselves are not in the file: ``output_tokens`` stays unset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from router_model.calls import GradedCall
from router_model.features import tokens_for_chars
from training.importers._common import (
    GRADER_EXACT_MATCH,
    CsvTable,
    Where,
    fixed_time,
    ladder_models,
    open_text,
)

SOURCE = "routellm"
TIERS_FILE = "routellm.toml"
TIMESTAMP = fixed_time("2024-05-01T00:00:00+00:00")
BASE_COLUMNS = ("prompt", "task")
BOOLEANS = {"true": 1.0, "false": 0.0}


def iter_calls(src: Path, *, all_models: bool = False) -> Iterator[GradedCall]:
    """Calls of the ladder's models, or of every model column with ``all_models``."""
    with open_text(src) as handle:
        table = CsvTable(src, handle)
        table.require(BASE_COLUMNS)
        models: Sequence[str] = (
            [column for column in table.header if column not in BASE_COLUMNS]
            if all_models
            else ladder_models(TIERS_FILE)
        )
        table.require(models)
        for index, (where, row) in enumerate(table):
            yield from _row_calls(index, where, row, models)


def _row_calls(
    index: int, where: Where, row: dict[str, str], models: Sequence[str]
) -> Iterator[GradedCall]:
    prompt, task = row["prompt"], row["task"].strip()
    if not prompt.strip():
        raise where.error("must not be empty", "prompt")
    if not task:
        raise where.error("must not be empty", "task")
    input_tokens = tokens_for_chars(len(prompt))
    tags = {"source": SOURCE, "task": task}
    for model in models:
        yield GradedCall(
            request_id=f"{SOURCE}-{task}-{index}",
            timestamp=TIMESTAMP,
            model=model,
            prompt=prompt,
            input_tokens=input_tokens,
            grade=_boolean(row[model], where, model),
            grader=GRADER_EXACT_MATCH,
            tags=tags,
        )


def _boolean(text: str, where: Where, field: str) -> float:
    value = BOOLEANS.get(text.strip().lower())
    if value is None:
        raise where.error(f"must be True or False, got {text!r}", field)
    return value
