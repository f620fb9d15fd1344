"""Where routing decisions come from.

The routed client only needs two things from a decision source: the tier
ladder (to price calls and to know which tier is next up or down) and one
decision per request. Keeping that behind a protocol lets the same client
route in process today and through the gRPC service tomorrow, without the
client knowing which.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from typing import Protocol, cast, runtime_checkable

from router_model.errors import ConfigError
from router_model.router import Decision, DecisionRequest, Router
from router_model.tiers import TierLadder


@runtime_checkable
class Decider(Protocol):
    """A blocking decision source."""

    @property
    def ladder(self) -> TierLadder: ...

    def decide(self, request: DecisionRequest) -> Decision: ...


@runtime_checkable
class AsyncDecider(Protocol):
    """A decision source for event loops (e.g. a gRPC aio stub)."""

    @property
    def ladder(self) -> TierLadder: ...

    async def decide(self, request: DecisionRequest) -> Decision: ...


class InProcessDecider:
    """Decides with a router loaded in this process.

    ``ladder`` re-maps the router's rungs onto other models (and their prices)
    with the same tier names: a router trained on generic small / medium /
    large rungs is served with the models a team actually calls. The decision
    itself (probabilities, expected costs, rule) stays the router's; the
    ladder's prices are what logged calls are billed with.
    """

    def __init__(self, router: Router, ladder: TierLadder | None = None) -> None:
        if ladder is not None and ladder.names != router.ladder.names:
            raise ConfigError(
                f"the serving ladder's tiers {list(ladder.names)} must equal the router's "
                f"{list(router.ladder.names)}, in the same order"
            )
        self._router = router
        self._ladder = ladder if ladder is not None else router.ladder

    @property
    def ladder(self) -> TierLadder:
        return self._ladder

    @property
    def router(self) -> Router:
        return self._router

    def decide(self, request: DecisionRequest) -> Decision:
        decision = self._router.decide([request])[0]
        model = self._ladder.by_name(decision.tier).model
        if model == decision.model:
            return decision
        return dataclasses.replace(decision, model=model)


class ThreadedDecider:
    """Runs a blocking decider in a worker thread so the event loop keeps serving.

    Scoring runs ONNX on the CPU for a few milliseconds; doing that on the
    loop would stall every other request of an async service meanwhile.
    """

    def __init__(self, decider: Decider) -> None:
        self._decider = decider

    @property
    def ladder(self) -> TierLadder:
        return self._decider.ladder

    async def decide(self, request: DecisionRequest) -> Decision:
        return await asyncio.to_thread(self._decider.decide, request)


def as_async(decider: Decider | AsyncDecider) -> AsyncDecider:
    """An async view of any decider; async ones are returned unchanged."""
    if inspect.iscoroutinefunction(decider.decide):
        return cast(AsyncDecider, decider)
    return ThreadedDecider(cast(Decider, decider))
