"""Retries with exponential backoff and full jitter, for UNAVAILABLE only.

UNAVAILABLE means the call never reached a router (no connection, server
starting or draining), so it is safe to repeat; every other code either
succeeded in the server or will fail again the same way.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class Backoff:
    """``retries`` extra attempts, waiting up to ``base_s``·2^i (capped) before each."""

    retries: int = 2
    base_s: float = 0.05
    max_s: float = 1.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.retries):
            yield random.uniform(0.0, min(self.max_s, self.base_s * 2.0**attempt))


def retryable(code: grpc.StatusCode) -> bool:
    return bool(code == grpc.StatusCode.UNAVAILABLE)
