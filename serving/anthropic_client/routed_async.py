"""``AsyncRoutedAnthropic``: the routed client for asyncio services.

Same behaviour as ``RoutedAnthropic``; a blocking decider (such as the
in-process router) is run in a worker thread so the event loop is not held
while the request is scored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from anthropic.types import Message

from serving.anthropic_client._engine import AUTO, RequestRun, RouteOptions, Safeguards, now
from serving.anthropic_client.budget import BudgetGuard
from serving.anthropic_client.cache import DecisionCache
from serving.anthropic_client.deciders import AsyncDecider, Decider, as_async
from serving.anthropic_client.escalation import Escalation
from serving.anthropic_client.exploration import Exploration
from serving.anthropic_client.judge import AsyncJudge
from serving.anthropic_client.logging_calls import CallLogger, CallSink
from serving.anthropic_client.metrics import RoutingMetrics
from serving.anthropic_client.result import RoutedMessage

if TYPE_CHECKING:
    import anthropic


class AsyncRoutedAnthropic:
    """An ``anthropic.AsyncAnthropic`` that routes each request; see ``RoutedAnthropic``."""

    def __init__(
        self,
        decider: Decider | AsyncDecider,
        client: anthropic.AsyncAnthropic | None = None,
        *,
        log: CallSink | None = None,
        escalation: Escalation | None = None,
        budget: BudgetGuard | None = None,
        cache: DecisionCache | None = None,
        metrics: RoutingMetrics | None = None,
        judge: AsyncJudge | None = None,
        max_retries: int | None = None,
        exploration: Exploration | None = None,
    ) -> None:
        if client is None:
            import anthropic

            client = anthropic.AsyncAnthropic()
        if max_retries is not None:
            client = client.with_options(max_retries=max_retries)
        self.decider = as_async(decider)
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
        self.messages = AsyncRoutedMessages(self)

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

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> AsyncRoutedAnthropic:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncRoutedMessages:
    """``.messages`` of the async routed client."""

    def __init__(self, owner: AsyncRoutedAnthropic) -> None:
        self._owner = owner

    async def create(
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
        """Route, call, check and log one request; ``params`` go to the SDK unchanged."""
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
            run.use(await owner.decider.decide(run.request))
        while (call_params := run.next_params()) is not None:
            started, clock = now(), time.perf_counter()
            message: Message = await owner.client.messages.create(**call_params)
            run.observe(message, time.perf_counter() - clock, started)
        verdict = None
        shipped = run.shipped_call
        if owner.judge is not None and shipped is not None and shipped.grade is None:
            verdict = await owner.judge.maybe_grade(shipped)
        return run.finish(verdict)
