"""Every attempt becomes a graded-call record, handed to a sink.

The call log is where the router's next training data comes from, so each
attempt is logged, including rejected ones (they are the labels that say a
tier was not enough). Logging must never cost the caller an answer: a sink
that raises or refuses is counted and reported in the service's log, and the
call goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from router_model.calls import GradedCall
from router_model.router import Decision
from router_model.text import Message
from router_model.tiers import Tier

log = logging.getLogger(__name__)


@runtime_checkable
class CallSink(Protocol):
    """Anything that accepts graded calls; returns False when it drops one."""

    def submit(self, call: GradedCall) -> bool: ...


class MemorySink:
    """Keeps calls in a list: for tests, notebooks and quick inspection."""

    def __init__(self) -> None:
        self.calls: list[GradedCall] = []
        self._lock = threading.Lock()

    def submit(self, call: GradedCall) -> bool:
        with self._lock:
            self.calls.append(call)
        return True


class CallLogger:
    """Submits calls to an optional sink and absorbs its failures."""

    def __init__(self, sink: CallSink | None) -> None:
        self.sink = sink
        self.submitted = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def submit(self, call: GradedCall) -> bool:
        if self.sink is None:
            return False
        try:
            ok = bool(self.sink.submit(call))
        except Exception:
            log.warning("call log sink failed; call %s not logged", call.request_id, exc_info=True)
            ok = False
        with self._lock:
            if ok:
                self.submitted += 1
            else:
                self.dropped += 1
        return ok


def build_call(
    *,
    request_id: str,
    timestamp: datetime,
    messages: tuple[Message, ...],
    system: str | None,
    model: str,
    tier: Tier | None,
    input_tokens: int,
    output_tokens: int,
    latency_ms: float | None,
    tags: Mapping[str, str],
    extra: Mapping[str, Any],
    grade: float | None = None,
    grader: str | None = None,
) -> GradedCall:
    """One attempt as a record; the cost is priced from the tier, when the model has one."""
    return GradedCall(
        request_id=request_id,
        timestamp=timestamp,
        model=model,
        messages=messages,
        system=system,
        tier=tier.name if tier is not None else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=tier.cost_usd(input_tokens, output_tokens) if tier is not None else None,
        grade=grade,
        grader=grader,
        latency_ms=latency_ms,
        tags=dict(tags),
        extra=dict(extra),
    )


def decision_record(
    decision: Decision | None, routed_tier: str | None, propensity: float | None = None
) -> dict[str, Any] | None:
    """The decision as logged with each attempt; ``routed_tier`` when the budget moved it,
    ``propensity`` (the probability the answering tier was chosen) when exploring."""
    if decision is None:
        return None
    out: dict[str, Any] = {
        "tier": decision.tier,
        "rule": decision.rule,
        "p_success": dict(decision.p_success),
        "router_version": decision.router_version,
    }
    if routed_tier is not None and routed_tier != decision.tier:
        out["routed_tier"] = routed_tier
    if propensity is not None:
        out["propensity"] = propensity
    return out
