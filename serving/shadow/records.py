"""The one representation of a shadow decision in the call log.

A shadow decision is a routing decision that was computed and logged but not
applied. It is stored as an ordinary ``GradedCall`` so that it lives in the
same store as the answered calls and can be joined with their grades, but it
is marked so that nothing mistakes it for an answered call:

- ``request_id`` is ``<request id>:shadow:<router>``, never the request's own
  id, so that ``set_grade(request_id)`` (user feedback) never grades it;
- ``extra["shadow_of"]`` holds the request's own id, the join key;
- ``tags`` carry ``role=shadow`` and ``router=current|challenger``;
- ``model``/``tier`` are the decided tier's, ``grade`` is always unset;
- the request text is never stored (``prompt`` is empty): only its length
  and whether it holds code, under ``extra["input"]``, which drift needs;
- ``extra["decision"]`` holds the decision: tier, rule, P(success) and
  expected cost of every tier, router version.

Exports for training must skip these records: ``is_shadow(call)`` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from router_model.features import FEATURE_NAMES, scalar_features
from router_model.router import Decision
from router_model.text import RequestText

ROLE_TAG = "role"
SHADOW_ROLE = "shadow"
ROUTER_TAG = "router"
CURRENT = "current"
CHALLENGER = "challenger"
SHADOW_OF = "shadow_of"
_HAS_CODE = FEATURE_NAMES.index("has_code")


@dataclass(frozen=True)
class InputStats:
    """What drift needs to know about a request, without its text."""

    chars: int
    has_code: bool

    @classmethod
    def of(cls, text: RequestText) -> InputStats:
        code = bool(scalar_features([text])[0, _HAS_CODE] > 0.5)
        return cls(chars=len(text.text), has_code=code)


@dataclass(frozen=True)
class ShadowDecision:
    """A shadow record read back: the decision of one router for one request."""

    request_id: str
    router: str
    timestamp: datetime
    tier: str
    rule: str
    p_success: Mapping[str, float]
    expected_cost_usd: Mapping[str, float]
    router_version: str
    input: InputStats | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def chosen_cost_usd(self) -> float:
        return self.expected_cost_usd[self.tier]

    @property
    def chosen_p_success(self) -> float:
        return self.p_success[self.tier]


def shadow_id(request_id: str, router: str) -> str:
    return f"{request_id}:{SHADOW_ROLE}:{router}"


def shadow_record(
    decision: Decision,
    *,
    request_id: str,
    router: str,
    stats: InputStats | None = None,
    timestamp: datetime | None = None,
    tags: Mapping[str, str] | None = None,
) -> GradedCall:
    """The record of ``decision``, made for request ``request_id`` by ``router``
    (``current`` or ``challenger`` server-side; any label client-side)."""
    extra: dict[str, Any] = {
        "decision": {
            "tier": decision.tier,
            "rule": decision.rule,
            "p_success": dict(decision.p_success),
            "expected_cost_usd": dict(decision.expected_cost_usd),
            "router_version": decision.router_version,
        },
        SHADOW_OF: request_id,
    }
    if stats is not None:
        extra["input"] = {"chars": stats.chars, "has_code": stats.has_code}
    return GradedCall(
        request_id=shadow_id(request_id, router),
        timestamp=timestamp or datetime.now(UTC),
        model=decision.model,
        prompt="",
        tier=decision.tier,
        tags={**(tags or {}), ROLE_TAG: SHADOW_ROLE, ROUTER_TAG: router},
        extra=extra,
    )


def is_shadow(call: GradedCall) -> bool:
    """True for shadow-decision records: they were never answered and must not train."""
    return call.tags.get(ROLE_TAG) == SHADOW_ROLE


def parse_shadow(call: GradedCall) -> ShadowDecision:
    """Read a shadow record back; raises ``InvalidInputError`` naming what is missing."""
    if not is_shadow(call):
        raise InvalidInputError(f"{call.request_id}: not a shadow record", "tags")
    decision = call.extra.get("decision")
    shadow_of = call.extra.get(SHADOW_OF)
    if not isinstance(decision, Mapping) or not isinstance(shadow_of, str):
        raise InvalidInputError(f"{call.request_id}: needs 'decision' and 'shadow_of'", "extra")
    try:
        p_success = {str(k): float(v) for k, v in decision["p_success"].items()}
        costs = {str(k): float(v) for k, v in decision["expected_cost_usd"].items()}
        tier = str(decision["tier"])
        rule = str(decision["rule"])
        version = str(decision["router_version"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{call.request_id}: malformed decision ({exc})", "extra") from None
    if tier not in p_success or tier not in costs:
        raise InvalidInputError(f"{call.request_id}: tier {tier!r} has no scores", "extra")
    return ShadowDecision(
        request_id=shadow_of,
        router=call.tags.get(ROUTER_TAG, CURRENT),
        timestamp=call.timestamp,
        tier=tier,
        rule=rule,
        p_success=p_success,
        expected_cost_usd=costs,
        router_version=version,
        input=_input(call.extra.get("input")),
        tags={k: v for k, v in call.tags.items() if k not in (ROLE_TAG, ROUTER_TAG)},
    )


def _input(raw: object) -> InputStats | None:
    if not isinstance(raw, Mapping):
        return None
    values = cast(Mapping[str, Any], raw)
    chars, code = values.get("chars"), values.get("has_code")
    if isinstance(chars, int) and isinstance(code, bool):
        return InputStats(chars=chars, has_code=code)
    return None
