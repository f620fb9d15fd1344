"""The shared call log: a PostgreSQL table that several services append to at once.

Opening the store does not connect: the first operation does, and creates the
tables if they are missing. A service therefore starts even while its
database is down, and its writer keeps retrying until the database is back.
Each append is one transaction, and PostgreSQL's commit is what makes an
acknowledged record durable; a server configured with
``synchronous_commit = off`` would acknowledge before the WAL is flushed, so
the store turns it back on for its own connections.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from router_model.calls import GradedCall
from router_model.errors import ConfigError
from serving.calllog.privacy import PromptPolicy
from serving.calllog.store import (
    Row,
    check_grade,
    check_range,
    from_record,
    redact_url,
    to_row,
    with_grade,
)

if TYPE_CHECKING:
    from psycopg import Connection

SCHEMA_VERSION = 1
POOL_WAIT_S = 30.0
_SCHEMA_LOCK = 0x7469657277697365  # any constant; serialises concurrent table creation
_SCHEMA = (
    "CREATE TABLE calls_schema_version (version integer NOT NULL)",
    """CREATE TABLE calls (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id text NOT NULL,
        ts timestamptz NOT NULL,
        model text NOT NULL,
        tier text,
        grade double precision,
        grader text,
        cost_usd double precision,
        input_tokens bigint,
        output_tokens bigint,
        latency_ms double precision,
        record jsonb NOT NULL
    )""",
    "CREATE INDEX calls_ts_idx ON calls (ts, id)",
    "CREATE INDEX calls_request_id_idx ON calls (request_id, model)",
    "CREATE INDEX calls_ungraded_idx ON calls (ts) WHERE grade IS NULL",
)
_INSERT = """INSERT INTO calls (request_id, ts, model, tier, grade, grader, cost_usd,
    input_tokens, output_tokens, latency_ms, record)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""


class PostgresStore:
    """A ``CallLogStore`` in PostgreSQL, with a small pool of connections.

    Threads share the pool (at most ``max_connections`` connections); a
    connection that failed is closed rather than reused. PostgreSQL cannot
    store the NUL character, so NULs in a record are written as U+FFFD.
    """

    def __init__(
        self, url: str, policy: PromptPolicy | None = None, *, max_connections: int = 4
    ) -> None:
        try:
            from psycopg import conninfo
        except ModuleNotFoundError:
            raise ConfigError(
                "postgresql:// call logs need psycopg: pip install 'tierwise[serve]'"
            ) from None
        try:
            params = conninfo.conninfo_to_dict(url)
        except Exception as exc:
            message = str(exc).replace(url, redact_url(url))  # libpq quotes the URL it rejects
            raise ConfigError(f"call log {redact_url(url)!r}: malformed URL: {message}") from None
        defaults = {"application_name": "tierwise-calllog", "connect_timeout": "5"}
        self._conninfo = conninfo.make_conninfo(
            url, **{k: v for k, v in defaults.items() if k not in params}
        )
        self._where = redact_url(url)
        self._policy = policy or PromptPolicy()
        self._pool = _Pool(self._connect, max_connections)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def append(self, calls: Sequence[GradedCall]) -> None:
        from psycopg.types.json import Jsonb

        rows = [_without_nul_row(to_row(call, self._policy)) for call in calls]
        if not rows:
            return
        params = [
            (
                r.request_id,
                r.timestamp,
                r.model,
                r.tier,
                r.grade,
                r.grader,
                r.cost_usd,
                r.input_tokens,
                r.output_tokens,
                r.latency_ms,
                Jsonb(r.record),
            )
            for r in rows
        ]
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(_INSERT, params)

    def iter_calls(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[GradedCall]:
        check_range(since, until)
        clauses: list[str] = []
        params: list[datetime] = []
        if since is not None:
            clauses.append("ts >= %s")
            params.append(since)
        if until is not None:
            clauses.append("ts < %s")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._iter(f"SELECT id, record FROM calls {where} ORDER BY ts, id", params)

    def set_grade(
        self, request_id: str, grade: float, grader: str, model: str | None = None
    ) -> int:
        from psycopg.types.json import Jsonb

        grade = check_grade(grade, grader)
        query = "SELECT id, record FROM calls WHERE request_id = %s"
        params = [request_id]
        if model is not None:
            query += " AND model = %s"
            params.append(model)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            found = cur.execute(query + " FOR UPDATE", params).fetchall()
            updates = [
                (grade, grader, Jsonb(with_grade(record, grade, grader)), row_id)
                for row_id, record in found
            ]
            cur.executemany(
                "UPDATE calls SET grade = %s, grader = %s, record = %s WHERE id = %s", updates
            )
        return len(updates)

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    def _iter(self, query: str, params: list[datetime]) -> Iterator[GradedCall]:
        """Stream through a server-side cursor, so an export never holds the table in memory."""
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name=f"calls_{uuid.uuid4().hex}") as cur,
        ):
            cur.itersize = 1000
            cur.execute(query, params)
            for row_id, record in cur:
                yield from_record(record, f"{self._where}: row {row_id}")

    def _connect(self) -> Connection[tuple[Any, ...]]:
        import psycopg

        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            # A clear one-line error for the command line; the writer retries it like any other.
            raise ConfigError(f"call log {self._where}: cannot connect: {exc}") from exc
        try:
            if conn.execute("SHOW synchronous_commit").fetchone() == ("off",):
                conn.execute("SET synchronous_commit TO on")
            with self._schema_lock:
                if not self._schema_ready:
                    _ensure_schema(conn, self._where)
                    self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        return conn


def _ensure_schema(conn: Connection[tuple[Any, ...]], where: str) -> None:
    """Create the tables if missing; the advisory lock makes racing services take turns."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = conn.execute(
            "SELECT to_regclass('calls_schema_version') IS NOT NULL, "
            "to_regclass('calls') IS NOT NULL"
        ).fetchone()
        assert row is not None
        has_version, has_calls = row
        if not has_version:
            if has_calls:
                raise ConfigError(f"call log {where}: table 'calls' is not a tierwise call log")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO calls_schema_version VALUES (%s)", (SCHEMA_VERSION,))
            return
        found = conn.execute("SELECT max(version) FROM calls_schema_version").fetchone()
    version = found[0] if found else None
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"call log {where}: schema version {version}, but this tierwise reads "
            f"version {SCHEMA_VERSION}"
        )


class _Pool:
    """At most ``size`` connections; idle ones are reused, failed ones are dropped."""

    def __init__(self, connect: Callable[[], Connection[tuple[Any, ...]]], size: int) -> None:
        if size < 1:
            raise ConfigError(f"max_connections must be at least 1, got {size}")
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Connection[tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Connection[tuple[Any, ...]]]:
        from psycopg import pq

        if not self._slots.acquire(timeout=POOL_WAIT_S):
            raise TimeoutError(f"no free PostgreSQL connection within {POOL_WAIT_S:g} s")
        try:
            with self._lock:
                if self._closed:
                    raise ConfigError("the call-log store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            try:
                yield conn
            finally:
                idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
                healthy = not conn.closed and idle
                with self._lock:
                    if healthy and not self._closed:
                        self._idle.append(conn)
                    else:
                        conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _without_nul_row(row: Row) -> Row:
    if "\\u0000" not in row.record_json:  # json.dumps always escapes NUL
        return row
    return replace(
        row,
        request_id=_without_nul(row.request_id),
        model=_without_nul(row.model),
        tier=_without_nul(row.tier),
        grader=_without_nul(row.grader),
        record=_without_nul(row.record),
    )


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value
