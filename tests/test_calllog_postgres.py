"""The PostgreSQL call log against a real server (see scripts/ci_postgres.sh).

Each test gets its own schema, chosen through the URL's ``options`` parameter,
so tests never see each other's rows and the store is exercised exactly as a
user would configure it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import quote

import pytest
from calllog_support import T0, make_call, rich_calls

from router_model.errors import ConfigError, InvalidInputError
from serving.calllog import CallLogWriter, PostgresStore, open_store

URL_ENV = "TIERWISE_TEST_POSTGRES_URL"


@pytest.fixture(scope="module")
def server_url() -> str:
    url = os.environ.get(URL_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{URL_ENV} is not set; CI must run `source scripts/ci_postgres.sh` first")
    pytest.skip(f"{URL_ENV} is not set (run `source scripts/ci_postgres.sh` to start PostgreSQL)")


@pytest.fixture
def pg_url(server_url: str) -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh schema, dropped after the test."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server_url else "?"
    yield f"{server_url}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_round_trip_filters_and_grades(pg_url: str) -> None:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    calls = rich_calls()
    store.append(list(reversed(calls)))
    assert list(store.iter_calls()) == calls
    window = store.iter_calls(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=2))
    assert [c.request_id for c in window] == ["r0000001"]

    assert store.set_grade("r0000000", 1 / 3, "validator:json") == 1
    assert store.set_grade("r0000001", 0.5, "user", model="some-other-model") == 0
    assert store.set_grade("nope", 0.5, "user") == 0
    graded = next(store.iter_calls())
    assert (graded.grade, graded.grader) == (1 / 3, "validator:json")
    with pytest.raises(InvalidInputError, match="grade"):
        store.set_grade("r0000000", 2.0, "user")
    store.close()


def test_nul_characters_are_replaced(pg_url: str) -> None:
    store = open_store(pg_url)
    store.append([make_call(1, prompt="a\x00b", extra={"answer": "\x00"})])
    (call,) = store.iter_calls()
    assert (call.prompt, call.extra["answer"]) == ("a\ufffdb", "\ufffd")
    store.close()


def test_hash_mode(pg_url: str) -> None:
    store = open_store(pg_url, prompt_mode="hash", hash_key="k" * 32)
    store.append([make_call(1, prompt="same"), make_call(2, prompt="same")])
    first, second = store.iter_calls()
    assert first.prompt == second.prompt and first.prompt and first.prompt.startswith("hmac-")
    store.close()


def test_writer_threads_append_concurrently(pg_url: str) -> None:
    """Several services, several writer threads each, one table: nothing lost or doubled."""
    stores = [open_store(pg_url) for _ in range(2)]  # two "services", racing to create tables
    per_thread, threads_per_store = 300, 3

    def service(store_index: int, thread_index: int) -> None:
        writer = CallLogWriter(stores[store_index], batch_size=25, flush_interval_s=0.01)
        base = (store_index * threads_per_store + thread_index) * per_thread
        for i in range(base, base + per_thread):
            assert writer.submit(make_call(i))
        assert writer.close(timeout=30)
        assert writer.written == per_thread and writer.store_errors == 0

    with ThreadPoolExecutor(max_workers=len(stores) * threads_per_store) as pool:
        jobs = [
            pool.submit(service, s, t) for s in range(len(stores)) for t in range(threads_per_store)
        ]
        for job in jobs:
            job.result(timeout=60)
    total = len(stores) * threads_per_store * per_thread
    ids = [c.request_id for c in stores[0].iter_calls()]
    assert ids == [make_call(i).request_id for i in range(total)]
    for store in stores:
        store.close()


def test_schema_version_is_checked(pg_url: str, server_url: str) -> None:
    import psycopg

    store = open_store(pg_url)
    store.append([make_call(1)])
    store.close()
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.calls_schema_version SET version = 7")
    newer = open_store(pg_url)
    with pytest.raises(ConfigError, match="schema version 7"):
        list(newer.iter_calls())
    newer.close()


def test_unreachable_server_fails_clearly_and_writer_keeps_going() -> None:
    store = open_store("postgresql://tierwise:secret@127.0.0.1:1/tierwise")  # does not connect
    with pytest.raises(ConfigError, match="cannot connect") as info:
        store.append([make_call(1)])
    assert "secret" not in str(info.value)
    writer = CallLogWriter(store, flush_interval_s=0.0, max_backoff_s=0.05)
    assert writer.submit(make_call(2))
    assert not writer.close(timeout=0.3)
    assert writer.store_errors >= 1 and writer.dropped == 1


def test_malformed_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match="malformed URL") as info:
        open_store("postgresql://tierwise:hunter2@[::1/tierwise")
    assert "hunter2" not in str(info.value)
