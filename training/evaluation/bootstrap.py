"""How sure is "the router beats the hull"? A paired bootstrap over requests.

One held-out split of a few thousand requests moves cost@95 by several
hundredths from one split to the next, so a single number cannot say whether
a router beats a baseline. Resampling the judged requests with replacement
and re-reading every curve on each resample gives an interval per metric and,
because the router and the baselines are read on the same resample, the
share of resamples in which the router is better: a paired comparison that
the split's noise cannot fake.

The router (and the kNN router) are re-read at their fixed choices: their
probabilities do not change with the resample, only which requests count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from training.evaluation.baselines import Reference, summarize_curve, tier_hull
from training.evaluation.curves import check_table, curve_points, json_float

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

METRICS: tuple[str, ...] = ("cost_at_90", "cost_at_95", "apgr")
RESAMPLES = 200


@dataclass(frozen=True)
class MetricInterval:
    """A 95% percentile interval of one metric (None where it was never reached)."""

    low: float | None
    high: float | None

    def to_dict(self) -> list[float | None]:
        return [json_float(self.low), json_float(self.high)]


@dataclass(frozen=True)
class BootstrapReport:
    """Intervals per router and metric, and how often the router beat each baseline."""

    resamples: int
    intervals: Mapping[str, Mapping[str, MetricInterval]]
    router_better: Mapping[str, Mapping[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "resamples": self.resamples,
            "interval_95": {
                name: {metric: i.to_dict() for metric, i in by_metric.items()}
                for name, by_metric in self.intervals.items()
            },
            "router_better_share": {
                name: dict(by_metric) for name, by_metric in self.router_better.items()
            },
        }


def paired_bootstrap(
    router_choices: IntArray,
    grades: npt.ArrayLike,
    costs: npt.ArrayLike,
    others: Mapping[str, IntArray] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> BootstrapReport:
    """Resample requests; read the router, the tier hull and ``others`` on each.

    ``router_choices`` and each of ``others`` are [K, N] tier choices over
    their control range, as ``curve_points`` takes them.
    """
    g, c = check_table(grades, costs)
    routers = {"router": np.asarray(router_choices), **(others or {})}
    rng = np.random.default_rng(seed)
    values: dict[str, list[list[float]]] = {name: [] for name in (*routers, "hull")}
    for _ in range(resamples):
        rows = rng.integers(0, g.shape[0], size=g.shape[0])
        gb, cb = g[rows], c[rows]
        reference = Reference.from_table(gb, cb)
        for name, choices in routers.items():
            summary = summarize_curve(curve_points(choices[:, rows], gb, cb), reference)
            values[name].append(_metric_row(summary.to_dict()))
        hull = summarize_curve(tier_hull(gb, cb), reference, mixing=True)
        values["hull"].append(_metric_row(hull.to_dict()))
    table = {name: np.asarray(rows_, dtype=np.float64) for name, rows_ in values.items()}
    return BootstrapReport(
        resamples=resamples,
        intervals={name: _intervals(v) for name, v in table.items()},
        router_better={
            name: _better_share(table["router"], v) for name, v in table.items() if name != "router"
        },
    )


def _metric_row(summary: Mapping[str, Any]) -> list[float]:
    """cost@X and APGR of one resample; NaN where the level was never reached."""
    return [np.nan if summary[m] is None else float(summary[m]) for m in METRICS]


def _intervals(values: FloatArray) -> dict[str, MetricInterval]:
    out = {}
    for j, metric in enumerate(METRICS):
        column = values[:, j]
        if np.isnan(column).any():
            out[metric] = MetricInterval(None, None)
            continue
        low, high = np.percentile(column, [2.5, 97.5])
        out[metric] = MetricInterval(float(low), float(high))
    return out


def _better_share(router: FloatArray, other: FloatArray) -> dict[str, float]:
    """Share of resamples where the router is better: cheaper at cost@X, higher APGR.

    A level the other never reached while the router did counts for the
    router, and the reverse against it.
    """
    out = {}
    for j, metric in enumerate(METRICS):
        r, o = router[:, j], other[:, j]
        better = r > o if metric == "apgr" else np.where(np.isnan(o), ~np.isnan(r), r < o)
        out[metric] = float(np.mean(better))
    return out
