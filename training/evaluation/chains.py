"""Fallback chains: the cheapest tier first, one tier up each time a validator rejects.

This is what many teams run instead of a router, and what the routed client
offers as ``Escalation``. Its quality depends on the validator, which no data
set records, so the validator is modelled from the grades: it rejects a failed
answer (grade below ``pass_grade``) with probability ``recall`` and never
rejects one that passed; the top tier's answer is always kept. Recall 1 is a
perfect validator, the upper bound of every chain; format checks catch far
fewer wrong answers than that, and confidence gates also reject right ones.
Every attempt is paid for, and each escalation adds a call's latency, which
these points do not show.

The points are expectations over the validator's coin flips, computed exactly
per request, so they carry no sampling noise of their own.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from training.evaluation.curves import OperatingPoint, check_table

VALIDATOR_RECALLS = (0.25, 0.5, 0.75, 1.0)


def fallback_chain_point(
    grades: npt.ArrayLike, costs: npt.ArrayLike, pass_grade: float, recall: float
) -> OperatingPoint:
    """Mean cost and quality of a chain from the cheapest tier up, on fully graded requests."""
    if not 0.0 <= recall <= 1.0:
        raise InvalidInputError(f"must be in [0, 1], got {recall}", "recall")
    g, c = check_table(grades, costs)
    reached = np.ones(g.shape[0])  # P(the chain gets to this tier)
    cost = np.zeros(g.shape[0])
    quality = np.zeros(g.shape[0])
    for tier in range(g.shape[1]):
        cost += reached * c[:, tier]
        last = tier == g.shape[1] - 1
        rejected = np.zeros(g.shape[0]) if last else np.where(g[:, tier] < pass_grade, recall, 0.0)
        quality += reached * (1.0 - rejected) * g[:, tier]
        reached = reached * rejected
    return OperatingPoint(float(cost.mean()), float(quality.mean()))
