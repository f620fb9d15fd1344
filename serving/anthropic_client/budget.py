"""A spending budget that steers requests to cheaper tiers as it fills.

The window is rolling: spend counts for ``window_s`` seconds after the call
that incurred it, then drops out. A fixed calendar window would let every
request back up to full price at midnight in one step, and would starve the
end of a day that started busy; a rolling window relaxes gradually as old
spend ages out. ``window_s=None`` keeps all spend for the guard's lifetime,
i.e. one budget per process, or per conversation or user if you make a
guard for each.

With ``scope_tag`` set, each value of that request tag has its own budget of
``limit_usd`` (e.g. ``scope_tag="team"``); requests without the tag share the
budget of the empty value.

Past ``soft_fraction`` of the limit, non-critical requests are moved one tier
down and the decision's rule says ``budget_downgrade``. Requests marked
``critical`` are never moved. The guard steers, it never refuses: a service
that must stop spending checks :meth:`BudgetGuard.fraction_used` itself.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from router_model.router import Decision
from router_model.tiers import TierLadder

BUDGET_DOWNGRADE = "budget_downgrade"
DAY_S = 86_400.0
DEFAULT_SOFT_FRACTION = 0.8


class BudgetGuard:
    """Spend per scope over a rolling window, and the downgrade it implies."""

    def __init__(
        self,
        limit_usd: float,
        *,
        window_s: float | None = DAY_S,
        soft_fraction: float = DEFAULT_SOFT_FRACTION,
        scope_tag: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit_usd <= 0:
            raise ValueError(f"limit_usd must be positive, got {limit_usd}")
        if window_s is not None and window_s <= 0:
            raise ValueError(f"window_s must be positive or None, got {window_s}")
        if not 0.0 < soft_fraction <= 1.0:
            raise ValueError(f"soft_fraction must be in (0, 1], got {soft_fraction}")
        self.limit_usd = limit_usd
        self.window_s = window_s
        self.soft_fraction = soft_fraction
        self.scope_tag = scope_tag
        self._clock = clock
        self._spend: dict[str, deque[tuple[float, float]]] = {}
        self._totals: dict[str, float] = {}
        self._lock = threading.Lock()

    def scope(self, tags: Mapping[str, str]) -> str:
        """The budget a request with these tags draws on."""
        return tags.get(self.scope_tag, "") if self.scope_tag else ""

    def record(self, cost_usd: float, tags: Mapping[str, str]) -> None:
        """Count the real cost of a call that has just been made."""
        if cost_usd <= 0:
            return
        key = self.scope(tags)
        with self._lock:
            if self.window_s is not None:
                self._spend.setdefault(key, deque()).append((self._clock(), cost_usd))
            self._totals[key] = self._totals.get(key, 0.0) + cost_usd

    def spent_usd(self, tags: Mapping[str, str]) -> float:
        key = self.scope(tags)
        with self._lock:
            self._expire(key)
            return max(self._totals.get(key, 0.0), 0.0)

    def fraction_used(self, tags: Mapping[str, str]) -> float:
        return self.spent_usd(tags) / self.limit_usd

    def under_pressure(self, tags: Mapping[str, str]) -> bool:
        return self.fraction_used(tags) >= self.soft_fraction

    def adjust(
        self,
        decision: Decision,
        ladder: TierLadder,
        tags: Mapping[str, str],
        *,
        critical: bool = False,
    ) -> Decision:
        """The decision to act on: one tier down when the budget is tight."""
        if critical or not self.under_pressure(tags):
            return decision
        index = ladder.index(decision.tier)
        if index == 0:
            return decision
        lower = ladder.tiers[index - 1]
        return dataclasses.replace(
            decision, tier=lower.name, model=lower.model, rule=BUDGET_DOWNGRADE
        )

    def _expire(self, key: str) -> None:
        if self.window_s is None:
            return
        events = self._spend.get(key)
        if not events:
            return
        horizon = self._clock() - self.window_s
        while events and events[0][0] <= horizon:
            self._totals[key] -= events.popleft()[1]
        if not events:
            self._totals[key] = 0.0
