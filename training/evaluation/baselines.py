"""Baselines a learned router has to beat, scored on the same held-out split.

* always-<tier>: send everything to one tier (one point per tier);
* random mixing of always-cheapest and always-top: the straight line between
  them, which needs no router at all;
* the convex hull of the single tiers: random mixing of *any* tiers, the best
  a router that knows nothing about the request can do;
* the oracle: per request, the cheapest call that succeeds (else the
  best-graded one). No real router reaches it; it shows the headroom;
* fallback chains from the cheapest tier up, with a validator that catches a
  given share of the failed answers (``training.evaluation.chains``).

Every curve, a router's or a baseline's, is summarised against the same two
reference points (always-cheapest, always-top) by ``summarize_curve``.

``knn_success_probabilities`` is a learned but model-free baseline: it returns
per-tier probabilities only, so the caller routes them with the same policy
code as the real router and the comparison isolates the predictor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from training.evaluation.chains import VALIDATOR_RECALLS, fallback_chain_point
from training.evaluation.curves import (
    QUALITY_FRACTIONS,
    Curve,
    FloatArray,
    IntArray,
    OperatingPoint,
    apgr,
    check_table,
    cost_at,
    cost_at_mixed,
    curve_points,
    json_float,
    pareto_front,
    tier_means,
    upper_hull,
)

_KNN_BATCH = 1024


@dataclass(frozen=True)
class Reference:
    """The two single-tier points every curve is measured against."""

    cheapest: OperatingPoint
    top: OperatingPoint

    @classmethod
    def from_table(cls, grades: npt.ArrayLike, costs: npt.ArrayLike) -> Reference:
        g, c = check_table(grades, costs)
        mean_g, mean_c = tier_means(g), tier_means(c)
        return cls(
            cheapest=OperatingPoint(float(mean_c[0]), float(mean_g[0])),
            top=OperatingPoint(float(mean_c[-1]), float(mean_g[-1])),
        )

    def to_dict(self) -> dict[str, Any]:
        top_cost = self.top.cost
        return {"cheapest": self.cheapest.to_dict(top_cost), "top": self.top.to_dict(top_cost)}


@dataclass(frozen=True)
class CurveSummary:
    """cost@90/95/100 (fractions of always-top cost), APGR and the frontier."""

    cost_at_90: float | None
    cost_at_95: float | None
    cost_at_100: float | None
    apgr: float | None
    frontier: Curve
    n_points: int
    top_cost: float
    mixing: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "cost_at_90": json_float(self.cost_at_90),
            "cost_at_95": json_float(self.cost_at_95),
            "cost_at_100": json_float(self.cost_at_100),
            "apgr": json_float(self.apgr),
            "n_points": self.n_points,
            "mixing": self.mixing,
            "frontier": self.frontier.to_dict(self.top_cost)["points"],
        }


def summarize_curve(curve: Curve, reference: Reference, *, mixing: bool = False) -> CurveSummary:
    """Summarise a curve against the single-tier reference points.

    ``mixing=True`` reads cost@X on the upper hull (random mixing allowed), as
    for the baselines; routers keep the default and are read at their points.
    """
    top = reference.top
    if top.cost <= 0.0:
        raise InvalidInputError("the top tier's mean cost must be positive", "costs")
    read = cost_at_mixed if mixing else cost_at
    at = [read(curve, f, top.quality, top.cost) for f in QUALITY_FRACTIONS]
    return CurveSummary(
        cost_at_90=at[0],
        cost_at_95=at[1],
        cost_at_100=at[2],
        apgr=apgr(curve, reference.cheapest, top),
        frontier=upper_hull(curve) if mixing else pareto_front(curve),
        n_points=len(curve),
        top_cost=top.cost,
        mixing=mixing,
    )


def always_tier_points(grades: npt.ArrayLike, costs: npt.ArrayLike) -> list[OperatingPoint]:
    """One operating point per tier: every request sent to that tier."""
    g, c = check_table(grades, costs)
    return [
        OperatingPoint(float(cost), float(quality))
        for cost, quality in zip(tier_means(c), tier_means(g), strict=True)
    ]


def random_mixing(grades: npt.ArrayLike, costs: npt.ArrayLike) -> Curve:
    """The straight line between always-cheapest and always-top, as its hull.

    When the top tier is not better than the cheapest, mixing cannot help and
    the "line" collapses to the cheapest point.
    """
    reference = Reference.from_table(grades, costs)
    return upper_hull(Curve.from_points([reference.cheapest, reference.top]))


def tier_hull(grades: npt.ArrayLike, costs: npt.ArrayLike) -> Curve:
    """Upper convex hull of the single tiers: random mixing of any of them."""
    return upper_hull(Curve.from_points(always_tier_points(grades, costs)))


def oracle_choices(grades: npt.ArrayLike, costs: npt.ArrayLike, pass_grade: float) -> IntArray:
    """Per request, the cheapest tier whose call succeeded, else the best-graded one.

    "Cheapest" is read from the real cost of this request's calls, since an
    oracle knows them; ties (and the usual price-ordered case) fall to the
    lower tier. Among equally graded failures the cheaper call wins too.
    """
    g, c = check_table(grades, costs)
    if not 0.0 <= pass_grade <= 1.0:
        raise InvalidInputError(f"must be in [0, 1], got {pass_grade}", "pass_grade")
    succeeded = g >= pass_grade
    cheapest_success = np.argmin(np.where(succeeded, c, np.inf), axis=1)
    best = g == g.max(axis=1, keepdims=True)
    cheapest_best = np.argmin(np.where(best, c, np.inf), axis=1)
    choice = np.where(succeeded.any(axis=1), cheapest_success, cheapest_best)
    return np.asarray(choice, dtype=np.int64)


def oracle_point(grades: npt.ArrayLike, costs: npt.ArrayLike, pass_grade: float) -> OperatingPoint:
    """The oracle as one operating point."""
    curve = curve_points(oracle_choices(grades, costs, pass_grade), grades, costs)
    return OperatingPoint(float(curve.cost[0]), float(curve.quality[0]))


@dataclass(frozen=True)
class Baselines:
    """All baselines of one held-out split, with the reference points."""

    tier_names: tuple[str, ...]
    reference: Reference
    always: tuple[OperatingPoint, ...]
    random_mixing: Curve
    hull: Curve
    oracle: OperatingPoint
    oracle_tier_share: tuple[float, ...]
    chains: tuple[tuple[float, OperatingPoint], ...] = ()  # (validator recall, point)

    def summaries(self) -> dict[str, CurveSummary]:
        """cost@X and APGR of every baseline; the mixing ones read on their hull."""
        ref = self.reference
        out = {
            f"always-{name}": summarize_curve(Curve.from_points([point]), ref)
            for name, point in zip(self.tier_names, self.always, strict=True)
        }
        out["random"] = summarize_curve(self.random_mixing, ref, mixing=True)
        out["hull"] = summarize_curve(self.hull, ref, mixing=True)
        out["oracle"] = summarize_curve(Curve.from_points([self.oracle]), ref)
        for recall, point in self.chains:
            out[chain_name(recall)] = summarize_curve(Curve.from_points([point]), ref)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tiers": list(self.tier_names),
            "reference": self.reference.to_dict(),
            "oracle_tier_share": dict(zip(self.tier_names, self.oracle_tier_share, strict=True)),
            "baselines": {name: s.to_dict() for name, s in self.summaries().items()},
        }


def compute_baselines(
    grades: npt.ArrayLike,
    costs: npt.ArrayLike,
    pass_grade: float,
    tier_names: Sequence[str] | None = None,
) -> Baselines:
    """Every baseline of the split in one call, ready for a report."""
    g, c = check_table(grades, costs)
    n_tiers = g.shape[1]
    names = (
        tuple(tier_names) if tier_names is not None else tuple(f"tier{i}" for i in range(n_tiers))
    )
    if len(names) != n_tiers:
        raise InvalidInputError(f"{len(names)} names for {n_tiers} tiers", "tier_names")
    choices = oracle_choices(g, c, pass_grade)
    share = np.bincount(choices, minlength=n_tiers) / choices.size
    return Baselines(
        tier_names=names,
        reference=Reference.from_table(g, c),
        always=tuple(always_tier_points(g, c)),
        random_mixing=random_mixing(g, c),
        hull=tier_hull(g, c),
        oracle=oracle_point(g, c, pass_grade),
        oracle_tier_share=tuple(float(s) for s in share),
        chains=tuple((r, fallback_chain_point(g, c, pass_grade, r)) for r in VALIDATOR_RECALLS),
    )


def chain_name(recall: float) -> str:
    """The report's name of the fallback chain whose validator catches ``recall`` of failures."""
    return f"fallback-chain-catching-{round(100 * recall)}%"


def knn_success_probabilities(
    train_embeddings: npt.ArrayLike,
    train_grades: npt.ArrayLike,
    test_embeddings: npt.ArrayLike,
    k: int = 20,
) -> FloatArray:
    """P(success) per tier [N_test, T] as the mean grade of the k most similar
    training requests (cosine similarity).

    Mean grade rather than the pass rate keeps partial credit, which is what
    quality is measured in. Work is batched so memory stays bounded for large
    training sets.
    """
    train = _unit_rows(train_embeddings, "train_embeddings")
    test = _unit_rows(test_embeddings, "test_embeddings")
    labels = np.asarray(train_grades, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[0] != train.shape[0]:
        raise InvalidInputError(
            f"must be [{train.shape[0]}, T], got {labels.shape}", "train_grades"
        )
    if not np.isfinite(labels).all():
        raise InvalidInputError("must be finite", "train_grades")
    if train.shape[1] != test.shape[1]:
        raise InvalidInputError("train and test embeddings differ in width", "test_embeddings")
    if not 1 <= k <= train.shape[0]:
        raise InvalidInputError(f"must be in [1, {train.shape[0]}], got {k}", "k")
    out = np.empty((test.shape[0], labels.shape[1]), dtype=np.float64)
    for start in range(0, test.shape[0], _KNN_BATCH):
        similarity = test[start : start + _KNN_BATCH] @ train.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        out[start : start + _KNN_BATCH] = labels[nearest].mean(axis=1)
    return out


def _unit_rows(embeddings: npt.ArrayLike, field: str) -> FloatArray:
    """Rows scaled to unit length, so a dot product is the cosine similarity."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or not np.isfinite(x).all():
        raise InvalidInputError(f"must be a finite, non-empty 2-D array, got {x.shape}", field)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms > 0.0, norms, 1.0), dtype=np.float64)
