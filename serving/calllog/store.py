"""What every call-log store promises, and how a store is chosen from a URL.

The protocol is the whole contract between the writer, the grading helpers,
the command line and the storage backends, so a new backend only has to
implement four methods. The helpers below hold the rules both backends share
(what a valid record is, which columns are copied out of it) so that SQLite
and PostgreSQL cannot drift apart.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from router_model.calls import GradedCall, parse_call
from router_model.errors import ConfigError, InvalidInputError
from serving.calllog.privacy import PromptMode, PromptPolicy

STORE_URL_ENV = "TIERWISE_CALL_LOG"
DEFAULT_STORE_URL = "sqlite:///tierwise-calls.db"
SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class CallLogStore(Protocol):
    """A durable, append-mostly table of graded calls.

    ``append`` returns only once its records are committed: a crash of the
    process after it returns cannot lose them. ``iter_calls`` yields calls in
    timestamp order, ``since`` inclusive and ``until`` exclusive (both must
    carry a UTC offset). ``set_grade`` updates every call of ``request_id``
    (only those answered by ``model`` when given) and returns how many it
    updated.
    """

    def append(self, calls: Sequence[GradedCall]) -> None: ...

    def iter_calls(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[GradedCall]: ...

    def set_grade(
        self, request_id: str, grade: float, grader: str, model: str | None = None
    ) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Row:
    """The indexed columns of one call plus its full record."""

    request_id: str
    timestamp: datetime
    model: str
    tier: str | None
    grade: float | None
    grader: str | None
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    record: dict[str, Any]
    record_json: str


def default_store_url() -> str:
    return os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL


def open_store(
    url: str,
    *,
    prompt_mode: PromptMode = "text",
    hash_key: str | bytes | None = None,
    create: bool = True,
) -> CallLogStore:
    """Open the store a URL names, creating its tables if needed.

    ``sqlite:///calls.db`` is relative to the working directory and
    ``sqlite:////var/lib/tierwise/calls.db`` absolute, as in SQLAlchemy;
    ``postgresql://user:pass@host:port/db`` is handed to libpq unchanged, so
    its query parameters (``sslmode``, ``options``) work as documented there.
    ``create=False`` refuses a SQLite file that does not exist yet, so that a
    reader given a mistyped path fails instead of reading an empty new log.
    """
    policy = PromptPolicy.create(prompt_mode, hash_key)
    if url.startswith(SQLITE_PREFIX):
        from serving.calllog.sqlite_store import SQLiteStore

        path = url.removeprefix(SQLITE_PREFIX)
        if not path or path == ":memory:":
            raise ConfigError(f"call-log URL {url!r} needs a file path, e.g. sqlite:///calls.db")
        return SQLiteStore(path, policy, create=create)
    if url.startswith(POSTGRES_PREFIXES):
        from serving.calllog.postgres_store import PostgresStore

        return PostgresStore(url, policy)
    raise ConfigError(
        f"unsupported call-log URL {redact_url(url)!r}: use sqlite:///path/to/calls.db "
        "or postgresql://user:password@host:port/dbname"
    )


def redact_url(url: str) -> str:
    """The URL without its password, for messages that may reach logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def to_row(call: GradedCall, policy: PromptPolicy) -> Row:
    """Apply the prompt policy and check that the record will read back equal.

    Checking here, before anything is written, turns a call that could never
    be read back (a naive timestamp, a grade of 1.5) into an
    ``InvalidInputError`` at write time instead of a broken export later.
    """
    stored = policy.apply(call)
    record = stored.to_json()
    parsed = parse_call(record)
    try:
        record_json = json.dumps(record, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"extra fields must be plain JSON values: {exc}") from None
    return Row(
        request_id=parsed.request_id,
        timestamp=parsed.timestamp,
        model=parsed.model,
        tier=parsed.tier,
        grade=parsed.grade,
        grader=parsed.grader,
        cost_usd=parsed.cost_usd,
        input_tokens=parsed.input_tokens,
        output_tokens=parsed.output_tokens,
        latency_ms=parsed.latency_ms,
        record=record,
        record_json=record_json,
    )


def from_record(record: Any, where: str) -> GradedCall:
    """Parse a stored record; a corrupt row names itself instead of failing vaguely."""
    try:
        return parse_call(record)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: stored record is malformed: {exc}") from None


def with_grade(record: dict[str, Any], grade: float, grader: str) -> dict[str, Any]:
    return {**record, "grade": grade, "grader": grader}


def check_grade(grade: float, grader: str) -> float:
    if isinstance(grade, bool) or not isinstance(grade, int | float):
        raise InvalidInputError(f"must be a number, got {grade!r}", "grade")
    if not math.isfinite(grade) or not 0.0 <= grade <= 1.0:
        raise InvalidInputError(f"must be in [0, 1], got {grade!r}", "grade")
    if not grader:
        raise InvalidInputError("must be a non-empty string", "grader")
    return float(grade)


def check_range(since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInputError(f"needs a UTC offset, got {value.isoformat()}", name)
