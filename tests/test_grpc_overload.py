"""Overload over real gRPC: a burst past the queue bound is shed with RESOURCE_EXHAUSTED,
every other call is answered, and the server keeps serving."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

from grpc_support import SERVING, ServerThread, health_status, server_config, serving_on

from serving import AsyncTierwiseClient
from serving.config import Limits
from serving.results import TierwiseRpcError

LONG = "Explain, step by step, how a compiler turns source code into machine code. " * 20


def _one_worker(model: Path, limits: Limits) -> AbstractContextManager[ServerThread]:
    """One scoring worker that scores each call alone, so calls queue behind it."""
    return serving_on(server_config(model, workers=1, max_coalesce_tokens=0, limits=limits))


async def _burst(target: str, calls: int) -> Counter[str]:
    codes: Counter[str] = Counter()
    async with AsyncTierwiseClient(target, timeout=60, retries=0) as client:

        async def one(i: int) -> None:
            try:
                await client.predict(f"{i}: {LONG}")
                codes["OK"] += 1
            except TierwiseRpcError as error:
                codes[error.code.name] += 1

        await asyncio.gather(*(one(i) for i in range(calls)))
    return codes


def test_a_burst_past_the_queue_bound_is_shed_and_the_rest_answered(
    logreg_router_dir: Path,
) -> None:
    with _one_worker(
        logreg_router_dir, Limits(max_queued_requests=4, max_queue_wait_s=60)
    ) as thread:
        codes = asyncio.run(_burst(thread.target, 48))
        assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
        assert codes["OK"] >= 5 and codes["RESOURCE_EXHAUSTED"] >= 10
        shed = thread.metric("tierwise_requests_shed_total", {"reason": "queue_full"})
        assert shed == codes["RESOURCE_EXHAUSTED"]  # every refusal was the queue bound's
        assert health_status(thread.target) == SERVING
        assert asyncio.run(_burst(thread.target, 1)) == {"OK": 1}  # still serving


def test_calls_past_the_concurrency_limit_are_refused_by_grpc(logreg_router_dir: Path) -> None:
    with _one_worker(
        logreg_router_dir, Limits(max_concurrent_rpcs=3, max_queue_wait_s=60)
    ) as thread:
        codes = asyncio.run(_burst(thread.target, 24))
        assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
        assert codes["OK"] >= 3 and codes["RESOURCE_EXHAUSTED"] >= 5
        assert asyncio.run(_burst(thread.target, 1)) == {"OK": 1}
