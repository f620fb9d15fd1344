"""``RoutedAnthropic``: the Messages API, with the model chosen per request.

Routing a call::

    router = Router.load("models/default")
    claude = RoutedAnthropic(InProcessDecider(router), anthropic.Anthropic())
    reply = claude.messages.create(max_tokens=512, messages=[{"role": "user", "content": q}])
    print(reply.text, reply.tier, reply.rule)

Everything but ``model`` is passed to the SDK as given; ``model="auto"`` (or no
model) routes, any other model is called as named and only logged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from anthropic.types import Message

from serving.anthropic_client._engine import AUTO, RequestRun, RouteOptions, Safeguards, now
from serving.anthropic_client.budget import BudgetGuard
from serving.anthropic_client.cache import DecisionCache
from serving.anthropic_client.deciders import Decider
from serving.anthropic_client.escalation import Escalation
from serving.anthropic_client.exploration import Exploration
from serving.anthropic_client.judge import Judge
from serving.anthropic_client.logging_calls import CallLogger, CallSink
from serving.anthropic_client.metrics import RoutingMetrics
from serving.anthropic_client.result import RoutedMessage

if TYPE_CHECKING:
    import anthropic


class RoutedAnthropic:
    """A blocking Anthropic client that routes each request to the cheapest likely tier.

    ``max_retries`` sets the SDK's own retry count (429 rate limits and
    529/5xx overloads are retried with exponential backoff, honouring
    ``retry-after``); None keeps the client's setting.
    """

    def __init__(
        self,
        decider: Decider,
        client: anthropic.Anthropic | None = None,
        *,
        log: CallSink | None = None,
        escalation: Escalation | None = None,
        budget: BudgetGuard | None = None,
        cache: DecisionCache | None = None,
        metrics: RoutingMetrics | None = None,
        judge: Judge | None = None,
        max_retries: int | None = None,
        exploration: Exploration | None = None,
    ) -> None:
        if client is None:
            import anthropic

            client = anthropic.Anthropic()
        if max_retries is not None:
            client = client.with_options(max_retries=max_retries)
        self.decider = decider
        self.client = client
        self.judge = judge
        self.safeguards = Safeguards(
            ladder=decider.ladder,
            escalation=escalation or Escalation(),
            budget=budget,
            cache=cache,
            logger=CallLogger(log),
            metrics=metrics or RoutingMetrics(),
            exploration=exploration,
        )
        self.messages = RoutedMessages(self)

    @property
    def metrics(self) -> RoutingMetrics:
        return self.safeguards.metrics

    @property
    def cache(self) -> DecisionCache | None:
        return self.safeguards.cache

    @property
    def budget(self) -> BudgetGuard | None:
        return self.safeguards.budget

    @property
    def call_log(self) -> CallLogger:
        return self.safeguards.logger

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RoutedAnthropic:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RoutedMessages:
    """``.messages`` of a routed client; mirrors the SDK's ``messages`` resource."""

    def __init__(self, owner: RoutedAnthropic) -> None:
        self._owner = owner

    def create(
        self,
        *,
        model: str = AUTO,
        quality_target: float | None = None,
        max_cost_usd: float | None = None,
        tags: Mapping[str, str] | None = None,
        critical: bool = False,
        request_id: str | None = None,
        **params: Any,
    ) -> RoutedMessage:
        """Route, call, check and log one request; ``params`` go to the SDK unchanged.

        ``quality_target``, ``max_cost_usd``, ``tags``, ``critical`` and
        ``request_id`` steer routing and logging and are never sent to the API.
        """
        owner = self._owner
        options = RouteOptions(
            model=model,
            quality_target=quality_target,
            max_cost_usd=max_cost_usd,
            tags=dict(tags or {}),
            critical=critical,
            request_id=request_id,
        )
        run = RequestRun(owner.safeguards, params, options)
        if run.needs_decision and not run.use_cached():
            run.use(owner.decider.decide(run.request))
        while (call_params := run.next_params()) is not None:
            started, clock = now(), time.perf_counter()
            message: Message = owner.client.messages.create(**call_params)
            run.observe(message, time.perf_counter() - clock, started)
        verdict = None
        shipped = run.shipped_call
        if owner.judge is not None and shipped is not None and shipped.grade is None:
            verdict = owner.judge.maybe_grade(shipped)
        return run.finish(verdict)
