"""The ``tierwise.v1.Router`` service: convert messages, delegate, convert back.

Failures are raised as the project's exceptions and turned into status codes
by the interceptor (``serving.interceptor``), so no method here sets a code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from router_model.router import Decision, DecisionRequest
from serving import convert
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving.config import Limits
from serving.logs import fields
from serving.metrics import Metrics
from serving.scoring import Scorer
from serving.shadow.server_side import ShadowScorer

logger = logging.getLogger("tierwise.serving.decisions")


class RouterServicer:
    """Implements the RPCs of ``protos/tierwise/v1/router.proto``."""

    def __init__(
        self,
        scorer: Scorer,
        limits: Limits,
        metrics: Metrics,
        log_prompts: bool = False,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self._scorer = scorer
        self._shadow = shadow
        self._limits = limits
        self._metrics = metrics
        self._log_prompts = log_prompts

    async def Predict(self, request: pb.PredictRequest, context: Any) -> pb.PredictResponse:
        start = time.perf_counter()
        decision_request = convert.decision_request(request, self._limits)
        router, [decision] = await self._scorer.decide([decision_request])
        latency_ms = _ms_since(start)
        self._record([decision_request], [decision], [request.tags], latency_ms)
        if self._shadow is not None:
            self._shadow.offer([decision_request], [decision])
        return convert.predict_response(decision, router.ladder, latency_ms)

    async def PredictBatch(
        self, request: pb.PredictBatchRequest, context: Any
    ) -> pb.PredictBatchResponse:
        start = time.perf_counter()
        decision_requests = convert.decision_requests(request, self._limits)
        router, decisions = await self._scorer.decide(decision_requests)
        latency_ms = _ms_since(start)
        self._record(decision_requests, decisions, [r.tags for r in request.requests], latency_ms)
        if self._shadow is not None:
            self._shadow.offer(decision_requests, decisions)
        return pb.PredictBatchResponse(
            responses=[convert.predict_response(d, router.ladder, latency_ms) for d in decisions],
            router_version=router.version,
            server_latency_ms=latency_ms,
        )

    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: Any
    ) -> pb.GetModelInfoResponse:
        return convert.model_info(self._scorer.model.router)

    def _record(
        self,
        requests: Sequence[DecisionRequest],
        decisions: Sequence[Decision],
        tags: Sequence[Mapping[str, str]],
        latency_ms: float,
    ) -> None:
        self._metrics.observe_decisions(decisions)
        if logger.isEnabledFor(logging.INFO):
            # After the response is on its way: writing the lines first held
            # up a short call's answer by about 0.1 ms at p50.
            calls = list(zip(requests, decisions, tags, strict=True))
            asyncio.get_running_loop().call_soon(self._log_decisions, calls, latency_ms)

    def _log_decisions(
        self,
        calls: Sequence[tuple[DecisionRequest, Decision, Mapping[str, str]]],
        latency_ms: float,
    ) -> None:
        for request, decision, request_tags in calls:
            entry: dict[str, Any] = {
                "request_id": decision.request_id,
                "tier": decision.tier,
                "model": decision.model,
                "rule": decision.rule,
                "router_version": decision.router_version,
                "expected_cost_usd": decision.expected_cost_usd[decision.tier],
                "prompt_chars": len(request.text.text),
                "tags": dict(request_tags),
                "latency_ms": round(latency_ms, 3),
            }
            if self._log_prompts:
                entry["prompt"] = request.text.text
            logger.info("decision", extra=fields(**entry))


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
