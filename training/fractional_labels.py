"""Success fractions as weighted 0/1 rows, for fitters that only take binary labels.

A request answered several times on one tier (retries, or several models
mapped onto the tier) carries the share of its calls that succeeded, e.g.
0.6. Logistic regression, Platt scaling and gradient boosting minimise the
log-loss of 0/1 labels; a row with label f and weight w contributes exactly
the log-loss of a success with weight w·f plus a failure with weight
w·(1 − f), so that pair of rows is how a fraction is taught to them. Labels
that are already 0 or 1 pass through unchanged, so 0/1 data fits exactly as
before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BinaryRows:
    """``rows`` index the original rows; ``labels`` are 0/1; ``weights`` None if all 1."""

    rows: IntArray
    labels: IntArray
    weights: FloatArray | None

    def take(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``values`` (features or margins) row for row with ``labels``; no copy for 0/1 labels."""
        return values if len(self.rows) == len(values) else values[self.rows]


def as_binary_rows(labels: FloatArray, weights: FloatArray | None = None) -> BinaryRows:
    """Each fractional label as a success row and a failure row, weighted by the fraction."""
    labels = np.asarray(labels, dtype=np.float64)
    fractional = (labels > 0.0) & (labels < 1.0)
    n = len(labels)
    if not fractional.any():
        return BinaryRows(np.arange(n), (labels > 0.0).astype(np.int64), weights)
    base = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    extra = np.flatnonzero(fractional)
    return BinaryRows(
        rows=np.concatenate([np.arange(n), extra]),
        labels=np.concatenate([(labels > 0.0).astype(np.int64), np.zeros(len(extra), np.int64)]),
        weights=np.concatenate(
            [np.where(fractional, base * labels, base), base[extra] * (1.0 - labels[extra])]
        ),
    )


def majority(labels: FloatArray) -> IntArray:
    """0/1 per row (a fraction of at least one half counts as success), for stratifying."""
    return (np.asarray(labels) >= 0.5).astype(np.int64)


def has_both_outcomes(labels: FloatArray) -> bool:
    """Whether any row succeeded at all and any failed at all."""
    labels = np.asarray(labels)
    return bool((labels > 0.0).any() and (labels < 1.0).any())
