"""The embedded call log: one SQLite file in WAL mode with ``synchronous=FULL``.

WAL lets exports and grading read while the writer appends, and lets several
processes on one host share the file. ``synchronous=FULL`` makes every commit
wait for fsync, which is what lets ``append`` promise that its records
survive a crash of the process (and of the machine) once it returns; the cost
is one fsync per batch, which the writer's batching keeps small.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from router_model.calls import GradedCall
from router_model.errors import ConfigError, InvalidInputError
from serving.calllog.privacy import PromptPolicy
from serving.calllog.store import check_grade, check_range, from_record, to_row, with_grade

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEMA = (
    "CREATE TABLE calls_schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        model TEXT NOT NULL,
        tier TEXT,
        grade REAL,
        grader TEXT,
        cost_usd REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        latency_ms REAL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX calls_ts ON calls (ts_us, id)",
    "CREATE INDEX calls_request_id ON calls (request_id, model)",
    "CREATE INDEX calls_ungraded ON calls (ts_us) WHERE grade IS NULL",
)
_INSERT = """INSERT INTO calls (request_id, ts_us, model, tier, grade, grader, cost_usd,
    input_tokens, output_tokens, latency_ms, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


class SQLiteStore:
    """A ``CallLogStore`` in one SQLite file; safe to share between threads.

    Writes go through one connection under a lock; each ``iter_calls`` opens
    its own connection and reads one consistent snapshot, so a long export
    neither blocks nor sees half of a concurrent batch.
    """

    def __init__(
        self, path: str | Path, policy: PromptPolicy | None = None, *, create: bool = True
    ) -> None:
        self.path = Path(path).absolute()
        self._policy = policy or PromptPolicy()
        self._lock = threading.Lock()
        if not self.path.parent.is_dir():
            raise ConfigError(f"call log {self.path}: directory {self.path.parent} does not exist")
        if not create and not self.path.exists():
            raise ConfigError(f"call log {self.path} does not exist")
        self._conn = self._connect()
        try:
            self._ensure_schema()
        except BaseException:
            self._conn.close()
            raise

    def append(self, calls: Sequence[GradedCall]) -> None:
        rows = [to_row(call, self._policy) for call in calls]
        params = [
            (
                r.request_id,
                _micros(r.timestamp),
                r.model,
                r.tier,
                r.grade,
                r.grader,
                r.cost_usd,
                r.input_tokens,
                r.output_tokens,
                r.latency_ms,
                r.record_json,
            )
            for r in rows
        ]
        if not params:
            return
        with self._lock, _transaction(self._conn):
            self._conn.executemany(_INSERT, params)

    def iter_calls(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[GradedCall]:
        check_range(since, until)
        clauses: list[str] = []
        params: list[int] = []
        if since is not None:
            clauses.append("ts_us >= ?")
            params.append(_micros(since))
        if until is not None:
            clauses.append("ts_us < ?")
            params.append(_micros(until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._iter(f"SELECT id, record FROM calls {where} ORDER BY ts_us, id", params)

    def set_grade(
        self, request_id: str, grade: float, grader: str, model: str | None = None
    ) -> int:
        grade = check_grade(grade, grader)
        query = "SELECT id, record FROM calls WHERE request_id = ?"
        params = [request_id]
        if model is not None:
            query += " AND model = ?"
            params.append(model)
        with self._lock, _transaction(self._conn):
            found = self._conn.execute(query, params).fetchall()
            updates = [
                (grade, grader, _dumps(with_grade(_loads(text, row_id), grade, grader)), row_id)
                for row_id, text in found
            ]
            self._conn.executemany(
                "UPDATE calls SET grade = ?, grader = ?, record = ? WHERE id = ?", updates
            )
        return len(updates)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _iter(self, query: str, params: list[int]) -> Iterator[GradedCall]:
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            for row_id, text in conn.execute(query, params):
                yield from_record(_loads(text, row_id), f"{self.path}: row {row_id}")
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"call log {self.path}: cannot open: {exc}") from None
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode != "wal":
                raise ConfigError(
                    f"call log {self.path}: SQLite refused WAL mode (got {mode!r}); "
                    "use a local file system"
                )
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(f"call log {self.path}: not a usable SQLite file: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self) -> None:
        """Create the tables in an empty file; refuse a file some other program owns."""
        with _transaction(self._conn):
            found = self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {name for (name,) in found}
            if "calls_schema_version" not in tables:
                foreign = sorted(tables - {"sqlite_sequence"})
                if foreign:
                    raise ConfigError(
                        f"call log {self.path}: a SQLite database but not a tierwise call log "
                        f"(it has tables {foreign})"
                    )
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                self._conn.execute("INSERT INTO calls_schema_version VALUES (?)", (SCHEMA_VERSION,))
                return
            row = self._conn.execute("SELECT max(version) FROM calls_schema_version").fetchone()
        if row[0] != SCHEMA_VERSION:
            raise ConfigError(
                f"call log {self.path}: schema version {row[0]}, but this tierwise reads "
                f"version {SCHEMA_VERSION}"
            )


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so a busy file waits, not fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, exact, so ordering and filters agree with the record."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def _loads(text: str, row_id: int) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"row {row_id}: stored record is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"row {row_id}: stored record is not a JSON object")
    return record
