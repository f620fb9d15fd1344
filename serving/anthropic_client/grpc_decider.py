"""Decisions from a tierwise server over gRPC, for services that do not load the model.

The request is forwarded as sent (messages and system prompt), so the server
computes exactly the features it would for a direct ``Predict`` call. The
ladder (tiers, models, prices) is read once from ``GetModelInfo``; the client
prices its logged calls with it.
"""

from __future__ import annotations

from router_model.router import Decision, DecisionRequest
from router_model.tiers import Tier, TierLadder
from serving.client import TierwiseClient
from serving.results import ModelInfo


def ladder_from_info(info: ModelInfo) -> TierLadder:
    return TierLadder(
        tiers=tuple(
            Tier(t.name, t.model, t.input_usd_per_mtok, t.output_usd_per_mtok, t.aliases)
            for t in info.tiers
        )
    )


class GrpcDecider:
    """A ``Decider`` backed by ``TierwiseClient`` (timeouts and retries are the client's)."""

    def __init__(self, client: TierwiseClient) -> None:
        self._client = client
        self._ladder = ladder_from_info(client.model_info())

    @property
    def ladder(self) -> TierLadder:
        return self._ladder

    def decide(self, request: DecisionRequest) -> Decision:
        if request.messages:
            conversation = [{"role": m.role, "content": m.content} for m in request.messages]
            result = self._client.predict(
                messages=conversation,
                system=request.system,
                quality_target=request.quality_target,
                max_cost_usd=request.max_cost_usd,
                rule=request.rule,
                request_id=request.request_id,
            )
        else:
            result = self._client.predict(
                request.text.text,
                quality_target=request.quality_target,
                max_cost_usd=request.max_cost_usd,
                rule=request.rule,
                request_id=request.request_id,
            )
        return Decision(
            request_id=request.request_id,
            tier=result.tier,
            model=result.model,
            rule=result.rule,
            p_success=dict(result.p_success),
            expected_cost_usd=dict(result.expected_cost_usd),
            router_version=result.router_version,
        )
