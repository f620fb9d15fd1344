"""Coalescing of concurrent calls in the scorer, with a stand-in router so that
the order of events is controlled rather than timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from router_model.router import Decision, DecisionRequest
from router_model.text import RequestText
from serving.metrics import Metrics
from serving.scoring import Scorer


class GatedRouter:
    """Decides by echoing the text; the first pass waits until the test opens the gate."""

    def __init__(self) -> None:
        self.manifest = SimpleNamespace(truncation=SimpleNamespace(max_tokens=256))
        self.gate = threading.Event()
        self.started = threading.Event()
        self.passes: list[list[str]] = []

    def decide(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        texts = [r.text.text for r in requests]
        self.passes.append(texts)
        if len(self.passes) == 1:
            self.started.set()
            self.gate.wait(30)
        if any(t.startswith("poison") for t in texts):
            raise RuntimeError("poisoned request")
        return [Decision(r.request_id, r.text.text, "m", "rule", {}, {}, "v") for r in requests]


def request(text: str) -> DecisionRequest:
    return DecisionRequest(text=RequestText(text, 1, False), request_id=text)


async def _run(router: GatedRouter, texts: list[str], budget: int) -> list[Any]:
    scorer = Scorer(SimpleNamespace(router=router), 1, Metrics(), budget)  # type: ignore[arg-type]
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
