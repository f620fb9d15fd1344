"""Reading a window of the call log back as requests: shadow decisions beside answered calls.

This is the join the shadow report is built on, kept free of numpy so that
anything with the serving dependencies can read a shadow log. A request is
keyed by its own id: shadow records carry it in ``shadow_of``, answered calls
in ``request_id``. The tier *actually called* for a request is the tier of
its earliest answered call (its first attempt: later ones are escalations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from router_model.calls import GradedCall
from serving.calllog.store import CallLogStore
from serving.shadow.records import ShadowDecision, is_shadow, parse_shadow


@dataclass
class JoinedRequest:
    """Everything the window holds about one request."""

    request_id: str
    decisions: dict[str, ShadowDecision] = field(default_factory=dict)
    answered: list[GradedCall] = field(default_factory=list)

    @property
    def called_tier(self) -> str | None:
        """The tier of the first answered call (ties: the first one logged)."""
        tiered = [c for c in self.answered if c.tier is not None]
        if not tiered:
            return None
        return min(tiered, key=lambda c: c.timestamp).tier

    def answer(self, tier: str) -> GradedCall | None:
        """The first logged call of this request answered by ``tier``, if any."""
        return next((c for c in self.answered if c.tier == tier), None)

    def graded(self, tier: str) -> float | None:
        """The grade of this request's ``tier`` call, when it exists and is graded."""
        grades = [c.grade for c in self.answered if c.tier == tier and c.grade is not None]
        return grades[0] if grades else None

    @property
    def text(self) -> str | None:
        """The request text, from an answered call whose store kept it."""
        for call in self.answered:
            text = call.request_text().text
            if text and not text.startswith("hmac-sha256:"):
                return text
        return None


@dataclass(frozen=True)
class Window:
    """One time window of the log, as requests; ``malformed`` counts unreadable shadow records."""

    since: datetime | None
    until: datetime | None
    requests: Mapping[str, JoinedRequest]
    malformed: int = 0

    @property
    def routers(self) -> list[str]:
        """Router labels present in the window, ``current`` and ``challenger`` first."""
        seen = {label for r in self.requests.values() for label in r.decisions}
        order = {"current": 0, "challenger": 1}
        return sorted(seen, key=lambda label: (order.get(label, 2), label))

    def shadowed(self) -> list[JoinedRequest]:
        """Requests with at least one shadow decision, in id order (deterministic)."""
        return [self.requests[k] for k in sorted(self.requests) if self.requests[k].decisions]


def join(calls: Iterable[GradedCall]) -> tuple[dict[str, JoinedRequest], int]:
    """Group calls by request; returns the requests and the count of malformed shadow records."""
    requests: dict[str, JoinedRequest] = {}
    malformed = 0
    for call in calls:
        if is_shadow(call):
            try:
                decision = parse_shadow(call)
            except ValueError:
                malformed += 1
                continue
            joined = requests.setdefault(decision.request_id, JoinedRequest(decision.request_id))
            joined.decisions.setdefault(decision.router, decision)
        else:
            requests.setdefault(call.request_id, JoinedRequest(call.request_id)).answered.append(
                call
            )
    return requests, malformed


def load_window(store: CallLogStore, since: datetime | None, until: datetime | None) -> Window:
    """Read ``[since, until)`` of the store and join it by request."""
    requests, malformed = join(store.iter_calls(since=since, until=until))
    return Window(since=since, until=until, requests=requests, malformed=malformed)
