"""A bounded, expiring cache of routing decisions.

Services send the same request text over and over (health probes, retried
jobs, templated prompts); scoring each again costs CPU and latency for an
answer that cannot change until the router does. Entries expire after a TTL so
that a router reloaded behind a gRPC decider takes effect within that time.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from router_model.router import Decision, DecisionRequest

CacheKey = tuple[str, int, bool, float | None, float | None, str | None]

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_TTL_S = 300.0


def cache_key(request: DecisionRequest) -> CacheKey:
    """Whitespace-collapsed text plus everything else the decision depends on.

    Turns and the presence of a system prompt are features of the router, so
    two requests with the same flattened text but a different structure are
    different requests.
    """
    text = request.text
    return (
        " ".join(text.text.split()),
        text.turns,
        text.has_system,
        request.quality_target,
        request.max_cost_usd,
        request.rule,
    )


class DecisionCache:
    """LRU of decisions with a time to live; safe to share between threads."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, Decision]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, request: DecisionRequest) -> Decision | None:
        """The cached decision re-addressed to this request's id, or None."""
        key = cache_key(request)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return dataclasses.replace(entry[1], request_id=request.request_id)

    def put(self, request: DecisionRequest, decision: Decision) -> None:
        key = cache_key(request)
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, decision)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
