"""Reading JSON Lines files where every line must parse, or the error says where.

Shared by every reader of line-oriented input (graded calls, routing
requests) so that all of them report a bad line the same way:
``path:line: field 'x': what is wrong``. Blank lines carry no record and are
skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from router_model.errors import DataFileError, InvalidInputError

T = TypeVar("T")


def iter_records(path: str | Path, parse: Callable[[Any], T]) -> Iterator[tuple[int, T]]:
    """Yield ``(line_number, parse(decoded_json))`` for each non-blank line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(str(path), None, "file not found") from None
    with handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            yield line_no, _parse_line(str(path), line_no, line, parse)


def read_records(path: str | Path, parse: Callable[[Any], T], what: str) -> list[T]:
    """Every record of a file; an empty file is an error naming ``what`` it lacks."""
    records = [record for _, record in iter_records(path, parse)]
    if not records:
        raise DataFileError(str(path), None, f"no {what} in file (it is empty)")
    return records


def _parse_line(path: str, line_no: int, line: str, parse: Callable[[Any], T]) -> T:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        message = f"malformed JSON: {exc.msg} (column {exc.colno})"
        raise DataFileError(path, line_no, message) from None
    try:
        return parse(obj)
    except InvalidInputError as exc:
        message = str(exc).removeprefix(f"field '{exc.field}': ") if exc.field else str(exc)
        raise DataFileError(path, line_no, message, exc.field) from None
