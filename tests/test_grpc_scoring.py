"""Coalescing of concurrent calls in the scorer, with a stand-in router so that
the order of events is controlled rather than timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from router_model.router import Decision, DecisionRequest
from router_model.text import RequestText
from serving.errors import to_status
from serving.metrics import Metrics
from serving.scoring import Scorer


class GatedRouter:
    """Decides by echoing the text; the first ``gated`` passes wait until the test
    opens the gate."""

    def __init__(self, one_request_per_run: bool = False, gated: int = 1) -> None:
        self.gated = gated
        self.manifest = SimpleNamespace(truncation=SimpleNamespace(max_tokens=256))
        self.one_request_per_run = one_request_per_run
        self.gate = threading.Event()
        self.started = threading.Event()
        self.passes: list[list[str]] = []
        self.single_threaded: list[bool] = []
        self.threads: list[int] = []

    def decide(
        self, requests: Sequence[DecisionRequest], single_threaded: bool = False
    ) -> list[Decision]:
        texts = [r.text.text for r in requests]
        self.passes.append(texts)
        self.single_threaded.append(single_threaded)
        self.threads.append(threading.get_ident())
        if len(self.passes) <= self.gated:
            self.started.set()
            self.gate.wait(30)
        if any(t.startswith("poison") for t in texts):
            raise RuntimeError("poisoned request")
        return [Decision(r.request_id, r.text.text, "m", "rule", {}, {}, "v") for r in requests]


def request(text: str) -> DecisionRequest:
    return DecisionRequest(text=RequestText(text, 1, False), request_id=text)


async def _run(
    router: GatedRouter, texts: list[str], budget: int, workers: int | None = 1
) -> list[Any]:
    model = SimpleNamespace(router=router)
    scorer = Scorer(model, workers, Metrics(), budget)  # type: ignore[arg-type]
    first = asyncio.ensure_future(scorer.decide([request("first")]))
    await asyncio.to_thread(router.started.wait, 30)
    rest = [asyncio.ensure_future(scorer.decide([request(t)])) for t in texts]
    await asyncio.sleep(0)
    router.gate.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    scorer.close()
    return results


def test_calls_queued_behind_a_busy_worker_share_one_pass() -> None:
    router = GatedRouter()
    results = asyncio.run(_run(router, ["a", "b", "c"], budget=2048))
    assert router.passes == [["first"], ["a", "b", "c"]]
    assert [[d.tier for d in decisions] for _, decisions in results] == [
        ["first"],
        ["a"],
        ["b"],
        ["c"],
    ]


def test_by_default_a_batching_router_runs_one_pass_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("serving.scoring.default_workers", lambda: 2)
    router = GatedRouter(one_request_per_run=False)
    asyncio.run(_run(router, ["a", "b", "c"], budget=2048, workers=None))
    assert router.passes == [["first"], ["a", "b", "c"]]
    assert router.single_threaded == [False, False]


def test_by_default_a_one_request_per_run_router_runs_a_pass_per_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lone call gets the main session; a pass beside another gets a session of its own.

    Two passes per core are handed out before calls wait to be coalesced: on
    two cores, the gated first pass and three more, one of them waiting in the
    pool for a worker to finish.
    """
    monkeypatch.setattr("serving.scoring.default_workers", lambda: 2)
    router = GatedRouter(one_request_per_run=True)
    texts = ["a", "b", "c", "d", "e"]
    results = asyncio.run(_run(router, texts, budget=2048, workers=None))
    assert router.passes == [["first"], ["a"], ["b"], ["c"], ["d", "e"]]
    assert router.single_threaded == [False, True, True, True, True]
    assert [[d.tier for d in decisions] for _, decisions in results] == [
        ["first"],
        *([t] for t in texts),
    ]


def test_passes_on_the_main_session_keep_to_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lone passes run on the same thread whatever ran beside them before."""
    monkeypatch.setattr("serving.scoring.default_workers", lambda: 2)
    router = GatedRouter(one_request_per_run=True)

    async def run() -> None:
        scorer = Scorer(SimpleNamespace(router=router), None, Metrics(), 2048)  # type: ignore[arg-type]
        first = asyncio.ensure_future(scorer.decide([request("first")]))
        await asyncio.to_thread(router.started.wait, 30)
        beside = [asyncio.ensure_future(scorer.decide([request(t)])) for t in ("a", "b")]
        await asyncio.sleep(0)
        router.gate.set()
        await asyncio.gather(first, *beside)
        for text in ("c", "d", "e", "f"):
            await scorer.decide([request(text)])
        scorer.close()

    asyncio.run(run())
    main = {t for t, one in zip(router.threads, router.single_threaded, strict=True) if not one}
    side = {t for t, one in zip(router.threads, router.single_threaded, strict=True) if one}
    assert router.single_threaded[0] is False and router.single_threaded[-4:] == [False] * 4
    assert len(main) == 1 and side and not side & main


def test_one_worker_keeps_every_pass_on_the_main_session() -> None:
    router = GatedRouter(one_request_per_run=True)
    asyncio.run(_run(router, ["a" * 40, "b" * 40, "c" * 40], budget=20, workers=1))
    assert [len(p) for p in router.passes] == [1, 2, 1]
    assert router.single_threaded == [False, False, False]


def test_the_token_budget_splits_passes() -> None:
    router = GatedRouter()
    asyncio.run(_run(router, ["a" * 40, "b" * 40, "c" * 40], budget=20))
    assert [len(p) for p in router.passes] == [1, 2, 1]


def test_a_zero_budget_scores_every_call_alone() -> None:
    router = GatedRouter()
    asyncio.run(_run(router, ["a", "b"], budget=0))
    assert router.passes == [["first"], ["a"], ["b"]]


def test_a_failing_pass_is_retried_call_by_call() -> None:
    router = GatedRouter()
    results = asyncio.run(_run(router, ["a", "poison", "c"], budget=2048))
    assert router.passes[1] == ["a", "poison", "c"]
    assert router.passes[2:] == [["a"], ["poison"], ["c"]]
    assert isinstance(results[2], RuntimeError)
    assert [d.tier for d in results[1][1]] == ["a"] and [d.tier for d in results[3][1]] == ["c"]


@pytest.mark.parametrize("budget", [0, 2048])
def test_every_call_gets_its_own_decisions_in_order(budget: int) -> None:
    router = GatedRouter()
    texts = [f"t{i}" for i in range(20)]
    results = asyncio.run(_run(router, texts, budget=budget))
    assert [decisions[0].request_id for _, decisions in results[1:]] == texts


async def _overload(
    router: GatedRouter, texts: list[str], **limits: Any
) -> tuple[list[Any], Metrics]:
    """One call holds the only worker; ``texts`` queue behind it, one per call."""
    metrics = Metrics()
    scorer = Scorer(SimpleNamespace(router=router), 1, metrics, 0, **limits)  # type: ignore[arg-type]
    first = asyncio.ensure_future(scorer.decide([request("first")]))
    await asyncio.to_thread(router.started.wait, 30)
    rest = [asyncio.ensure_future(scorer.decide([request(t)])) for t in texts]
    await asyncio.sleep(limits.get("max_wait_s", 0.0) * 2)
    router.gate.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    scorer.close()
    return results, metrics


def test_a_full_queue_sheds_new_calls_at_once() -> None:
    router = GatedRouter()
    results, metrics = asyncio.run(_overload(router, ["a", "b", "c", "d"], max_queued=2))
    assert [type(r).__name__ for r in results] == [
        "tuple",
        "tuple",
        "tuple",
        "OverloadedError",
        "OverloadedError",
    ]
    assert "--max-queued-requests" in str(results[3])
    assert router.passes == [["first"], ["a"], ["b"]]  # the shed calls cost no scoring
    assert (
        metrics.registry.get_sample_value("tierwise_requests_shed_total", {"reason": "queue_full"})
        == 2
    )
    assert to_status(results[3]).code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_calls_that_waited_too_long_are_shed_not_scored_late() -> None:
    router = GatedRouter()
    results, metrics = asyncio.run(_overload(router, ["a", "b"], max_wait_s=0.05))
    assert [type(r).__name__ for r in results] == ["tuple", "OverloadedError", "OverloadedError"]
    assert "--max-queue-wait" in str(results[1])
    assert router.passes == [["first"]]
    assert (
        metrics.registry.get_sample_value("tierwise_requests_shed_total", {"reason": "queue_wait"})
        == 2
    )
    assert metrics.registry.get_sample_value("tierwise_scoring_queued_requests") == 0


def test_a_call_cancelled_while_queued_is_never_scored() -> None:
    async def run() -> GatedRouter:
        router = GatedRouter()
        scorer = Scorer(SimpleNamespace(router=router), 1, Metrics(), 0)  # type: ignore[arg-type]
        first = asyncio.ensure_future(scorer.decide([request("first")]))
        await asyncio.to_thread(router.started.wait, 30)
        gone = asyncio.ensure_future(scorer.decide([request("gone")]))
        kept = asyncio.ensure_future(scorer.decide([request("kept")]))
        await asyncio.sleep(0)
        gone.cancel()  # what gRPC does when the caller's deadline passes
        router.gate.set()
        await asyncio.gather(first, kept)
        scorer.close()
        return router

    assert asyncio.run(run()).passes == [["first"], ["kept"]]


def test_a_call_cancelled_while_its_pass_waits_for_a_worker_is_never_scored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On two cores, three gated passes hold the main session and both workers; the
    fourth pass waits in the pool, and its only call is cancelled meanwhile."""
    monkeypatch.setattr("serving.scoring.default_workers", lambda: 2)

    async def run() -> GatedRouter:
        router = GatedRouter(one_request_per_run=True, gated=3)
        scorer = Scorer(SimpleNamespace(router=router), None, Metrics(), 2048)  # type: ignore[arg-type]
        held = [asyncio.ensure_future(scorer.decide([request(t)])) for t in ("x", "y", "z")]
        gone = asyncio.ensure_future(scorer.decide([request("gone")]))
        await asyncio.sleep(0)  # all four passes handed to the pools
        gone.cancel()
        router.gate.set()
        await asyncio.gather(*held)
        scorer.close()
        return router

    assert sorted(t for texts in asyncio.run(run()).passes for t in texts) == ["x", "y", "z"]
