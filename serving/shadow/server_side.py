"""Server-side shadow mode: a challenger router decides every request, off the hot path.

Every ``Predict`` is answered by the current router alone. After the answer
is computed, the request and the current decision are offered to a bounded
queue (one non-blocking ``put``); a single background thread takes them,
lets the challenger decide the same requests, and hands both decisions to a
``CallLogWriter`` as shadow records. One thread, so the challenger can never
take scoring capacity from more than one core; a bounded queue, so a
challenger slower than the traffic costs dropped shadow records (counted in
``tierwise_shadow_dropped``) rather than memory or latency.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from router_model.errors import ConfigError
from router_model.router import Decision, DecisionRequest, Router
from serving.calllog.writer import CallLogWriter
from serving.shadow.records import CHALLENGER, CURRENT, InputStats, shadow_record

log = logging.getLogger("tierwise.serving.shadow")

DEFAULT_SHADOW_QUEUE = 1000


@dataclass(frozen=True)
class _Item:
    requests: Sequence[DecisionRequest]
    decisions: Sequence[Decision]


class ShadowMetrics:
    """Shadow counters, registered in the server's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.offered = Counter(
            "tierwise_shadow_offered", "Requests offered to the challenger.", registry=registry
        )
        self.dropped = Counter(
            "tierwise_shadow_dropped",
            "Requests the challenger never decided because its queue was full.",
            registry=registry,
        )
        self.failed = Counter(
            "tierwise_shadow_failed", "Requests the challenger failed to decide.", registry=registry
        )
        self.logged = Counter(
            "tierwise_shadow_records",
            "Shadow records handed to the shadow log, by router.",
            ("router",),
            registry=registry,
        )
        self.queued = Gauge(
            "tierwise_shadow_queued", "Requests waiting for the challenger.", registry=registry
        )
        self.info = Gauge(
            "tierwise_shadow_challenger",
            "1 for the challenger version being shadowed.",
            ("router_version",),
            registry=registry,
        )


class ShadowScorer:
    """Loads the challenger and decides offered requests with it on one thread.

    ``offer`` never blocks and never raises; ``flush`` waits until everything
    offered so far is decided and committed to the shadow log (for tests and
    shutdown); ``close`` stops the thread and the writer (not the store).
    """

    def __init__(
        self,
        challenger: Path,
        writer: CallLogWriter,
        registry: CollectorRegistry,
        max_queue: int = DEFAULT_SHADOW_QUEUE,
        intra_op_threads: int = 1,
    ) -> None:
        if max_queue < 1:
            raise ConfigError(f"shadow_queue must be at least 1, got {max_queue}")
        self.challenger_dir = challenger
        self.metrics = ShadowMetrics(registry)
        self._writer = writer
        self._threads = intra_op_threads
        self._router: Router | None = None
        self._queue: queue.Queue[_Item | threading.Event | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="tierwise-shadow", daemon=True)
        self._started = False

    @property
    def router(self) -> Router | None:
        return self._router

    def load(self) -> Router:
        """Load and validate the challenger (raises ``ArtifactError``), then start the thread."""
        router = Router.load(self.challenger_dir, self._threads)
        self._router = router
        self.metrics.info.labels(router_version=router.version).set(1)
        if not self._started:
            self._started = True
            self._thread.start()
        return router

    def offer(self, requests: Sequence[DecisionRequest], decisions: Sequence[Decision]) -> bool:
        """Queue requests for the challenger; False (and counted) when the queue is full."""
        self.metrics.offered.inc(len(requests))
        if not self._started:
            self.metrics.dropped.inc(len(requests))
            return False
        try:
            self._queue.put_nowait(_Item(requests, decisions))
        except queue.Full:
            self.metrics.dropped.inc(len(requests))
            return False
        self.metrics.queued.inc(len(requests))
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every offered request is decided, then until the log has committed it."""
        if self._started:
            reached = threading.Event()
            try:
                self._queue.put(reached, timeout=timeout)
            except queue.Full:
                return False
            if not reached.wait(timeout):
                return False
        return self._writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Decide what is queued, write it, stop; True when nothing was left unwritten."""
        if self._started:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.warning("shadow queue still full at shutdown; stopping without it")
            self._thread.join(timeout)
        return self._writer.close(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            self.metrics.queued.dec(len(item.requests))
            self._decide(item)

    def _decide(self, item: _Item) -> None:
        router = self._router
        assert router is not None
        try:
            challenged = router.decide(item.requests)
        except Exception:  # onnxruntime raises unrelated types; never kill the thread
            log.warning("challenger failed to decide", exc_info=True)
            self.metrics.failed.inc(len(item.requests))
            return
        for request, current, challenger in zip(
            item.requests, item.decisions, challenged, strict=True
        ):
            request_id = request.request_id or uuid.uuid4().hex
            stats = InputStats.of(request.text)
            for role, decision in ((CURRENT, current), (CHALLENGER, challenger)):
                record = shadow_record(decision, request_id=request_id, router=role, stats=stats)
                if self._writer.submit(record):
                    self.metrics.logged.labels(router=role).inc()
