"""MMLU-Pro's wide grade table (one row per question) as graded calls.

Source: ``data/mmlu_pro/graded_wide.csv.gz``, built from the per-model output
archives of TIGER-AI-Lab/MMLU-Pro. Each row is one question; for every model
there is ``correct:<model>`` (1/0, written ``1``/``0`` or ``1.0``/``0.0``;
empty = that model has no record for the question, so no call is emitted) and
``out_chars:<model>`` (length of the model's answer text).

The router sees what the models saw: the question, then one line per option
(``A. ...``, ``B. ...``). Token counts are estimates (about four characters
per token) because the source records text lengths, not usage; the output
estimate matters because answer lengths differ tenfold between models.

Calls carry the fixed time ``TIMESTAMP``: the evaluation published no call
times, and a constant keeps re-imports byte-identical.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator, Sequence
from pathlib import Path

from router_model.calls import GradedCall
from router_model.features import tokens_for_chars
from training.importers._common import (
    GRADER_EXACT_MATCH,
    CsvTable,
    Where,
    count_cell,
    fixed_time,
    ladder_models,
    open_text,
)

SOURCE = "mmlu-pro"
TIERS_FILE = "mmlu_pro.toml"
TIMESTAMP = fixed_time("2024-10-01T00:00:00+00:00")
BASE_COLUMNS = ("question_id", "category", "question", "options")
CORRECT = "correct:"
OUT_CHARS = "out_chars:"
LETTERS = string.ascii_uppercase


def iter_calls(src: Path, *, all_models: bool = False) -> Iterator[GradedCall]:
    """Calls of the ladder's models, or of every model in the file with ``all_models``.

    The other models are not on any price ladder but still say how hard a
    question is for models in general, which later work may use as signal.
    """
    with open_text(src) as handle:
        table = CsvTable(src, handle)
        table.require(BASE_COLUMNS)
        models = _models(table, all_models)
        for where, row in table:
            yield from _row_calls(where, row, models)


def _models(table: CsvTable, all_models: bool) -> Sequence[str]:
    if all_models:
        models: Sequence[str] = [
            column.removeprefix(CORRECT) for column in table.header if column.startswith(CORRECT)
        ]
    else:
        models = ladder_models(TIERS_FILE)
    table.require(f"{prefix}{model}" for model in models for prefix in (CORRECT, OUT_CHARS))
    return models


def _row_calls(where: Where, row: dict[str, str], models: Sequence[str]) -> Iterator[GradedCall]:
    question_id = _non_empty(row, "question_id", where)
    category = _non_empty(row, "category", where)
    prompt = _prompt(_non_empty(row, "question", where), _options(row["options"], where))
    input_tokens = tokens_for_chars(len(prompt))
    tags = {"source": SOURCE, "category": category}
    for model in models:
        grade = _correct_cell(row[CORRECT + model], where, CORRECT + model)
        if grade is None:
            continue
        out_chars = count_cell(row[OUT_CHARS + model], where, OUT_CHARS + model)
        yield GradedCall(
            request_id=f"{SOURCE}-{question_id}",
            timestamp=TIMESTAMP,
            model=model,
            prompt=prompt,
            input_tokens=input_tokens,
            output_tokens=None if out_chars is None else tokens_for_chars(out_chars),
            grade=grade,
            grader=GRADER_EXACT_MATCH,
            tags=tags,
        )


def _prompt(question: str, options: Sequence[str]) -> str:
    lines = [question, *(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))]
    return "\n".join(lines)


def _options(text: str, where: Where) -> list[str]:
    """The JSON list of answer options; stray padding around an option is dropped."""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise where.error(f"malformed JSON list: {exc.msg}", "options") from None
    if (
        not isinstance(options, list)
        or not 0 < len(options) <= len(LETTERS)
        or not all(isinstance(option, str) for option in options)
    ):
        raise where.error(f"must be a JSON list of 1 to {len(LETTERS)} strings", "options")
    return [option.strip() for option in options]


def _correct_cell(text: str, where: Where, field: str) -> float | None:
    """1/0 (pandas writes 1.0/0.0 in columns with gaps); empty = no record."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value not in (0.0, 1.0):
        raise where.error(f"must be 0 or 1 (or empty), got {text!r}", field)
    return value


def _non_empty(row: dict[str, str], column: str, where: Where) -> str:
    value = row[column]
    if not value.strip():
        raise where.error("must not be empty", column)
    return value
