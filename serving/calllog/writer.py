"""Logging calls without ever slowing down or failing the call being logged.

``submit`` only appends to a bounded in-memory queue; a background thread
writes the queue to the store in batches (one commit per batch), and retries
with backoff while the store is down. When the queue is full, new calls are
dropped and counted rather than waited for: losing a log line is cheaper than
delaying a user's request. Memory is bounded by ``max_queue`` calls plus the
one batch being retried.

A call is *acknowledged* when the store has committed it: it is then counted
in ``written``, and a ``flush()`` that returns True guarantees it for every
call submitted before the flush. Acknowledged calls survive a crash of the
process; calls still in the queue do not.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType

from router_model.calls import GradedCall
from router_model.errors import ConfigError, InvalidInputError
from serving.calllog.store import CallLogStore

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.05


class CallLogWriter:
    """Writes submitted calls to ``store`` from a background thread.

    ``flush_interval_s`` is the longest a call lingers in memory waiting for
    its batch to fill; a full batch, ``flush()`` or ``close()`` write at once.
    Counters: ``submitted`` (every ``submit``), ``written`` (committed),
    ``dropped`` (refused by a full queue or after ``close``, or abandoned when
    ``close`` timed out), ``rejected`` (invalid calls the store can never
    hold) and ``store_errors`` (failed write attempts, each retried).
    The writer does not close the store.
    """

    def __init__(
        self,
        store: CallLogStore,
        max_queue: int = 10_000,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        *,
        max_backoff_s: float = 5.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or flush_interval_s < 0 or max_backoff_s <= 0:
            raise ConfigError(
                "CallLogWriter needs max_queue >= 1, batch_size >= 1, flush_interval_s >= 0 "
                "and max_backoff_s > 0"
            )
        self._store = store
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_backoff_s = max_backoff_s
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._pending: deque[GradedCall] = deque()
        self._accepted = 0  # calls that entered the queue
        self._settled = 0  # ... and have since been written, rejected or abandoned
        self._flush_waiters = 0
        self._give_up_at: float | None = None  # set by close()
        self._submitted = self._written = self._dropped = self._rejected = 0
        self._store_errors = 0
        self._abandoned = 0
        self._thread = threading.Thread(target=self._run, name="tierwise-calllog", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    def submit(self, call: GradedCall) -> bool:
        """Queue ``call``; never waits for I/O and never raises. False means it was dropped."""
        with self._cond:
            self._submitted += 1
            if self._give_up_at is not None or len(self._pending) >= self._max_queue:
                self._dropped += 1
                return False
            self._pending.append(call)
            self._accepted += 1
            if len(self._pending) in (1, self._batch_size):
                self._cond.notify_all()
            return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call accepted before this call is committed (or rejected)."""
        with self._cond:
            target = self._accepted
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._settled >= target, timeout)
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued, then stop; True when nothing accepted was left unwritten.

        Calls still unwritten after ``timeout`` (the store is down) are
        abandoned and counted in ``dropped``.
        """
        with self._cond:
            if self._give_up_at is None:
                self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        self._wake.set()
        self._thread.join(timeout + 1.0)
        atexit.unregister(self._close_at_exit)
        with self._cond:
            return not self._thread.is_alive() and self._abandoned == 0

    @property
    def submitted(self) -> int:
        return self._submitted

    @property
    def written(self) -> int:
        return self._written

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def store_errors(self) -> int:
        return self._store_errors

    @property
    def pending(self) -> int:
        """Calls accepted but not yet committed, rejected or abandoned."""
        with self._cond:
            return self._accepted - self._settled

    def __enter__(self) -> CallLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _close_at_exit(self) -> None:
        self.close(timeout=2.0)

    def _run(self) -> None:
        reported_drops = 0
        while (batch := self._take_batch()) is not None:
            self._write(batch)
            if self._dropped > reported_drops:
                log.warning(
                    "call-log queue full (%d calls): dropped %d calls so far",
                    self._max_queue,
                    self._dropped,
                )
                reported_drops = self._dropped

    def _take_batch(self) -> list[GradedCall] | None:
        """The next batch, after lingering up to ``flush_interval_s`` for it to fill."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._give_up_at is not None)
            if not self._pending:
                return None
            deadline = time.monotonic() + self._flush_interval_s
            while (
                len(self._pending) < self._batch_size
                and not self._flush_waiters
                and self._give_up_at is None
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(self._batch_size, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _write(self, batch: Sequence[GradedCall]) -> None:
        """Append until committed; split the batch when the store calls a record invalid."""
        backoff = FIRST_BACKOFF_S
        failures = 0
        while True:
            try:
                self._store.append(batch)
            except InvalidInputError as exc:
                if len(batch) > 1:
                    for call in batch:
                        self._write([call])
                    return
                log.warning("call-log store rejected call %r: %s", batch[0].request_id, exc)
                self._settle(rejected=1)
                return
            except Exception as exc:
                failures += 1
                with self._cond:
                    self._store_errors += 1
                if failures == 1:
                    log.warning("call-log store write failed, retrying: %s", exc)
                if self._must_give_up():
                    self._abandon(len(batch))
                    return
                self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            if failures:
                log.info("call-log store recovered after %d failed attempts", failures)
            self._settle(written=len(batch))
            return

    def _settle(self, written: int = 0, rejected: int = 0) -> None:
        with self._cond:
            self._written += written
            self._rejected += rejected
            self._settled += written + rejected
            self._cond.notify_all()

    def _must_give_up(self) -> bool:
        give_up_at = self._give_up_at
        return give_up_at is not None and time.monotonic() >= give_up_at

    def _sleep(self, seconds: float) -> None:
        """Back off, waking early (once) when ``close`` starts its countdown."""
        give_up_at = self._give_up_at
        if give_up_at is not None:
            seconds = max(0.0, min(seconds, give_up_at - time.monotonic()))
        self._wake.wait(seconds)
        self._wake.clear()

    def _abandon(self, in_hand: int) -> None:
        """``close`` timed out with the store down: count everything unwritten as dropped."""
        with self._cond:
            count = in_hand + len(self._pending)
            self._pending.clear()
            self._abandoned += count
            self._dropped += count
            self._settled += count
            self._cond.notify_all()
        log.error("call-log store unavailable at close: %d calls were not written", count)
