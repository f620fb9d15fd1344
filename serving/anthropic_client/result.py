"""What a routed call returns: the SDK's message plus how it was routed.

The SDK's ``Message`` is returned untouched in ``.message`` rather than
subclassed or patched, so that it stays exactly what the API sent (with the
confidence gate, that is the JSON form) and keeps working with everything
that expects one. The routing information sits next to it, typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from anthropic.types import Message

from router_model.router import Decision

EXPLICIT_MODEL = "explicit_model"


@dataclass(frozen=True)
class Attempt:
    """One call to one model while serving a request."""

    number: int
    tier: str | None
    model: str
    message: Message
    answer: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_ms: float
    confidence: float | None = None
    rejection: str | None = None
    grader: str | None = None
    handoff: bool = False

    @property
    def accepted(self) -> bool:
        return self.rejection is None


@dataclass(frozen=True)
class RoutedMessage:
    """The answer that was shipped, with the decision and every attempt behind it.

    ``decision`` is what the request was routed to (after any budget
    downgrade; None when the caller named a model); ``tier`` is the tier that
    produced the shipped answer, higher than ``decision.tier`` after an
    escalation. ``text`` is the shipped answer (unwrapped from the confidence
    form); ``accepted`` is False when even the top tier's answer was rejected.
    """

    message: Message
    text: str
    request_id: str
    decision: Decision | None
    attempts: tuple[Attempt, ...]
    accepted: bool
    cached_decision: bool = False

    @property
    def tier(self) -> str | None:
        return self.attempts[-1].tier

    @property
    def model(self) -> str:
        return self.attempts[-1].model

    @property
    def rule(self) -> str:
        return self.decision.rule if self.decision is not None else EXPLICIT_MODEL

    @property
    def escalated(self) -> bool:
        return len(self.attempts) > 1

    @property
    def cost_usd(self) -> float | None:
        """Total cost of every attempt; None when a model had no price."""
        costs = [a.cost_usd for a in self.attempts]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
