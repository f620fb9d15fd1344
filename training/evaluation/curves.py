"""Cost-quality curves of routers and the numbers that summarise them.

A router is judged on a held-out table in which every request was answered by
every tier, so any routing decision can be scored after the fact: its quality
is the mean grade of the calls it picks and its cost the mean real cost of
those calls. Sweeping the router's control gives a set of such points.

Two readings of a set of points are used, and the difference matters:

* a router's own points are *operating points*: ``cost_at`` only credits
  quality that some setting actually reaches;
* baselines built from random mixing (and APGR, by RouteLLM's convention)
  may also use every point on a straight line between two operating points,
  because flipping a biased coin between two settings achieves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

QUALITY_FRACTIONS: tuple[float, ...] = (0.90, 0.95, 1.00)
# A point that meets a quality target up to float rounding (0.95 x q computed
# one way, a mean of grades another) must count as meeting it.
_EPS = 1e-12


def json_float(value: float | None) -> float | None:
    """A float that ``json.dumps`` writes as valid JSON (NaN and inf become null)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def check_table(grades: npt.ArrayLike, costs: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate a held-out grade table and its cost table ([N, T], cheapest tier first)."""
    g = np.asarray(grades, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0:
        raise InvalidInputError(f"must be a non-empty [N, T] array, got {g.shape}", "grades")
    if c.shape != g.shape:
        raise InvalidInputError(f"shape {c.shape} differs from grades {g.shape}", "costs")
    if not (np.isfinite(g).all() and (g >= 0.0).all() and (g <= 1.0).all()):
        raise InvalidInputError("every grade must be a number in [0, 1]", "grades")
    if not (np.isfinite(c).all() and (c >= 0.0).all()):
        raise InvalidInputError("every cost must be a finite number >= 0", "costs")
    return g, c


def tier_means(table: FloatArray) -> FloatArray:
    """Per-tier means, summed in the same order as ``curve_points`` sums a row.

    Then always-top scored as a router and the always-top reference agree to the
    last bit, and cost@100 of always-top is exactly 1.
    """
    return np.asarray(np.ascontiguousarray(table.T).mean(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class OperatingPoint:
    """Mean cost (USD per request) and mean quality of one routing setting."""

    cost: float
    quality: float

    def to_dict(self, top_cost: float | None = None) -> dict[str, float | None]:
        fraction = self.cost / top_cost if top_cost else None
        return {
            "cost_usd": json_float(self.cost),
            "cost_fraction": json_float(fraction),
            "quality": json_float(self.quality),
        }


@dataclass(frozen=True, eq=False)
class Curve:
    """A non-empty set of (cost, quality) points, one per setting of a router."""

    cost: FloatArray
    quality: FloatArray

    def __post_init__(self) -> None:
        cost = np.asarray(self.cost, dtype=np.float64).reshape(-1)
        quality = np.asarray(self.quality, dtype=np.float64).reshape(-1)
        if cost.shape != quality.shape or cost.size == 0:
            raise InvalidInputError("a curve needs equally many costs and qualities, at least one")
        if not (np.isfinite(cost).all() and np.isfinite(quality).all()):
            raise InvalidInputError("curve points must be finite")
        object.__setattr__(self, "cost", cost)
        object.__setattr__(self, "quality", quality)

    @classmethod
    def from_points(cls, points: Sequence[OperatingPoint]) -> Curve:
        return cls(
            cost=np.array([p.cost for p in points], dtype=np.float64),
            quality=np.array([p.quality for p in points], dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.cost.size)

    def points(self) -> list[OperatingPoint]:
        return [
            OperatingPoint(float(c), float(q)) for c, q in zip(self.cost, self.quality, strict=True)
        ]

    def to_dict(self, top_cost: float | None = None) -> dict[str, Any]:
        return {"points": [p.to_dict(top_cost) for p in self.points()]}


def curve_points(choices: npt.ArrayLike, grades: npt.ArrayLike, costs: npt.ArrayLike) -> Curve:
    """Score every setting of a router at once.

    ``choices`` is [K, N] (or [N] for one setting) of tier indices; row k is the
    tier the router picks for each request at its k-th setting.
    """
    g, c = check_table(grades, costs)
    picks = np.asarray(choices)
    if picks.ndim == 1:
        picks = picks[None, :]
    if picks.ndim != 2 or picks.shape[1] != g.shape[0] or picks.shape[0] == 0:
        raise InvalidInputError(f"must be [K, {g.shape[0]}], got {picks.shape}", "choices")
    if not np.issubdtype(picks.dtype, np.integer):
        raise InvalidInputError("must hold integer tier indices", "choices")
    if picks.min() < 0 or picks.max() >= g.shape[1]:
        raise InvalidInputError(f"tier indices must lie in [0, {g.shape[1] - 1}]", "choices")
    rows = np.arange(g.shape[0])
    return Curve(cost=c[rows, picks].mean(axis=1), quality=g[rows, picks].mean(axis=1))


def pareto_front(curve: Curve) -> Curve:
    """The points no other point beats on both cost and quality, cheapest first.

    Along the result quality strictly increases with cost, which is what makes
    "the lowest cost that reaches a quality" a search in a sorted array.
    """
    order = np.lexsort((-curve.quality, curve.cost))
    cost, quality = curve.cost[order], curve.quality[order]
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], quality[:-1])))
    keep = quality > best_before
    return Curve(cost=cost[keep], quality=quality[keep])


def upper_hull(curve: Curve) -> Curve:
    """The best quality reachable at each cost by randomly mixing the points.

    This is the rising part of the upper convex hull: from the cheapest point
    to the best one. Everything under it is reachable by mixing; nothing above.
    """
    front = pareto_front(curve)
    hull: list[int] = []
    for i in range(len(front)):
        while len(hull) >= 2 and _turns_left(front, hull[-2], hull[-1], i):
            hull.pop()
        hull.append(i)
    index = np.array(hull, dtype=np.int64)
    return Curve(cost=front.cost[index], quality=front.quality[index])


def _turns_left(front: Curve, o: int, a: int, b: int) -> bool:
    """True when point ``a`` lies on or below the segment from ``o`` to ``b``."""
    cross = (front.cost[a] - front.cost[o]) * (front.quality[b] - front.quality[o]) - (
        front.quality[a] - front.quality[o]
    ) * (front.cost[b] - front.cost[o])
    return bool(cross >= 0.0)


def _check_reference(fraction: float, top_quality: float, top_cost: float) -> float:
    if not (math.isfinite(fraction) and fraction > 0.0):
        raise InvalidInputError(f"must be a positive number, got {fraction}", "fraction")
    if not (math.isfinite(top_cost) and top_cost > 0.0):
        raise InvalidInputError(f"must be a positive number, got {top_cost}", "top_cost")
    if not math.isfinite(top_quality):
        raise InvalidInputError(f"must be finite, got {top_quality}", "top_quality")
    return fraction * top_quality


def cost_at(points: Curve, fraction: float, top_quality: float, top_cost: float) -> float | None:
    """Lowest cost, as a fraction of ``top_cost``, of a point whose quality is at
    least ``fraction`` x ``top_quality``; None when no point gets there.

    Only the points themselves count: a router is deployed at one setting.
    """
    target = _check_reference(fraction, top_quality, top_cost)
    reached = points.quality >= target - _EPS
    if not reached.any():
        return None
    return float(points.cost[reached].min() / top_cost)


def cost_at_mixed(
    points: Curve, fraction: float, top_quality: float, top_cost: float
) -> float | None:
    """Like ``cost_at``, but for random mixing of the points: read on their upper hull.

    This is the analytic cost@X of the random-mixing and convex-hull baselines.
    """
    target = _check_reference(fraction, top_quality, top_cost)
    hull = upper_hull(points)
    i = int(np.searchsorted(hull.quality, target - _EPS, side="left"))
    if i == len(hull):
        return None
    if i == 0:
        return float(hull.cost[0] / top_cost)
    c0, c1 = hull.cost[i - 1], hull.cost[i]
    q0, q1 = hull.quality[i - 1], hull.quality[i]
    share = min(max((target - q0) / (q1 - q0), 0.0), 1.0)
    return float((c0 + share * (c1 - c0)) / top_cost)


def apgr(points: Curve, cheapest: OperatingPoint, top: OperatingPoint) -> float | None:
    """Average performance-gap recovered (RouteLLM's APGR), in [0, 1].

    Exact definition: add the always-cheapest point (c0, q0) and the always-top
    point (c1, q1) to ``points``; keep their Pareto front (quality rising with
    cost) and join it by straight lines, flat beyond its last point; clip that
    envelope q(c) to [q0, q1]; then

        APGR = integral over c from c0 to c1 of (q(c) - q0) dc / ((q1 - q0)(c1 - c0)).

    Random mixing of the two endpoints scores 0.5; a router that reaches the top
    tier's quality at the cheapest tier's cost scores 1. Quality above the top
    tier is clipped, so beating the top tier shows in cost@100, not here.
    None when the top tier is no better (q1 <= q0) or no dearer (c1 <= c0) than
    the cheapest: there is no gap to recover, and any number would mislead.
    """
    gap, span = top.quality - cheapest.quality, top.cost - cheapest.cost
    if not (gap > 0.0 and span > 0.0):
        return None
    ends = Curve.from_points([cheapest, top])
    front = pareto_front(
        Curve(
            cost=np.concatenate((points.cost, ends.cost)),
            quality=np.concatenate((points.quality, ends.quality)),
        )
    )
    crossing = np.interp(top.quality, front.quality, front.cost)
    inside = (front.cost > cheapest.cost) & (front.cost < top.cost)
    xs = np.unique(np.concatenate(([cheapest.cost, top.cost, crossing], front.cost[inside])))
    xs = xs[(xs >= cheapest.cost) & (xs <= top.cost)]
    ys = np.clip(np.interp(xs, front.cost, front.quality), cheapest.quality, top.quality)
    area = float(np.trapezoid(ys - cheapest.quality, xs))
    return min(max(area / (gap * span), 0.0), 1.0)
