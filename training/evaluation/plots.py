"""PNG figures for evaluation reports, drawn headless.

Figures are built with matplotlib's object API on an Agg canvas, never through
pyplot, so plotting needs no display, leaves no global state behind, and is
safe to call from worker threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from router_model.errors import InvalidInputError
from training.evaluation.baselines import Baselines
from training.evaluation.calibration import Reliability
from training.evaluation.curves import Curve, pareto_front
from training.evaluation.guarantee import GuaranteeCoverage

_QUALITY_LINES = ((0.95, "95% of top quality"), (0.90, "90% of top quality"))
_DPI = 120


def _save(figure: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(out, format="png", dpi=_DPI, bbox_inches="tight")
    return out


def _draw_baselines(ax: Axes, baselines: Baselines, top_cost: float) -> None:
    hull = baselines.hull
    ax.plot(hull.cost / top_cost, hull.quality, color="0.45", lw=1.5, label="convex hull of tiers")
    line = Curve.from_points([baselines.reference.cheapest, baselines.reference.top])
    ax.plot(line.cost / top_cost, line.quality, color="0.6", ls=":", lw=1.5, label="random mixing")
    for name, point in zip(baselines.tier_names, baselines.always, strict=True):
        ax.scatter(point.cost / top_cost, point.quality, color="black", marker="s", s=30, zorder=4)
        ax.annotate(
            f"always-{name}",
            (point.cost / top_cost, point.quality),
            textcoords="offset points",
            xytext=(5, -11),
            fontsize=8,
        )
    oracle = baselines.oracle
    ax.scatter(
        oracle.cost / top_cost,
        oracle.quality,
        color="gold",
        edgecolor="black",
        marker="*",
        s=160,
        zorder=5,
        label="oracle",
    )
    for i, (recall, point) in enumerate(baselines.chains):
        ax.scatter(
            point.cost / top_cost,
            point.quality,
            color="tab:red",
            marker="^",
            s=36,
            zorder=4,
            label=None if i else "fallback chain (share of failures\nits validator catches)",
        )
        ax.annotate(
            f"chain {round(100 * recall)}%",
            (point.cost / top_cost, point.quality),
            textcoords="offset points",
            xytext=(5, 3),
            fontsize=7,
            color="tab:red",
        )


def _draw_curves(ax: Axes, curves: Mapping[str, Curve], top_cost: float, *, emphasis: bool) -> None:
    for name, curve in curves.items():
        front = pareto_front(curve)
        if emphasis:
            (line,) = ax.plot(
                front.cost / top_cost, front.quality, lw=2.2, marker="o", ms=3, label=name, zorder=6
            )
            ax.scatter(
                curve.cost / top_cost, curve.quality, s=6, alpha=0.25, color=line.get_color()
            )
        else:
            ax.plot(
                front.cost / top_cost,
                front.quality,
                lw=1.2,
                ls="--",
                marker=".",
                ms=4,
                alpha=0.9,
                label=f"heuristic: {name}",
            )


def plot_cost_quality(
    path: str | Path,
    router_curves: Mapping[str, Curve],
    baselines: Baselines,
    heuristic_curves: Mapping[str, Curve] | None = None,
    *,
    title: str = "Cost-quality on the held-out split",
) -> Path:
    """Routers, heuristics and baselines on one cost-quality plane.

    Costs are fractions of always-top cost and quality is the mean grade, both
    taken from ``baselines.reference``, so every curve shares one scale.
    Routers are drawn as their Pareto frontier over their faint raw points.
    """
    top = baselines.reference.top
    if top.cost <= 0.0:
        raise InvalidInputError("the top tier's mean cost must be positive to scale costs")
    figure = Figure(figsize=(8.0, 5.6))
    ax = figure.add_subplot()
    _draw_baselines(ax, baselines, top.cost)
    _draw_curves(ax, heuristic_curves or {}, top.cost, emphasis=False)
    _draw_curves(ax, router_curves, top.cost, emphasis=True)
    for fraction, label in _QUALITY_LINES:
        ax.axhline(fraction * top.quality, color="tab:red", ls="--", lw=0.8, alpha=0.6)
        ax.annotate(
            label,
            (0.0, fraction * top.quality),
            xycoords=("axes fraction", "data"),
            xytext=(4, 2),
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
        )
    ax.set_xlabel("cost (fraction of always-top cost)")
    ax.set_ylabel("quality (mean grade)")
    ax.set_title(title)
    ax.set_xlim(left=0.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(figure, path)


def _draw_reliability(ax: Axes, name: str, reliability: Reliability) -> None:
    edges = reliability.edges
    centers = (edges[:-1] + edges[1:]) / 2.0
    filled = reliability.count > 0
    counts = ax.twinx()
    counts.bar(centers, reliability.count, width=np.diff(edges) * 0.9, color="0.85", zorder=0)
    counts.set_ylabel("requests per bin", fontsize=8, color="0.4")
    counts.tick_params(labelsize=7, colors="0.4")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot([0.0, 1.0], [0.0, 1.0], color="0.5", ls="--", lw=1, label="perfect calibration")
    ax.plot(
        reliability.mean_predicted[filled],
        reliability.observed_rate[filled],
        marker="o",
        color="tab:blue",
        lw=1.8,
        label="observed",
    )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("predicted P(success)")
    ax.set_ylabel("observed success rate")
    ax.set_title(f"{name} (ECE {reliability.ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)


def plot_reliability(
    path: str | Path,
    reliability: Mapping[str, Reliability],
    *,
    title: str = "Reliability of P(success) per tier",
) -> Path:
    """One reliability diagram per tier, side by side, with bin counts behind."""
    if not reliability:
        raise InvalidInputError("need at least one tier to plot")
    n = len(reliability)
    figure = Figure(figsize=(4.2 * n, 4.2), layout="constrained")
    axes = figure.subplots(1, n, squeeze=False)[0]
    for ax, (name, data) in zip(axes, reliability.items(), strict=True):
        _draw_reliability(ax, name, data)
    figure.suptitle(title)
    return _save(figure, path)


def plot_guarantee(
    path: str | Path,
    coverage: GuaranteeCoverage,
    *,
    title: str = "Quality guarantee over resampled calibration sets",
) -> Path:
    """Coverage against target with the promised 1 − δ line, and what the promise costs.

    Left: share of resampled calibration sets whose λ reached each target on
    the held-out population, for the guaranteed λ and for the point estimate.
    Right: their mean cost, as a fraction of always-top's, so the price of the
    guarantee is the gap.
    """
    if not coverage.targets:
        raise InvalidInputError("need at least one quality target to plot")
    targets = np.array([t.target for t in coverage.targets])
    figure = Figure(figsize=(10.0, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    series = (
        ("guaranteed λ", "tab:blue", "o", [t.coverage for t in coverage.targets]),
        ("point estimate λ", "tab:orange", "s", [t.point_coverage for t in coverage.targets]),
    )
    for label, color, marker, values in series:
        left.plot(targets, values, color=color, marker=marker, lw=1.8, label=label)
    left.bar(
        targets,
        [t.certified for t in coverage.targets],
        width=0.012,
        color="0.85",
        zorder=0,
        label="share of draws certified",
    )
    left.axhline(coverage.confidence, color="tab:red", ls="--", lw=0.9, label="promised 1 − δ")
    left.set_ylim(0.0, 1.05)
    left.set_xlabel("quality target (fraction of top-tier quality)")
    left.set_ylabel("share of draws reaching the target")
    left.set_title(f"coverage ({coverage.resamples} draws)")
    left.legend(loc="lower left", fontsize=8)
    costs = (
        ("guaranteed λ", "tab:blue", "o", [t.cost_fraction for t in coverage.targets]),
        ("point estimate λ", "tab:orange", "s", [t.point_cost_fraction for t in coverage.targets]),
    )
    for label, color, marker, values in costs:
        right.plot(targets, values, color=color, marker=marker, lw=1.8, label=label)
    right.set_xlabel("quality target (fraction of top-tier quality)")
    right.set_ylabel("mean cost (fraction of always-top cost)")
    right.set_title("what the guarantee costs")
    right.legend(loc="upper left", fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    return _save(figure, path)
