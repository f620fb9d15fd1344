"""Plumbing shared by the importers: opening sources, reading records, estimates.

Every importer streams its source and turns any defect into a ``DataFileError``
that names the file and line, so these helpers all take a ``Where`` to say so.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

from router_model.errors import DataFileError
from router_model.tiers import TierLadder

GZIP_MAGIC = b"\x1f\x8b"
GRADER_EXACT_MATCH = "exact_match"


@dataclass(frozen=True)
class Where:
    """A record's location, so every error can point at it."""

    path: Path
    line: int | None

    def error(self, message: str, field: str | None = None) -> DataFileError:
        return DataFileError(str(self.path), self.line, message, field)


def fixed_time(text: str) -> datetime:
    """A data set's nominal call time; evaluation runs publish no per-call times."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"fixed time needs a UTC offset: {text!r}")
    return parsed


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Open plain or gzip text, told apart by content so a renamed file still reads."""
    try:
        with path.open("rb") as raw:
            magic = raw.read(2)
    except FileNotFoundError:
        raise DataFileError(str(path), None, "file not found") from None
    except IsADirectoryError:
        raise DataFileError(str(path), None, "is a folder, expected a data file") from None
    if magic == GZIP_MAGIC:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            yield handle
    else:
        with path.open(encoding="utf-8", newline="") as plain:
            yield plain


def numbered_lines(path: Path, handle: TextIO) -> Iterator[tuple[int, str]]:
    """Lines with 1-based numbers; undecodable bytes or a broken gzip stream name the line."""
    line_no = 0
    lines = iter(handle)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataFileError(str(path), line_no + 1, f"cannot read: {exc}") from None
        line_no += 1
        yield line_no, line


def jsonl_objects(path: Path, handle: TextIO) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Decoded JSON objects of a JSON Lines file, blank lines skipped."""
    for line_no, line in numbered_lines(path, handle):
        if not line.strip():
            continue
        where = Where(path, line_no)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise where.error(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise where.error("expected a JSON object")
        yield where, obj


class CsvTable:
    """A CSV file with a header, read row by row as dicts.

    The header is read on construction so importers can pick their columns (and
    fail on missing ones) before the first row.
    """

    def __init__(self, path: Path, handle: TextIO) -> None:
        self.path = path
        self._lines = (line for _, line in numbered_lines(path, handle))
        self._reader = csv.reader(self._lines, strict=True)
        header = self._next_row()
        if header is None:
            raise DataFileError(str(path), 1, "empty file, expected a CSV header")
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise DataFileError(str(path), 1, f"duplicate columns {duplicates}")
        self.header: tuple[str, ...] = tuple(header)

    def require(self, columns: Iterable[str]) -> None:
        for column in columns:
            if column not in self.header:
                raise DataFileError(str(self.path), 1, f"missing column '{column}'", column)

    def __iter__(self) -> Iterator[tuple[Where, dict[str, str]]]:
        while True:
            start = self._reader.line_num + 1
            row = self._next_row()
            if row is None:
                return
            if not row:
                continue
            where = Where(self.path, start)
            if len(row) != len(self.header):
                raise where.error(f"expected {len(self.header)} fields, got {len(row)}")
            yield where, dict(zip(self.header, row, strict=True))

    def _next_row(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise DataFileError(
                str(self.path), self._reader.line_num, f"malformed CSV: {exc}"
            ) from None


def require_str(obj: Mapping[str, Any], key: str, where: Where) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise where.error(f"must be a non-empty string, got {value!r}", key)
    return value


def unit_grade(value: Any, where: Where, field: str) -> float:
    """A grade must be a real number in [0, 1]; booleans are rejected as ambiguous."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"must be a number in [0, 1], got {value!r}", field)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise where.error(f"must be in [0, 1], got {value!r}", field)
    return float(value)


def count_cell(text: str, where: Where, field: str) -> int | None:
    """A non-negative whole number, possibly written as a float ("192.0"); empty = None."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise where.error(f"must be a whole number, got {text!r}", field) from None
    if not math.isfinite(value) or value < 0 or not value.is_integer():
        raise where.error(f"must be a non-negative whole number, got {text!r}", field)
    return int(value)


@cache
def ladder_text(tiers_file: str) -> str:
    """A shipped tiers file, read as package data so installs without the repo work."""
    return (files("training") / "tiers" / tiers_file).read_text(encoding="utf-8")


@cache
def ladder_models(tiers_file: str) -> tuple[str, ...]:
    """Every model id a shipped ladder maps, cheapest tier first.

    Importers emit exactly these by default, so which models form a data set's
    ladder is configuration, kept with the prices, not a table in code.
    """
    ladder = TierLadder.from_dict(tomllib.loads(ladder_text(tiers_file)), source=tiers_file)
    return tuple(model for tier in ladder.tiers for model in tier.model_ids())
