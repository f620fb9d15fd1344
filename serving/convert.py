"""Between protobuf messages and the router's own types.

Every check that needs only the request happens here, before any scoring, so
a batch with one bad request fails fast and the error names the field by its
full path (``requests[3].quality_target``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from router_model import policy
from router_model.errors import InvalidInputError
from router_model.router import Decision, DecisionRequest, Router
from router_model.text import RequestText, flatten, parse_messages
from router_model.tiers import TierLadder
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving.config import Limits


def decision_request(msg: pb.PredictRequest, limits: Limits, path: str = "") -> DecisionRequest:
    """Validate one request; errors name the field under ``path`` (e.g. ``requests[0].``)."""
    try:
        return DecisionRequest(
            text=_request_text(msg, limits),
            request_id=msg.request_id if msg.HasField("request_id") else None,
            quality_target=_quality_target(msg),
            max_cost_usd=_max_cost(msg),
            rule=_rule(msg),
        )
    except InvalidInputError as exc:
        if not path:
            raise
        raise InvalidInputError(_bare(exc), path + exc.field if exc.field else path[:-1]) from None


def decision_requests(msg: pb.PredictBatchRequest, limits: Limits) -> list[DecisionRequest]:
    if not msg.requests:
        raise InvalidInputError("must hold at least one request", "requests")
    if len(msg.requests) > limits.max_batch_size:
        raise InvalidInputError(
            f"holds {len(msg.requests)} requests; this server accepts at most "
            f"{limits.max_batch_size} per call",
            "requests",
        )
    return [decision_request(r, limits, f"requests[{i}].") for i, r in enumerate(msg.requests)]


def predict_response(
    decision: Decision, ladder: TierLadder, latency_ms: float = 0.0
) -> pb.PredictResponse:
    return pb.PredictResponse(
        request_id=decision.request_id or "",
        tier=decision.tier,
        model=decision.model,
        rule=decision.rule,
        scores=[
            pb.TierScore(
                tier=t.name,
                model=t.model,
                p_success=decision.p_success[t.name],
                expected_cost_usd=decision.expected_cost_usd[t.name],
            )
            for t in ladder.tiers
        ],
        router_version=decision.router_version,
        server_latency_ms=latency_ms,
    )


def model_info(router: Router) -> pb.GetModelInfoResponse:
    manifest = router.manifest
    embedder = manifest.raw.get("embedder", {})
    response = pb.GetModelInfoResponse(
        router_version=router.version,
        created_at=str(manifest.raw.get("created_at", "")),
        tiers=[
            pb.TierInfo(
                name=t.name,
                model=t.model,
                input_usd_per_mtok=t.input_usd_per_mtok,
                output_usd_per_mtok=t.output_usd_per_mtok,
                aliases=list(t.models),
            )
            for t in router.ladder.tiers
        ],
        default_policy=pb.PolicyInfo(
            default_rule=manifest.policy.default_rule,
            default_quality_target=manifest.policy.default_quality_target,
            rules=list(policy.RULES),
        ),
        embedder=str(embedder.get("id", "")) if isinstance(embedder, Mapping) else "",
    )
    response.metrics.update(_json_safe(manifest.metrics))
    return response


def _request_text(msg: pb.PredictRequest, limits: Limits) -> RequestText:
    prompt = msg.prompt if msg.HasField("prompt") else None
    messages = (
        parse_messages([{"role": m.role, "content": m.content} for m in msg.messages])
        if msg.messages
        else ()
    )
    text = flatten(prompt, messages, msg.system if msg.HasField("system") else None)
    field = "prompt" if prompt is not None else "messages"
    if not (prompt if prompt is not None else "".join(m.content for m in messages)).strip():
        raise InvalidInputError("must not be empty", field)
    if len(text.text) > limits.max_prompt_chars:
        raise InvalidInputError(
            f"request text is {len(text.text)} characters; this server accepts at most "
            f"{limits.max_prompt_chars}",
            field,
        )
    return text


def _quality_target(msg: pb.PredictRequest) -> float | None:
    if not msg.HasField("quality_target"):
        return None
    value = msg.quality_target
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise InvalidInputError(f"must be a number in (0, 1], got {value!r}", "quality_target")
    return value


def _max_cost(msg: pb.PredictRequest) -> float | None:
    if not msg.HasField("max_cost_usd"):
        return None
    value = msg.max_cost_usd
    if not math.isfinite(value) or value <= 0.0:
        raise InvalidInputError(f"must be a positive number, got {value!r}", "max_cost_usd")
    return value


def _rule(msg: pb.PredictRequest) -> str | None:
    if not msg.HasField("rule"):
        return None
    if msg.rule not in policy.RULES:
        raise InvalidInputError(
            f"unknown rule {msg.rule!r}; choose one of {list(policy.RULES)}", "rule"
        )
    return msg.rule


def _bare(exc: InvalidInputError) -> str:
    text = str(exc)
    return text.removeprefix(f"field '{exc.field}': ") if exc.field else text


def _json_safe(value: Any) -> Any:
    """Struct holds JSON: NaN and infinities (written by some metrics) become null."""
    return json.loads(json.dumps(value, default=str), parse_constant=lambda _: None)
