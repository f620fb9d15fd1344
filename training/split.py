"""Held-out splits by request, and by time when the calls' times vary.

A request's calls always land on one side, so the same prompt is never both
trained and tested on. When timestamps vary (a real call log, where at least
half the requests have distinct times), the newest requests are held out, as a
router is always judged on traffic newer than its training data. Otherwise the
split is a stable hash of the request id: an evaluation run carries one
timestamp, and a bundle of several runs carries one per run, where "newest"
would hold out a whole data set instead of a sample of each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router_model.errors import ConfigError

IntArray = npt.NDArray[np.int64]
MIN_DISTINCT_TIME_FRACTION = 0.5


def hash_fraction(request_id: str, seed: int = 0, salt: str = "") -> float:
    """A stable pseudo-random number in [0, 1) per request id."""
    key = f"{salt}:{seed}:{request_id}" if salt else f"{seed}:{request_id}"
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_requests(
    request_ids: Sequence[str],
    timestamps: npt.NDArray[np.float64],
    held_out_fraction: float,
    seed: int = 0,
    salt: str = "",
) -> tuple[IntArray, IntArray]:
    """Row indices of (kept, held out).

    ``salt`` makes independent hash splits: ``tierwise split`` salts its own,
    so training on its train file still holds out a fresh sample instead of
    re-deriving the very split that emptied the held-out side.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ConfigError(f"held-out fraction must be in [0, 1), got {held_out_fraction}")
    n = len(request_ids)
    if held_out_fraction == 0.0 or n == 0:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(np.unique(timestamps)) >= max(2, n * MIN_DISTINCT_TIME_FRACTION):
        order = np.argsort(timestamps, kind="stable")
        n_held = max(1, round(n * held_out_fraction))
        return np.sort(order[: n - n_held]), np.sort(order[n - n_held :])
    draws = np.array([hash_fraction(r, seed, salt) for r in request_ids])
    held = draws < held_out_fraction
    return np.flatnonzero(~held).astype(np.int64), np.flatnonzero(held).astype(np.int64)
