"""The background writer against real SQLite stores: crashes, outages, slow stores, bad records."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from calllog_support import make_call

from router_model.calls import GradedCall
from serving.calllog import CallLogWriter, SQLiteStore

SUPPORT = Path(__file__).resolve().parent / "calllog_support.py"
REPO = SUPPORT.parent.parent


class FaultyStore(SQLiteStore):
    """A real SQLite store with injected faults: fails while ``down`` is set, and
    stalls (blocks every append) while ``stalled`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = threading.Event()
        self.stalled = threading.Event()
        self.released = threading.Event()
        self.append_started = threading.Event()

    def append(self, calls: Sequence[GradedCall]) -> None:
        self.append_started.set()
        if self.stalled.is_set():
            self.released.wait()
        if self.down.is_set():
            raise sqlite3.OperationalError("injected: disk I/O error")
        super().append(calls)


def _ids(store: SQLiteStore) -> list[str]:
    return [c.request_id for c in store.iter_calls()]


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_writes_everything_in_batches(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "calls.db")
    with CallLogWriter(store, batch_size=100, flush_interval_s=0.05) as writer:
        for i in range(1000):
            assert writer.submit(make_call(i))
        assert writer.flush(timeout=10)
        assert (writer.submitted, writer.written, writer.dropped, writer.pending) == (
            1000,
            1000,
            0,
            0,
        )
    assert _ids(store) == [make_call(i).request_id for i in range(1000)]
    assert not writer.submit(make_call(1000))
    assert writer.dropped == 1


def test_acknowledged_calls_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    child = subprocess.Popen(
        [sys.executable, str(SUPPORT), f"sqlite:///{db}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    acked = 0
    try:
        for line in child.stdout:
            acked = int(line.split()[1])
            if acked >= 3000:
                break
        time.sleep(0.03)  # let it get well into the next batches: the kill lands mid-stream
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # acknowledgements printed before the kill landed
            acked = int(line.split()[1])
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert acked >= 3000

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    stored = _ids(SQLiteStore(db))
    assert len(stored) >= acked
    # One writer writes in submission order, so the acknowledged calls are the first ones.
    assert stored[:acked] == [make_call(i).request_id for i in range(acked)]
    assert len(set(stored)) == len(stored)


def test_store_down_submit_stays_fast_and_bounded(tmp_path: Path) -> None:
    store = FaultyStore(tmp_path / "calls.db")
    store.down.set()
    writer = CallLogWriter(
        store, max_queue=200, batch_size=20, flush_interval_s=0.01, max_backoff_s=0.05
    )
    accepted: list[str] = []
    for i in range(2000):
        if writer.submit(make_call(i)):
            accepted.append(make_call(i).request_id)
        assert writer.pending <= 200 + 20
    assert 200 <= len(accepted) <= 220
    assert writer.dropped == 2000 - len(accepted)
    _wait_for(lambda: writer.store_errors >= 3)
    assert writer.written == 0
    assert not writer.flush(timeout=0.1)

    store.down.clear()
    assert writer.flush(timeout=10)
    assert writer.written == len(accepted)
    assert _ids(store) == accepted
    assert writer.close()


def test_stalled_store_does_not_block_submit(tmp_path: Path) -> None:
    store = FaultyStore(tmp_path / "calls.db")
    store.stalled.set()
    writer = CallLogWriter(store, flush_interval_s=0.0)
    assert writer.submit(make_call(0))
    assert store.append_started.wait(timeout=10)  # the writer thread is now stuck in append
    # Every submit returns while the store is stuck: a submit that waited for the
    # store would never return before the release below.
    for i in range(1, 200):
        assert writer.submit(make_call(i))
    assert writer.written == 0
    store.released.set()
    assert writer.flush(timeout=10)
    assert writer.written == 200 and len(_ids(store)) == 200
    writer.close()


def test_invalid_calls_are_rejected_not_retried(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "calls.db")
    writer = CallLogWriter(store, batch_size=10, flush_interval_s=0.05)
    for i in range(10):
        writer.submit(make_call(i, timestamp=datetime(2025, 1, 1)) if i == 4 else make_call(i))
    assert writer.flush(timeout=10)
    assert (writer.written, writer.rejected, writer.store_errors) == (9, 1, 0)
    assert "r0000004" not in _ids(store) and len(_ids(store)) == 9
    writer.close()


def test_close_with_store_down_gives_up_and_counts(tmp_path: Path) -> None:
    store = FaultyStore(tmp_path / "calls.db")
    store.down.set()
    writer = CallLogWriter(store, flush_interval_s=0.0, max_backoff_s=0.05)
    for i in range(30):
        writer.submit(make_call(i))
    assert not writer.close(timeout=0.3)
    assert (writer.written, writer.dropped, writer.pending) == (0, 30, 0)
    assert writer.store_errors >= 1


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    from router_model.errors import ConfigError

    with pytest.raises(ConfigError, match="max_queue"):
        CallLogWriter(SQLiteStore(tmp_path / "calls.db"), max_queue=0)
