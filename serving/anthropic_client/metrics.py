"""Counters of routed traffic and an alert on the escalation rate.

A rising escalation rate means the router sends too many requests to tiers
that fail them: the router is stale for this traffic, or a validator is too
strict. Either way it costs money twice (the rejected call and the retry), so
it is watched over a sliding window of recent requests and reported once,
when the rate crosses the threshold, rather than on every request.

Prometheus export is optional: pass a ``CollectorRegistry`` and the same
numbers are exported there (``prometheus_client`` must be installed).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 200
DEFAULT_ALERT_RATE = 0.35
DEFAULT_MIN_REQUESTS = 20
UNKNOWN_TIER = "unknown"


class RoutingMetrics:
    """Request, escalation, downgrade and spend counters of one routed client."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        alert_rate: float = DEFAULT_ALERT_RATE,
        min_requests: int = DEFAULT_MIN_REQUESTS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if window < 1 or min_requests < 1:
            raise ValueError("window and min_requests must be at least 1")
        self.alert_rate = alert_rate
        self.min_requests = min(min_requests, window)
        self.requests = 0
        self.escalations = 0
        self.downgrades = 0
        self.alerting = False
        self._recent: deque[bool] = deque(maxlen=window)
        self._spend: dict[str, float] = {}
        self._lock = threading.Lock()
        self._export = _Export(registry) if registry is not None else None

    @property
    def escalation_rate(self) -> float:
        """Share of escalated requests among the last ``window`` requests."""
        with self._lock:
            return sum(self._recent) / len(self._recent) if self._recent else 0.0

    @property
    def spend_by_tier(self) -> dict[str, float]:
        with self._lock:
            return dict(self._spend)

    def record_spend(self, tier: str | None, cost_usd: float | None) -> None:
        if cost_usd is None:
            return
        name = tier or UNKNOWN_TIER
        with self._lock:
            self._spend[name] = self._spend.get(name, 0.0) + cost_usd
        if self._export is not None:
            self._export.spend.labels(tier=name).inc(cost_usd)

    def record_request(self, *, tier: str | None, escalated: bool, downgraded: bool) -> None:
        with self._lock:
            self.requests += 1
            self.escalations += escalated
            self.downgrades += downgraded
            self._recent.append(escalated)
            rate = sum(self._recent) / len(self._recent)
            was_alerting = self.alerting
            self.alerting = len(self._recent) >= self.min_requests and rate > self.alert_rate
        if self.alerting and not was_alerting:
            log.warning(
                "escalation rate %.0f%% over the last %d requests is above %.0f%%: "
                "the router may be stale for this traffic or a validator too strict",
                100 * rate,
                len(self._recent),
                100 * self.alert_rate,
            )
        elif was_alerting and not self.alerting:
            log.info("escalation rate back to %.0f%%", 100 * rate)
        if self._export is not None:
            self._export.update(tier or UNKNOWN_TIER, escalated, downgraded, rate, self.alerting)


class _Export:
    """The same numbers as Prometheus collectors in a caller-owned registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        r = registry
        self.requests = Counter(
            "tierwise_client_requests", "Routed requests, by tier that answered.", ["tier"],
            registry=r,
        )  # fmt: skip
        self.escalations = Counter(
            "tierwise_client_escalations", "Requests answered above their routed tier.", registry=r
        )
        self.downgrades = Counter(
            "tierwise_client_budget_downgrades", "Requests moved down by the budget.", registry=r
        )
        self.spend = Counter(
            "tierwise_client_spend_usd", "Spend on model calls, by tier.", ["tier"], registry=r
        )
        self.rate = Gauge(
            "tierwise_client_escalation_rate", "Escalation rate over the window.", registry=r
        )
        self.alerting = Gauge(
            "tierwise_client_escalation_alerting", "1 while the rate is above its threshold.",
            registry=r,
        )  # fmt: skip

    def update(
        self, tier: str, escalated: bool, downgraded: bool, rate: float, alerting: bool
    ) -> None:
        self.requests.labels(tier=tier).inc()
        if escalated:
            self.escalations.inc()
        if downgraded:
            self.downgrades.inc()
        self.rate.set(rate)
        self.alerting.set(1.0 if alerting else 0.0)
