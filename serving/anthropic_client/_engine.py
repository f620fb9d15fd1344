"""One routed request from decision to shipped answer, shared by both clients.

The sync and async clients differ only in how they wait for the decider and
the API; everything else (which tier, which parameters, what an answer is
worth, what is logged and counted) happens here, step by step, so that the two
cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anthropic.types import Message, TextBlock

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from router_model.router import Decision, DecisionRequest
from router_model.text import content_to_text, flatten, parse_messages
from router_model.tiers import Tier, TierLadder
from serving.anthropic_client.budget import BUDGET_DOWNGRADE, BudgetGuard
from serving.anthropic_client.cache import DecisionCache
from serving.anthropic_client.escalation import (
    GATE_INSTRUCTION,
    Assessment,
    Escalation,
    assess,
    handoff_instruction,
    with_instructions,
)
from serving.anthropic_client.exploration import Exploration
from serving.anthropic_client.judge import Verdict, with_verdict
from serving.anthropic_client.logging_calls import CallLogger, build_call, decision_record
from serving.anthropic_client.metrics import RoutingMetrics
from serving.anthropic_client.result import Attempt, RoutedMessage

AUTO = "auto"


@dataclass(frozen=True)
class Safeguards:
    """Everything a client applies around its calls; shared by all its requests."""

    ladder: TierLadder
    escalation: Escalation = field(default_factory=Escalation)
    budget: BudgetGuard | None = None
    cache: DecisionCache | None = None
    logger: CallLogger = field(default_factory=lambda: CallLogger(None))
    metrics: RoutingMetrics = field(default_factory=RoutingMetrics)
    exploration: Exploration | None = None


@dataclass(frozen=True)
class RouteOptions:
    """The tierwise-specific arguments of ``messages.create``; never sent to the API."""

    model: str | None = None
    quality_target: float | None = None
    max_cost_usd: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    critical: bool = False
    request_id: str | None = None


class RequestRun:
    """The state of one request: call ``next_params`` / ``observe`` until done, then ``finish``."""

    def __init__(self, guards: Safeguards, params: Mapping[str, Any], options: RouteOptions):
        if params.get("stream"):
            raise InvalidInputError("the routed client does not stream; call without it", "stream")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.tags.items()):
            raise InvalidInputError("must map strings to strings", "tags")
        self._guards = guards
        self._params = dict(params)
        self._options = options
        self.request_id = options.request_id or uuid.uuid4().hex
        self.messages = parse_messages(params.get("messages"))
        raw_system = params.get("system")
        self.system = content_to_text(raw_system, "system") if raw_system else None
        self.request = DecisionRequest(
            text=flatten(messages=self.messages, system=self.system),
            request_id=self.request_id,
            quality_target=options.quality_target,
            max_cost_usd=options.max_cost_usd,
            messages=tuple(self.messages),
            system=self.system,
        )
        self.decision: Decision | None = None
        self._routed_tier: str | None = None
        self._cached = False
        self._propensity: float | None = None
        self._explicit = options.model not in (None, AUTO)
        self._next: int | None = None
        self._handoff: tuple[str, str] | None = None
        self._top = len(guards.ladder) - 1
        self._attempts: list[Attempt] = []
        self._shipped: GradedCall | None = None

    @property
    def needs_decision(self) -> bool:
        return not self._explicit and self.decision is None

    def use_cached(self) -> bool:
        """Adopt a cached decision for this request, if there is one (a hit or a miss)."""
        cache = self._guards.cache
        decision = cache.get(self.request) if cache is not None else None
        if decision is not None:
            self.use(decision, cached=True)
        return decision is not None

    def use(self, decision: Decision, *, cached: bool = False) -> None:
        """Adopt the decider's decision, after the budget has had its say."""
        guards = self._guards
        if guards.cache is not None and not cached:
            guards.cache.put(self.request, decision)
        self._cached = cached
        self._routed_tier = decision.tier
        if guards.budget is not None:
            decision = guards.budget.adjust(
                decision, guards.ladder, self._options.tags, critical=self._options.critical
            )
        if guards.exploration is not None:
            decision, self._propensity = guards.exploration.apply(
                decision, guards.ladder, critical=self._options.critical
            )
        self.decision = decision
        self._next = guards.ladder.index(decision.tier)
        self._top = self._highest_allowed(decision)

    def next_params(self) -> dict[str, Any] | None:
        """API arguments of the next attempt, or None when the request is served."""
        if self._explicit:
            return None if self._attempts else {**self._params, "model": self._options.model}
        if self._next is None:
            if self.decision is None:
                raise RuntimeError("next_params() before a decision was adopted")
            return None
        instructions = []
        if self._handoff is not None:
            instructions.append(handoff_instruction(*self._handoff))
        if self._gated(self._next):
            instructions.append(GATE_INSTRUCTION)
        params = {**self._params, "model": self._guards.ladder.tiers[self._next].model}
        if instructions:
            params["system"] = with_instructions(self._params.get("system"), instructions)
        return params

    def observe(self, message: Message, latency_s: float, started: datetime) -> Attempt:
        """Judge one answer and decide whether another tier must try."""
        guards = self._guards
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
        index = self._next
        if index is None:
            requested = str(self._options.model)
            tier = guards.ladder.tier_for_model(requested)
            assessment = Assessment(text, None, rejection=None, grade=None, grader=None)
        else:
            tier = guards.ladder.tiers[index]
            requested = tier.model
            assessment = assess(guards.escalation, text, gated=self._gated(index))
        attempt = self._attempt(message, requested, tier, assessment, latency_s)
        self._attempts.append(attempt)
        self._record_spend(attempt)
        call = self._call(attempt, tier, assessment, started)
        if index is not None and not assessment.accepted and index < self._top:
            guards.logger.submit(call)
            self._next = index + 1
            if guards.escalation.handoff and assessment.rejection is not None:
                self._handoff = (assessment.answer, assessment.rejection)
        else:
            self._shipped = call
            self._next = None
        return attempt

    @property
    def shipped_call(self) -> GradedCall | None:
        """The record of the answer being shipped, before it is logged."""
        return self._shipped

    def finish(self, verdict: Verdict | None = None) -> RoutedMessage:
        """Log the shipped answer (with the judge's grade, if any) and count the request."""
        call, guards = self._shipped, self._guards
        if call is None:
            raise RuntimeError("finish() before an answer was observed")
        if verdict is not None:
            call = with_verdict(call, verdict)
        guards.logger.submit(call)
        downgraded = self.decision is not None and self.decision.rule == BUDGET_DOWNGRADE
        shipped = self._attempts[-1]
        guards.metrics.record_request(
            tier=shipped.tier, escalated=len(self._attempts) > 1, downgraded=downgraded
        )
        return RoutedMessage(
            message=shipped.message,
            text=shipped.answer,
            request_id=self.request_id,
            decision=self.decision,
            attempts=tuple(self._attempts),
            accepted=shipped.accepted,
            cached_decision=self._cached,
        )

    def _gated(self, index: int) -> bool:
        return self._guards.escalation.confidence_threshold is not None and index < self._top

    def _highest_allowed(self, decision: Decision) -> int:
        """Escalation never climbs to a tier whose expected cost breaks the ceiling."""
        ceiling, ladder = self._options.max_cost_usd, self._guards.ladder
        start = ladder.index(decision.tier)
        if ceiling is None:
            return len(ladder) - 1
        top = start
        while top + 1 < len(ladder):
            expected = decision.expected_cost_usd.get(ladder.tiers[top + 1].name)
            if expected is not None and expected > ceiling:
                break
            top += 1
        return top

    def _attempt(
        self,
        message: Message,
        requested: str,
        tier: Tier | None,
        assessment: Assessment,
        latency_s: float,
    ) -> Attempt:
        tokens_in = _input_tokens(message)
        tokens_out = message.usage.output_tokens
        return Attempt(
            number=len(self._attempts) + 1,
            tier=tier.name if tier is not None else None,
            model=message.model or requested,
            message=message,
            answer=assessment.answer,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=tier.cost_usd(tokens_in, tokens_out) if tier is not None else None,
            latency_ms=1000.0 * latency_s,
            confidence=assessment.confidence,
            rejection=assessment.rejection,
            grader=assessment.grader,
            handoff=self._handoff is not None,
        )

    def _record_spend(self, attempt: Attempt) -> None:
        self._guards.metrics.record_spend(attempt.tier, attempt.cost_usd)
        if self._guards.budget is not None and attempt.cost_usd is not None:
            self._guards.budget.record(attempt.cost_usd, self._options.tags)

    def _call(
        self, attempt: Attempt, tier: Tier | None, assessment: Assessment, started: datetime
    ) -> GradedCall:
        """The attempt as logged: the caller's request, not the prompt as amended.

        Every attempt of a request carries the same request text, because the
        log groups attempts by request and the router learns from that text;
        handoff and gate instructions are implementation details of serving.
        """
        extra: dict[str, Any] = {
            "decision": decision_record(
                self.decision, self._routed_tier, self._propensity if attempt.number == 1 else None
            ),
            "attempt": attempt.number,
            "answer": attempt.answer,
        }
        if attempt.confidence is not None:
            extra["confidence"] = attempt.confidence
        if attempt.rejection is not None:
            extra["rejection"] = attempt.rejection
        if attempt.handoff:
            extra["handoff"] = True
        return build_call(
            request_id=self.request_id,
            timestamp=started.astimezone(UTC),
            messages=self.messages,
            system=self.system,
            model=attempt.model,
            tier=tier,
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            latency_ms=attempt.latency_ms,
            tags=self._options.tags,
            extra=extra,
            grade=assessment.grade,
            grader=assessment.grader,
        )


def _input_tokens(message: Message) -> int:
    """Every input token the model read, cached or not (the API reports them apart)."""
    usage = message.usage
    return (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )


def now() -> datetime:
    return datetime.now(UTC)
