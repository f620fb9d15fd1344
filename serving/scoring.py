"""Scoring off the event loop, with concurrent calls coalesced into batches.

``Router.decide`` is CPU work (tokenising and running the ONNX graph), so it
runs on a pool of worker threads while the event loop keeps accepting calls
and answering health checks; onnxruntime releases the GIL, so the threads
score in parallel.

How many passes run at once depends on the router unless ``workers`` fixes
it. A router that batches (fp32) runs one pass at a time on every core: a
lone call gets both cores, and the calls that queue meanwhile share the next
pass. A router that scores one request per run (int8) runs one pass per
core: a lone call still gets the main session on every core, but a pass that
starts while another is running or calls are waiting runs on a
single-threaded session of its own, because such small runs gain more from
running side by side than from splitting across cores. Such a router also
keeps one more pass per core waiting in its pool, so that a worker that
finishes goes straight on to the next pass instead of idling until the event
loop hands it one: the loop answers the finished calls first, and under load
that left the workers idle about a tenth of the time. Batching routers do
not do this, because a pass formed early would take fewer calls.

Passes on the main session always run on one thread of their own. When they
took turns on whichever pool thread was idle, runs came in stretches of a
hundred milliseconds or so at three times their usual time (presumably the
calling thread placed on the core of onnxruntime's worker until the
scheduler moved one of them), and up to 8% of an int8 router's lone short
calls took over 5 ms; on one thread, about 1%.

While every worker is busy, calls queue up; a worker that frees up takes the
queued calls, up to a budget of ``max_coalesce_tokens`` tokens, and scores
them in one pass. Nothing ever waits for a batch to fill, so a lone call is
scored at once; under load, one pass of the model serves many calls and the
per-call overhead (launching the graph, Python bookkeeping) is paid once. The
model's cost is per token, so the budget counts tokens (as the router reads
them: at most its truncation length per request): a pass stays short enough
that one worker never takes the whole queue while the others idle. Calls are
only coalesced when they were accepted by the same router, so a reload never
mixes two routers' answers in one response. If a coalesced pass fails, its
calls are scored again one by one, so that one poisoned request fails only
its own call.

The queue is bounded twice, so that overload shows up as quick refusals
rather than as latency that grows without bound: a call that would take the
queue past ``max_queued`` requests is refused at once, and a call that waited
longer than ``max_wait_s`` for a worker is refused instead of being scored
late (both RESOURCE_EXHAUSTED). A call whose deadline passes while it waits
is cancelled by gRPC and skipped here, so it costs no scoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from router_model.features import estimate_tokens
from router_model.router import Decision, DecisionRequest, Router
from serving.config import DEFAULT_MAX_QUEUE_WAIT_S, DEFAULT_MAX_QUEUED_REQUESTS, default_workers
from serving.errors import OverloadedError
from serving.metrics import Metrics
from serving.model import RouterModel

# Passes in flight per worker for a one-request-per-run router under auto: the
# one running, and the one that it takes up as soon as it is done.
PASSES_PER_WORKER = 2


@dataclass
class _Job:
    router: Router
    requests: Sequence[DecisionRequest]
    future: asyncio.Future[list[Decision]]
    alone: bool = False
    size: int = field(init=False)
    tokens: int = field(init=False)
    enqueued: float = field(init=False)

    def __post_init__(self) -> None:
        self.enqueued = time.monotonic()
        self.size = len(self.requests)
        cap = self.router.manifest.truncation.max_tokens
        self.tokens = sum(min(estimate_tokens(r.text.text), cap) for r in self.requests)


class Scorer:
    """Decides requests in passes on worker threads, coalescing calls that queue meanwhile.

    ``workers`` is the most passes at once; None chooses by router (above).
    """

    def __init__(
        self,
        model: RouterModel,
        workers: int | None,
        metrics: Metrics,
        max_coalesce_tokens: int,
        max_queued: int = DEFAULT_MAX_QUEUED_REQUESTS,
        max_wait_s: float = DEFAULT_MAX_QUEUE_WAIT_S,
    ) -> None:
        self.model = model
        self._metrics = metrics
        self._budget = max_coalesce_tokens
        self._max_queued = max_queued
        self._max_wait_s = max_wait_s
        self._workers = workers
        self._threads = workers or default_workers()
        # Under ``auto`` at most one pass at a time runs on the main session.
        main_threads = self._threads if workers is not None else 1
        self._main_pool = ThreadPoolExecutor(main_threads, thread_name_prefix="tierwise-score")
        self._side_pool = ThreadPoolExecutor(self._threads, thread_name_prefix="tierwise-score-1t")
        self._running = 0  # passes
        self._queue: deque[_Job] = deque()
        self._queued = 0  # requests in self._queue

    async def decide(self, requests: Sequence[DecisionRequest]) -> tuple[Router, list[Decision]]:
        """Decisions and the router that made them (its ladder describes the tiers)."""
        router = self.model.router
        if self._queued and self._queued + len(requests) > self._max_queued:
            self._metrics.shed.labels("queue_full").inc()
            raise OverloadedError(
                f"{self._queued} requests are already waiting to be scored (limit "
                f"{self._max_queued}, --max-queued-requests); retry with backoff"
            )
        job = _Job(router, requests, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._count_queued(job.size)
        self._dispatch()
        return router, await job.future

    def close(self) -> None:
        self._main_pool.shutdown(wait=True, cancel_futures=False)
        self._side_pool.shutdown(wait=True, cancel_futures=False)

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_dead_head()
            if not self._queue or self._running >= self._max_passes(self._queue[0].router):
                return
            jobs = self._take()
            router = jobs[0].router
            alongside = self._running > 0 or bool(self._queue)
            parallel = router.one_request_per_run and self._max_passes(router) > 1
            single_threaded = parallel and alongside
            self._running += 1
            self._metrics.batch_size.observe(sum(job.size for job in jobs))
            self._metrics.passes.labels("one" if single_threaded else "all").inc()
            decide = functools.partial(router.decide, single_threaded=single_threaded)
            pool = self._side_pool if single_threaded else self._main_pool
            pool.submit(self._run, loop, decide, jobs)

    def _max_passes(self, router: Router) -> int:
        if self._workers is not None:
            return self._threads
        if router.one_request_per_run:
            return PASSES_PER_WORKER * self._threads
        return 1

    def _take(self) -> list[_Job]:
        """The head of the queue (live: ``_dispatch`` just dropped the dead), and the
        jobs behind it that fit in one pass with it."""
        jobs = [self._pop()]
        total = jobs[0].tokens
        while not jobs[0].alone:
            self._drop_dead_head()
            if not self._queue:
                break
            nxt = self._queue[0]
            fits = total + nxt.tokens <= self._budget
            if nxt.alone or nxt.router is not jobs[0].router or not fits:
                break
            jobs.append(self._pop())
            total += nxt.tokens
        return jobs

    def _drop_dead_head(self) -> None:
        """Skip calls cancelled by their caller (deadline, disconnect) and shed stale ones."""
        now = time.monotonic()
        while self._queue:
            head = self._queue[0]
            waited = now - head.enqueued
            if not head.future.done() and waited <= self._max_wait_s:
                return
            self._pop()
            if not head.future.done():
                self._metrics.shed.labels("queue_wait").inc()
                head.future.set_exception(
                    OverloadedError(
                        f"waited {waited:.2f} s for a scoring worker (limit "
                        f"{self._max_wait_s:g} s, --max-queue-wait); retry with backoff"
                    )
                )

    def _pop(self) -> _Job:
        job = self._queue.popleft()
        self._count_queued(-job.size)
        return job

    def _count_queued(self, change: int) -> None:
        self._queued += change
        self._metrics.queued.set(self._queued)

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        decide: Callable[[Sequence[DecisionRequest]], list[Decision]],
        jobs: list[_Job],
    ) -> None:
        """On a worker thread: score, then hand the outcome straight to the event loop.

        One ``call_soon_threadsafe`` per pass, rather than an executor future
        chained to an asyncio future, which costs the loop a second wake-up
        before it can answer the calls. Calls cancelled while their pass
        waited for a worker are left out (reading ``done()`` off the loop can
        only miss a cancellation that lands meanwhile, which costs a wasted
        score, not a wrong answer).
        """
        jobs = [job for job in jobs if not job.future.done()]
        decisions: list[Decision] = []
        error: BaseException | None = None
        try:
            if jobs:
                decisions = decide([r for job in jobs for r in job.requests])
        except BaseException as exc:  # handed to the callers, whatever it is
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while this pass ran
            loop.call_soon_threadsafe(self._finished, jobs, decisions, error)

    def _finished(
        self, jobs: list[_Job], decisions: list[Decision], error: BaseException | None
    ) -> None:
        self._running -= 1
        if error is not None and len(jobs) > 1:
            for job in reversed(jobs):
                job.alone = True
                job.enqueued = time.monotonic()  # a retry, not a wait: restart its clock
                self._queue.appendleft(job)
                self._count_queued(job.size)
        elif error is not None:
            if not jobs[0].future.done():
                jobs[0].future.set_exception(error)
        else:
            start = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(decisions[start : start + job.size])
                start += job.size
        self._dispatch()
