"""The SQLite call log on a real file: round trips, filters, grades, privacy, schema checks."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from calllog_support import T0, make_call, rich_calls

from router_model.calls import GradedCall, parse_call
from router_model.errors import ConfigError, InvalidInputError
from serving.calllog import (
    HASH_KEY_ENV,
    SQLiteStore,
    answer_text,
    apply_feedback,
    grade_with_validator,
    open_store,
    prompt_hmac,
)

KEY = "k" * 32


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "calls.db"


def test_records_round_trip(db: Path) -> None:
    calls = rich_calls()
    store = open_store(f"sqlite:///{db}")
    store.append(calls)
    assert list(store.iter_calls()) == calls
    store.close()
    raw = sqlite3.connect(db).execute("SELECT record FROM calls ORDER BY id").fetchall()
    assert [parse_call(json.loads(text)) for (text,) in raw] == calls


def test_file_is_wal_with_indexed_columns(db: Path) -> None:
    SQLiteStore(db).append([rich_calls()[0]])
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    row = conn.execute(
        "SELECT request_id, model, tier, grade, cost_usd, input_tokens, latency_ms FROM calls"
    ).fetchone()
    assert row == ("r0000000", "claude-haiku-4-5", "haiku", None, 2.7e-5, 12, 412.5)


def test_since_until_filter_in_time_order(db: Path) -> None:
    store = SQLiteStore(db)
    plus_two = timezone(timedelta(hours=2))
    # Appended out of order, one with a non-UTC offset: order is by instant, not insertion.
    store.append(
        [
            make_call(5),
            make_call(1),
            make_call(3, timestamp=(T0 + timedelta(seconds=3)).astimezone(plus_two)),
        ]
    )
    store.append([make_call(2), make_call(4)])
    ids = [c.request_id for c in store.iter_calls()]
    assert ids == ["r0000001", "r0000002", "r0000003", "r0000004", "r0000005"]
    window = store.iter_calls(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
    assert [c.request_id for c in window] == ["r0000002", "r0000003"]
    assert list(store.iter_calls(since=T0 + timedelta(days=1))) == []
    with pytest.raises(InvalidInputError, match="since"):
        list(store.iter_calls(since=datetime(2025, 1, 1)))


def test_set_grade_updates_columns_and_record(db: Path) -> None:
    store = SQLiteStore(db)
    store.append([make_call(1), make_call(1, model="claude-opus-4-1"), make_call(2)])
    assert store.set_grade("r0000001", 0.25, "user", model="claude-opus-4-1") == 1
    assert store.set_grade("r0000001", 1 / 3, "validator:json") == 2
    assert store.set_grade("missing", 1.0, "user") == 0
    graded = [c for c in store.iter_calls() if c.request_id == "r0000001"]
    assert [(c.grade, c.grader) for c in graded] == [(1 / 3, "validator:json")] * 2
    columns = sqlite3.connect(db).execute("SELECT grade, grader FROM calls WHERE id = 1").fetchone()
    assert columns == (1 / 3, "validator:json")
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(InvalidInputError, match="grade"):
            store.set_grade("r0000001", bad, "user")
    with pytest.raises(InvalidInputError, match="grader"):
        store.set_grade("r0000001", 0.5, "")


def test_invalid_call_writes_nothing(db: Path) -> None:
    store = SQLiteStore(db)
    naive = make_call(2, timestamp=datetime(2025, 1, 1))
    with pytest.raises(InvalidInputError, match="timestamp"):
        store.append([make_call(1), naive])
    with pytest.raises(InvalidInputError, match="JSON"):
        store.append([make_call(3, extra={"answer": object()})])
    assert list(store.iter_calls()) == []


def test_hash_mode_keeps_equal_prompts_equal_and_hides_text(db: Path) -> None:
    secret = "my account number is 4242-1111"
    conversation = replace(rich_calls()[1], request_id="conversation")
    store = open_store(f"sqlite:///{db}", prompt_mode="hash", hash_key=KEY)
    store.append(
        [
            make_call(1, prompt=secret),
            make_call(1, prompt=secret, model="claude-opus-4-1"),
            make_call(2, prompt="something else"),
            conversation,
        ]
    )
    stored = list(store.iter_calls())
    store.close()
    assert all(c.messages == () and c.system is None for c in stored)
    prompts = {(c.request_id, c.model): c.prompt for c in stored}
    expected = prompt_hmac(secret, KEY.encode())
    assert prompts["r0000001", "claude-haiku-4-5"] == prompts["r0000001", "claude-opus-4-1"]
    assert prompts["r0000001", "claude-haiku-4-5"] == expected
    assert prompts["r0000002", "claude-haiku-4-5"] != expected
    assert prompts["conversation", "claude-sonnet-4-5"] == prompt_hmac(
        conversation.request_text().text, KEY.encode()
    )
    assert prompt_hmac(secret, b"another key of 32 bytes.........") != expected
    on_disk = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith("calls"))
    assert secret.encode() not in on_disk and b"historian" not in on_disk


def test_hash_key_from_environment_and_required(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=HASH_KEY_ENV):
        open_store(f"sqlite:///{db}", prompt_mode="hash")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        open_store(f"sqlite:///{db}", prompt_mode="hash", hash_key="short")
    monkeypatch.setenv(HASH_KEY_ENV, KEY)
    store = open_store(f"sqlite:///{db}", prompt_mode="hash")
    store.append([make_call(1)])
    assert next(store.iter_calls()).prompt == prompt_hmac("What is 1 + 1?", KEY.encode())


def test_none_mode_stores_no_text(db: Path) -> None:
    store = open_store(f"sqlite:///{db}", prompt_mode="none")
    store.append(rich_calls())
    assert [(c.prompt, c.messages, c.system) for c in store.iter_calls()] == [("", (), None)] * 3
    with pytest.raises(ConfigError, match="prompt_mode"):
        open_store(f"sqlite:///{db}", prompt_mode="redact")  # type: ignore[arg-type]


def test_schema_errors_are_config_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite file"):
        SQLiteStore(junk)

    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(ConfigError, match="not a tierwise call log"):
        SQLiteStore(foreign)

    newer = tmp_path / "newer.db"
    SQLiteStore(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE calls_schema_version SET version = 99")
    with pytest.raises(ConfigError, match="schema version 99"):
        SQLiteStore(newer)

    with pytest.raises(ConfigError, match="does not exist"):
        SQLiteStore(tmp_path / "no" / "such" / "dir.db")


@pytest.mark.parametrize(
    "url", ["mysql://x/y", "calls.db", "sqlite://relative.db", "sqlite:///", "sqlite:///:memory:"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="URL"):
        open_store(url)


def test_bad_url_message_hides_password() -> None:
    with pytest.raises(ConfigError) as info:
        open_store("mongodb://admin:hunter2@db.internal/calls")
    assert "hunter2" not in str(info.value)


def test_reopen_keeps_records(db: Path) -> None:
    SQLiteStore(db).append([make_call(1)])
    SQLiteStore(db).append([make_call(2)])
    assert [c.request_id for c in SQLiteStore(db).iter_calls()] == ["r0000001", "r0000002"]


def test_feedback_and_validator_grades(db: Path) -> None:
    store = SQLiteStore(db)
    store.append(
        [
            make_call(1, extra={"answer": "2"}),
            make_call(2, extra={"answer": "5"}),
            make_call(3, extra={"answer": "not a number"}),
            make_call(4),  # no answer recorded: not the validator's business
            make_call(5, extra={"answer": "10"}, grade=0.0, grader="user"),
        ]
    )

    def adds_up(call: GradedCall) -> float | None:
        answer = answer_text(call) or ""
        if not answer.isdigit():
            return None
        return 1.0 if int(answer) == 2 * int(call.request_id[1:]) else 0.0

    assert grade_with_validator(store, "arith", adds_up) == 2
    assert grade_with_validator(store, "arith", adds_up) == 0
    assert apply_feedback(store, "r0000003", 1.0) == 1
    assert apply_feedback(store, "unknown", 1.0) == 0
    grades = {c.request_id: (c.grade, c.grader) for c in store.iter_calls()}
    assert grades == {
        "r0000001": (1.0, "validator:arith"),
        "r0000002": (0.0, "validator:arith"),
        "r0000003": (1.0, "user"),
        "r0000004": (None, None),
        "r0000005": (0.0, "user"),
    }
    store.append([make_call(6, extra={"answer": "12"})])
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        grade_with_validator(store, "broken", lambda call: 2.0, since=T0 - timedelta(days=1))
    assert next(store.iter_calls(since=T0 + timedelta(seconds=6))).grade is None


def test_readers_see_a_snapshot_while_writing(db: Path) -> None:
    store = SQLiteStore(db)
    store.append([make_call(i) for i in range(10)])
    reader = store.iter_calls()
    first = next(reader)
    store.append([make_call(i) for i in range(10, 20)])
    assert [first, *reader] == [make_call(i) for i in range(10)]
    assert sum(1 for _ in store.iter_calls(since=T0.astimezone(UTC))) == 20
