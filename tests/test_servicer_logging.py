"""The servicer answers first and writes its decision log line after, with a
stand-in router so that the order of events is controlled rather than timed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from router_model.router import Decision, DecisionRequest
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving.config import Limits
from serving.logs import JsonFormatter
from serving.metrics import Metrics
from serving.scoring import Scorer
from serving.servicer import RouterServicer


class OneTierRouter:
    """Decides every request for its only tier."""

    manifest = SimpleNamespace(truncation=SimpleNamespace(max_tokens=256))
    ladder = SimpleNamespace(tiers=[SimpleNamespace(name="small", model="small-model")])
    version = "v-test"
    one_request_per_run = False

    def decide(
        self, requests: Sequence[DecisionRequest], single_threaded: bool = False
    ) -> list[Decision]:
        return [
            Decision(
                r.request_id,
                "small",
                "small-model",
                "cost_aware",
                {"small": 0.9},
                {"small": 0.002},
                self.version,
            )
            for r in requests
        ]


def decision_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    return [line for line in lines if line["logger"] == "tierwise.serving.decisions"]


def test_the_decision_is_logged_after_the_answer_and_counted_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        metrics = Metrics()
        scorer = Scorer(SimpleNamespace(router=OneTierRouter()), 1, metrics, 512)  # type: ignore[arg-type]
        servicer = RouterServicer(scorer, Limits(), metrics)
        request = pb.PredictRequest(prompt="hello there", request_id="r1", tags={"team": "a"})
        response = await servicer.Predict(request, None)
        assert response.tier == "small"
        counted = metrics.registry.get_sample_value(
            "tierwise_decisions_total", {"tier": "small", "rule": "cost_aware"}
        )
        assert counted == 1.0
        assert decision_lines(caplog) == []  # not yet: the answer goes first
        await asyncio.sleep(0)
        [line] = decision_lines(caplog)
        assert line["request_id"] == "r1" and line["tags"] == {"team": "a"}
        assert line["prompt_chars"] == len("hello there") and "prompt" not in line
        scorer.close()

    with caplog.at_level(logging.INFO, logger="tierwise"):
        asyncio.run(run())
