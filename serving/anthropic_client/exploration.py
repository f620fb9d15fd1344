"""Exploration: a small random share of traffic answered by a tier the router did not pick.

A router's own log grades only the tiers it chose, so it can never learn that
a cheaper tier would have done, or that a dearer one was needed. Sending a
fraction ε of requests to a uniformly random tier produces those labels, and
logging the probability with which the answering tier was chosen (its
propensity) lets training re-weight every logged call by 1/propensity, which
corrects for the router's preferences in expectation:

    propensity(tier) = (1 − ε)·[tier = router's choice] + ε / T

Critical requests are never explored.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from router_model.errors import ConfigError
from router_model.router import Decision
from router_model.tiers import TierLadder

EXPLORE = "explore"


class Exploration:
    """Replaces the router's tier by a uniform random one for a ``fraction`` of requests."""

    def __init__(self, fraction: float, seed: int | None = None) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"exploration fraction must be in [0, 1], got {fraction}")
        self.fraction = fraction
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def apply(
        self, decision: Decision, ladder: TierLadder, *, critical: bool = False
    ) -> tuple[Decision, float]:
        """The decision to act on and the propensity of the tier it names."""
        if critical or self.fraction == 0.0:
            return decision, 1.0
        with self._lock:
            explore = self._rng.random() < self.fraction
            tier = ladder.tiers[self._rng.randrange(len(ladder))]
        acted = (
            replace(decision, tier=tier.name, model=tier.model, rule=EXPLORE)
            if explore
            else decision
        )
        matches_router = acted.tier == decision.tier
        propensity = (1.0 - self.fraction) * matches_router + self.fraction / len(ladder)
        return acted, propensity
