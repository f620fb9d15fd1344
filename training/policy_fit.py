"""Fitting the cost-aware rule's λ to quality targets on held-out predictions.

For every λ on a grid, route the calibration requests with
``argmax P − λ·cost/ref`` and measure the real quality and cost of the calls
chosen. For each quality target X (a fraction of the top tier's quality on the
same requests), keep the cheapest λ whose quality reached X. The table ships in
the manifest; serving only looks λ up.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from router_model.manifest import PolicyConfig
from router_model.policy import cost_aware_choices

FloatArray = npt.NDArray[np.float64]
LAMBDA_GRID = np.concatenate([[0.0], np.logspace(-4, 2, 241)])
QUALITY_TARGETS = np.round(np.arange(0.70, 1.0001, 0.01), 2)


def sweep(
    p_success: FloatArray,
    cost_norm: FloatArray,
    grades: FloatArray,
    costs: FloatArray,
    lambdas: FloatArray = LAMBDA_GRID,
) -> tuple[FloatArray, FloatArray]:
    """Realised (quality, cost) of the rule at every λ on fully graded requests."""
    choices = cost_aware_choices(p_success, cost_norm, lambdas)
    rows = np.arange(p_success.shape[0])
    return grades[rows, choices].mean(axis=1), costs[rows, choices].mean(axis=1)


def fit_policy(
    p_success: FloatArray,
    expected_cost: FloatArray,
    grades: FloatArray,
    costs: FloatArray,
    default_quality_target: float = 0.95,
) -> PolicyConfig:
    """λ per quality target from calibration requests graded on every tier."""
    reference = float(np.mean(expected_cost[:, -1]))
    quality, cost = sweep(p_success, expected_cost / reference, grades, costs)
    top_quality = float(np.mean(grades[:, -1]))
    table = []
    for target in QUALITY_TARGETS:
        reached = quality >= target * top_quality - 1e-12
        if not reached.any():
            table.append((float(target), 0.0))
            continue
        cheapest = np.flatnonzero(reached)[np.argmin(cost[reached])]
        table.append((float(target), float(LAMBDA_GRID[cheapest])))
    return PolicyConfig(
        default_quality_target=default_quality_target,
        reference_cost_usd=reference,
        lambda_table=tuple(table),
    )
