"""Does the quality guarantee hold? A resampling check on a held-out split.

The λ table promises, per quality target X, that expected quality on new
traffic reaches X of the top tier's with probability 1 − δ. That can be
checked on any held-out split graded on every tier: split its requests at
random into a calibration half and a test half, fit λ on the first half with
the very function training uses (``training.policy_fit.select_lambdas``, the
calibration half in its random split order as the betting order), and
see whether the second half's quality reached X. Repeated many times, the share
of splits that did is the *coverage*, to be compared with 1 − δ; the same is
done for the point-estimate λ (the cheapest λ whose measured quality reached X),
which is what the guarantee is paid for: its coverage shows what the promise
buys and its cost what the promise costs.

The test half is itself a finite sample, so a λ whose true quality sits
exactly at X is covered about half the time; coverage measured here is a noisy,
slightly pessimistic reading of the promise, which is about the expectation.

Everything is computed once for all splits: the tier chosen at each λ is fixed
by the router's scores, so the grade and cost of every (λ, request) pair are a
[K, N] table and each split's means are one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from training.evaluation.curves import check_table, json_float
from training.policy_fit import (
    DEFAULT_METHOD,
    GUARANTEE_METHODS,
    check_confidence,
    check_method,
    select_lambdas,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GUARANTEE_TARGETS: tuple[float, ...] = (0.80, 0.85, 0.90, 0.95, 0.98)
RESAMPLES = 200
MIN_HALF = 5
_EPS = 1e-12


@dataclass(frozen=True)
class TargetCoverage:
    """How one quality target fared over the resampled splits.

    ``certified`` is the share of splits whose calibration half was enough to
    guarantee the target; ``coverage`` the share whose test half reached it with
    the guaranteed λ (λ = 0 where not certified); ``coverage_certified`` the same
    among certified splits only (None when there were none). Costs are means of
    the test half's cost as a fraction of always-top's.
    """

    target: float
    certified: float
    coverage: float
    coverage_certified: float | None
    cost_fraction: float
    point_coverage: float
    point_cost_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "certified": json_float(self.certified),
            "coverage": json_float(self.coverage),
            "coverage_certified": json_float(self.coverage_certified),
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
    test_requests: int
    targets: tuple[TargetCoverage, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "calibration_requests": self.calibration_requests,
            "test_requests": self.test_requests,
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
                    "certified": json_float(t.certified),
                    "point_estimate_coverage": json_float(t.point_coverage),
                }
                for t in self.targets
                if any(abs(t.target - x) < _EPS for x in targets)
            },
        }


def split_halves(n: int, resamples: int, seed: int) -> tuple[IntArray, FloatArray, int]:
    """R random splits: [R, n_cal] calibration indices (in random order) and [N, R] test weights."""
    n_cal = n // 2
    if n_cal < MIN_HALF or n - n_cal < MIN_HALF:
        raise InvalidInputError(
            f"need at least {2 * MIN_HALF} judged requests for the guarantee check, got {n}",
            "calls",
        )
    rng = np.random.default_rng(seed)
    cal = np.stack([rng.permutation(n)[:n_cal] for _ in range(resamples)]).astype(np.int64)
    in_cal = np.zeros((n, resamples), dtype=np.bool_)
    in_cal[cal, np.arange(resamples)[:, None]] = True
    return cal, ~in_cal / (n - n_cal), n_cal


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
    """Coverage of the guaranteed and point-estimate λ over random half splits.

    ``choices`` is [K, N]: the tier the cost-aware rule picks for each request at
    each λ of the training grid, in grid order (the order the fit tests them in).
    """
    g, c = check_table(grades, costs)
    delta = check_confidence(confidence)
    rows = np.arange(g.shape[0])
    picked_g, picked_c = g[rows, choices], c[rows, choices]
    cal, test, n_cal = split_halves(g.shape[0], resamples, seed)
    x = np.asarray(targets, dtype=np.float64)
    chosen = select_lambdas(picked_g, picked_c, g[:, -1], cal, x, delta, method)
    quality, cost = (picked_g @ test).T, (picked_c @ test).T
    top_q, top_c = g[:, -1] @ test, c[:, -1] @ test

    def realised(index: IntArray) -> tuple[FloatArray, FloatArray]:
        q = np.take_along_axis(quality, index, axis=1)
        covered = q >= x[None, :] * top_q[:, None] - _EPS
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.take_along_axis(cost, index, axis=1) / top_c[:, None]
        return covered.astype(np.float64), fraction

    covered, fraction = realised(chosen.guaranteed)
    point_covered, point_fraction = realised(chosen.point)
    return GuaranteeCoverage(
        method=GUARANTEE_METHODS[check_method(method)],
        confidence=confidence,
        resamples=resamples,
        calibration_requests=n_cal,
        test_requests=g.shape[0] - n_cal,
        targets=tuple(
            TargetCoverage(
                target=float(t),
                certified=float(chosen.certified[:, j].mean()),
                coverage=float(covered[:, j].mean()),
                coverage_certified=_masked_mean(covered[:, j], chosen.certified[:, j]),
                cost_fraction=float(fraction[:, j].mean()),
                point_coverage=float(point_covered[:, j].mean()),
                point_cost_fraction=float(point_fraction[:, j].mean()),
            )
            for j, t in enumerate(x)
        ),
    )


def _masked_mean(values: FloatArray, mask: npt.NDArray[np.bool_]) -> float | None:
    return float(values[mask].mean()) if mask.any() else None
