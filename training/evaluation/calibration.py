"""How well the per-tier P(success) can be trusted, tier by tier.

The decision policy multiplies probabilities against costs, so it needs them
to be *calibrated* (a 0.7 succeeds 70% of the time), not merely well ranked.
Both are reported: ROC AUC for ranking, Brier score and expected calibration
error (ECE) for calibration, and reliability-diagram data to see where a tier
is over- or under-confident.

A call succeeded when its grade is at least ``pass_grade``; a request answered
several times on one tier counts the share of its calls that succeeded (a
label in [0, 1], as the router is trained). ECE uses equal-width bins on
[0, 1] (the last bin includes 1.0), each weighted by its share of the
requests: ECE = sum_b (n_b / N) |mean predicted_b - observed rate_b|.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from training.evaluation.curves import FloatArray, json_float

DEFAULT_BINS = 10
FLOOR_SIMULATIONS = 200


@dataclass(frozen=True, eq=False)
class Reliability:
    """Reliability-diagram data: per bin, mean prediction, observed rate, count.

    Empty bins hold NaN means and a zero count; ``to_dict`` writes them as null.
    """

    edges: FloatArray
    mean_predicted: FloatArray
    observed_rate: FloatArray
    count: npt.NDArray[np.int64]

    @property
    def ece(self) -> float:
        total = int(self.count.sum())
        filled = self.count > 0
        gaps = np.abs(self.mean_predicted[filled] - self.observed_rate[filled])
        return float((gaps * self.count[filled]).sum() / total) if total else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": [float(e) for e in self.edges],
            "mean_predicted": [json_float(float(v)) for v in self.mean_predicted],
            "observed_rate": [json_float(float(v)) for v in self.observed_rate],
            "count": [int(n) for n in self.count],
        }


def _check_pair(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.size == 0 or p.shape != y.shape:
        raise InvalidInputError(
            f"need equally many probabilities and labels, got {p.size}/{y.size}"
        )
    if not (np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()):
        raise InvalidInputError("must lie in [0, 1]", "probabilities")
    if not (np.isfinite(y).all() and (y >= 0.0).all() and (y <= 1.0).all()):
        raise InvalidInputError(
            "must lie in [0, 1] (success, or the share of calls that did)", "labels"
        )
    return p, y


def reliability_bins(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = DEFAULT_BINS
) -> Reliability:
    """Bin predictions into ``n_bins`` equal-width bins and compare with outcomes."""
    p, y = _check_pair(probabilities, labels)
    if n_bins < 1:
        raise InvalidInputError(f"must be >= 1, got {n_bins}", "n_bins")
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=p, minlength=n_bins) / count
        observed_rate = np.bincount(index, weights=y, minlength=n_bins) / count
    return Reliability(
        edges=np.linspace(0.0, 1.0, n_bins + 1),
        mean_predicted=mean_predicted,
        observed_rate=observed_rate,
        count=count,
    )


def expected_calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = DEFAULT_BINS
) -> float:
    """Count-weighted mean gap between predicted and observed success per bin."""
    return reliability_bins(probabilities, labels, n_bins).ece


def ece_noise_floor(
    probabilities: npt.ArrayLike,
    n_bins: int = DEFAULT_BINS,
    simulations: int = FLOOR_SIMULATIONS,
    seed: int = 0,
) -> float:
    """Mean ECE a perfectly calibrated predictor would show on this many requests.

    Binned ECE is biased upwards by sampling noise: with about a thousand
    requests a predictor whose probabilities are exactly right still scores
    around 0.03. Drawing outcomes from the predictions themselves and
    measuring their ECE gives the floor a measured ECE should be read against.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    _check_pair(p, np.zeros_like(p))
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    onehot = np.zeros((p.size, n_bins))
    onehot[np.arange(p.size), index] = 1.0
    draws = (np.random.default_rng(seed).random((simulations, p.size)) < p).astype(np.float64)
    gaps = np.abs(draws @ onehot - p @ onehot)
    return float(gaps.sum(axis=1).mean() / p.size)


def brier_score(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean squared error of the probabilities: calibration and sharpness together."""
    p, y = _check_pair(probabilities, labels)
    return float(np.mean((p - y) ** 2))


def roc_auc(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """ROC AUC, or None when only one class occurs and ranking is undefined.

    Computed in numpy, so evaluation needs no scikit-learn. A label y in
    (0, 1) counts as y of a success and 1 − y of a failure, and a request is
    never ranked against itself; on 0/1 labels this is the usual ROC area.
    """
    p, y = _check_pair(probabilities, labels)
    failures = 1.0 - y
    pairs = float(y.sum() * failures.sum() - (y * failures).sum())
    if pairs <= 0.0:
        return None
    # Mann-Whitney U: the chance a random success outranks a random failure,
    # ties counting one half, exactly as the ROC area.
    _, inverse = np.unique(p, return_inverse=True)
    failures_at = np.bincount(inverse, weights=failures)
    failures_below = np.cumsum(failures_at) - failures_at
    beaten = failures_below[inverse] + 0.5 * (failures_at[inverse] - failures)
    return float((y * beaten).sum()) / pairs


@dataclass(frozen=True)
class TierCalibration:
    """Ranking and calibration quality of one tier's P(success)."""

    tier: str
    n: int
    success_rate: float
    mean_predicted: float
    roc_auc: float | None
    brier: float
    ece: float
    ece_noise_floor: float
    reliability: Reliability

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "n": self.n,
            "success_rate": json_float(self.success_rate),
            "mean_predicted": json_float(self.mean_predicted),
            "roc_auc": json_float(self.roc_auc),
            "brier": json_float(self.brier),
            "ece": json_float(self.ece),
            "ece_noise_floor": json_float(self.ece_noise_floor),
            "reliability": self.reliability.to_dict(),
        }


@dataclass(frozen=True)
class CalibrationReport:
    """Per-tier calibration, in tier order (cheapest first)."""

    pass_grade: float
    n_bins: int
    tiers: tuple[TierCalibration, ...]

    def reliability_by_tier(self) -> dict[str, Reliability]:
        return {t.tier: t.reliability for t in self.tiers}

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass_grade": self.pass_grade,
            "n_bins": self.n_bins,
            "tiers": [t.to_dict() for t in self.tiers],
        }


def calibrate_tier(
    tier: str, probabilities: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = DEFAULT_BINS
) -> TierCalibration:
    """All calibration numbers of one tier from its probabilities and outcomes in [0, 1]."""
    p, y = _check_pair(probabilities, labels)
    reliability = reliability_bins(p, y, n_bins)
    return TierCalibration(
        tier=tier,
        n=int(p.size),
        success_rate=float(y.mean()),
        mean_predicted=float(p.mean()),
        roc_auc=roc_auc(p, y),
        brier=brier_score(p, y),
        ece=reliability.ece,
        ece_noise_floor=ece_noise_floor(p, n_bins),
        reliability=reliability,
    )


def calibration_report(
    probabilities: npt.ArrayLike,
    grades: npt.ArrayLike,
    pass_grade: float,
    tier_names: Sequence[str] | None = None,
    n_bins: int = DEFAULT_BINS,
    successes: npt.ArrayLike | None = None,
) -> CalibrationReport:
    """Calibrate every tier of a [N, T] probability matrix against [N, T] grades.

    NaN grades are calls that were never made: each tier is judged on the
    requests it has a grade for. Restricting every tier to requests graded on
    all tiers would judge a tier on a different mix of traffic than it was
    calibrated on whenever data sets grade different tiers. ``successes``
    ([N, T], the share of each cell's calls that succeeded, as in
    ``RequestTable.successes``) replaces ``grades >= pass_grade`` as the
    outcome, which differs where a request was answered several times on a tier.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    g = np.asarray(grades, dtype=np.float64)
    outcomes = (
        (g >= pass_grade).astype(np.float64)
        if successes is None
        else np.asarray(successes, dtype=np.float64)
    )
    if p.ndim != 2 or p.shape != g.shape:
        raise InvalidInputError(f"shape {p.shape} must equal grades {g.shape}", "probabilities")
    if np.isinf(g).any() or not 0.0 <= pass_grade <= 1.0:
        raise InvalidInputError("grades must be finite or NaN and pass_grade in [0, 1]", "grades")
    if outcomes.shape != g.shape:
        raise InvalidInputError(f"shape {outcomes.shape} must equal grades {g.shape}", "successes")
    names = list(tier_names) if tier_names is not None else [f"tier{i}" for i in range(p.shape[1])]
    if len(names) != p.shape[1]:
        raise InvalidInputError(f"{len(names)} names for {p.shape[1]} tiers", "tier_names")
    tiers = tuple(
        _graded_tier(name, p[:, i], g[:, i], outcomes[:, i], n_bins) for i, name in enumerate(names)
    )
    return CalibrationReport(pass_grade=pass_grade, n_bins=n_bins, tiers=tiers)


def _graded_tier(
    name: str, p: FloatArray, grades: FloatArray, outcomes: FloatArray, n_bins: int
) -> TierCalibration:
    graded = ~np.isnan(grades)
    if not graded.any():
        raise InvalidInputError(f"tier {name!r} has no graded request", "grades")
    return calibrate_tier(name, p[graded], outcomes[graded], n_bins)
