"""Does the quality guarantee hold? A resampling check on a held-out split.

The λ table promises, per quality target X, that expected quality on new
traffic reaches X of the top tier's with probability 1 − δ over the draw of
the calibration requests. That can be checked exactly on any held-out split
graded on every tier by taking the split itself as the population: draw
calibration sets from it with replacement (independent draws from that
population, which is what the promise assumes), fit λ on each with the very
function training uses (``training.policy_fit.select_lambdas``, in draw order
as the betting order), and read the population's quality at the chosen λ,
which is known exactly. The share of draws that fell short while claiming the
target (*violations*) must stay under δ; *coverage* is the share that reached
it. The same is done for the point-estimate λ (the cheapest λ whose measured
quality reached X): its coverage shows what the promise buys, and the cost gap
what the promise costs.

Reading the truth off the whole split rather than a held-out half keeps test
noise out of the check: a half-split would miss a λ sitting just above X about
half the time even when the promise holds.

Everything is computed once for all draws: the tier chosen at each λ is fixed
by the router's scores, so the grade and cost of every (λ, request) pair are a
[K, N] table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from training.evaluation.curves import check_table, json_float
from training.policy_fit import (
    ALWAYS_TOP_INDEX,
    DEFAULT_METHOD,
    GUARANTEE_METHODS,
    TESTED,
    check_confidence,
    check_method,
    select_lambdas,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

GUARANTEE_TARGETS: tuple[float, ...] = (0.80, 0.85, 0.90, 0.95, 0.98)
RESAMPLES = 200
MIN_HALF = 5
_EPS = 1e-12


@dataclass(frozen=True)
class TargetCoverage:
    """How one quality target fared over the resampled calibration sets.

    ``certified`` is the share of draws that were enough to guarantee the
    target at a saving; ``coverage`` the share whose λ reached it on the
    population (always the top tier where not certified, which always does);
    ``violations`` the share that were certified and yet fell short, which the
    promise bounds by δ. Costs are means of the
    population's cost at the chosen λ, as a fraction of always-top's.
    """

    target: float
    certified: float
    coverage: float
    violations: float
    cost_fraction: float
    point_coverage: float
    point_cost_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "certified": json_float(self.certified),
            "coverage": json_float(self.coverage),
            "violations": json_float(self.violations),
            "cost_fraction": json_float(self.cost_fraction),
            "point_estimate_coverage": json_float(self.point_coverage),
            "point_estimate_cost_fraction": json_float(self.point_cost_fraction),
        }


@dataclass(frozen=True)
class GuaranteeCoverage:
    """The resampling check for every target, with the settings that produced it."""

    method: str
    confidence: float
    resamples: int
    calibration_requests: int
    population_requests: int
    targets: tuple[TargetCoverage, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "calibration_requests": self.calibration_requests,
            "population_requests": self.population_requests,
            "targets": [t.to_dict() for t in self.targets],
        }

    def compact(self, targets: tuple[float, ...] = (0.90, 0.95)) -> dict[str, Any]:
        """Coverage and certified share at a few targets, for the manifest."""
        return {
            "confidence": self.confidence,
            "resamples": self.resamples,
            **{
                f"at_{round(t.target * 100)}": {
                    "coverage": json_float(t.coverage),
                    "violations": json_float(t.violations),
                    "certified": json_float(t.certified),
                    "point_estimate_coverage": json_float(t.point_coverage),
                }
                for t in self.targets
                if any(abs(t.target - x) < _EPS for x in targets)
            },
        }


def calibration_draws(n: int, resamples: int, seed: int) -> tuple[IntArray, int]:
    """[R, n/2] calibration sets drawn with replacement from the n judged requests."""
    n_cal = n // 2
    if n_cal < MIN_HALF:
        raise InvalidInputError(
            f"need at least {2 * MIN_HALF} judged requests for the guarantee check, got {n}",
            "calls",
        )
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n_cal)).astype(np.int64), n_cal


def guarantee_coverage(
    choices: IntArray,
    grades: npt.ArrayLike,
    costs: npt.ArrayLike,
    *,
    confidence: float,
    targets: tuple[float, ...] = GUARANTEE_TARGETS,
    resamples: int = RESAMPLES,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
) -> GuaranteeCoverage:
    """Coverage of the guaranteed and point-estimate λ over resampled calibration sets.

    ``choices`` is [K, N]: the tier the cost-aware rule picks for each request at
    each λ of the training grid, in grid order.
    """
    g, c = check_table(grades, costs)
    delta = check_confidence(confidence)
    rows = np.arange(g.shape[0])
    picked_g, picked_c = g[rows, choices], c[rows, choices]
    cal, n_cal = calibration_draws(g.shape[0], resamples, seed)
    x = np.asarray(targets, dtype=np.float64)
    chosen = select_lambdas(
        picked_g,
        picked_c,
        g[:, -1],
        cal,
        x,
        delta,
        method,
        tested=TESTED,
        fallback=ALWAYS_TOP_INDEX,
    )
    quality, cost = picked_g.mean(axis=1), picked_c.mean(axis=1)
    top_q, top_c = float(g[:, -1].mean()), float(c[:, -1].mean())

    def realised(index: IntArray) -> tuple[BoolArray, FloatArray]:
        return quality[index] >= x[None, :] * top_q - _EPS, cost[index] / top_c

    covered, fraction = realised(chosen.guaranteed)
    point_covered, point_fraction = realised(chosen.point)
    violated = chosen.certified & ~covered
    return GuaranteeCoverage(
        method=GUARANTEE_METHODS[check_method(method)],
        confidence=confidence,
        resamples=resamples,
        calibration_requests=n_cal,
        population_requests=g.shape[0],
        targets=tuple(
            TargetCoverage(
                target=float(t),
                certified=float(chosen.certified[:, j].mean()),
                coverage=float(covered[:, j].mean()),
                violations=float(violated[:, j].mean()),
                cost_fraction=float(fraction[:, j].mean()),
                point_coverage=float(point_covered[:, j].mean()),
                point_cost_fraction=float(point_fraction[:, j].mean()),
            )
            for j, t in enumerate(x)
        ),
    )
