"""Scoring off the event loop, with concurrent calls coalesced into batches.

``Router.decide`` is CPU work (tokenising and running the ONNX graph), so it
runs on a pool of worker threads while the event loop keeps accepting calls
and answering health checks; onnxruntime releases the GIL, so the threads
score in parallel.

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
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from router_model.features import estimate_tokens
from router_model.router import Decision, DecisionRequest, Router
from serving.metrics import Metrics
from serving.model import RouterModel


@dataclass
class _Job:
    router: Router
    requests: Sequence[DecisionRequest]
    future: asyncio.Future[list[Decision]]
    alone: bool = False
    size: int = field(init=False)
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.requests)
        cap = self.router.manifest.truncation.max_tokens
        self.tokens = sum(min(estimate_tokens(r.text.text), cap) for r in self.requests)


class Scorer:
    """Decides requests on ``workers`` threads, coalescing calls that queue meanwhile."""

    def __init__(
        self, model: RouterModel, workers: int, metrics: Metrics, max_coalesce_tokens: int
    ) -> None:
        self.model = model
        self._metrics = metrics
        self._budget = max_coalesce_tokens
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tierwise-score")
        self._idle = workers
        self._queue: deque[_Job] = deque()

    async def decide(self, requests: Sequence[DecisionRequest]) -> tuple[Router, list[Decision]]:
        """Decisions and the router that made them (its ladder describes the tiers)."""
        router = self.model.router
        job = _Job(router, requests, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._dispatch()
        return router, await job.future

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._idle > 0:
            jobs = self._take()
            if not jobs:
                return
            self._idle -= 1
            requests = [r for job in jobs for r in job.requests]
            self._metrics.batch_size.observe(len(requests))
            done = loop.run_in_executor(self._pool, jobs[0].router.decide, requests)
            done.add_done_callback(functools.partial(self._finished, jobs))

    def _take(self) -> list[_Job]:
        """The oldest live job, and the jobs behind it that fit in one pass with it."""
        while self._queue and self._queue[0].future.done():  # cancelled by the caller
            self._queue.popleft()
        if not self._queue:
            return []
        jobs = [self._queue.popleft()]
        total = jobs[0].tokens
        while self._queue and not jobs[0].alone:
            nxt = self._queue[0]
            if nxt.future.done():
                self._queue.popleft()
                continue
            fits = total + nxt.tokens <= self._budget
            if nxt.alone or nxt.router is not jobs[0].router or not fits:
                break
            jobs.append(self._queue.popleft())
            total += nxt.tokens
        return jobs

    def _finished(self, jobs: list[_Job], done: asyncio.Future[list[Decision]]) -> None:
        self._idle += 1
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        if error is not None and len(jobs) > 1:
            for job in reversed(jobs):
                job.alone = True
                self._queue.appendleft(job)
        elif error is not None:
            if not jobs[0].future.done():
                jobs[0].future.set_exception(error)
        else:
            decisions = done.result()
            start = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(decisions[start : start + job.size])
                start += job.size
        self._dispatch()
