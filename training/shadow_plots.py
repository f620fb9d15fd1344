"""PNG figures of the shadow report, drawn headless from ``report.json``'s dict.

Drawn from the report dict rather than the log, so a figure can never show a
number the JSON does not hold. Same approach as ``training.evaluation.plots``:
matplotlib's object API on an Agg canvas, no pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_DPI = 120


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def _bars(ax: Axes, labels: Sequence[str], stats: Sequence[Mapping[str, Any]]) -> None:
    """One bar per stat with its 95% interval; empty stats are drawn as gaps."""
    means = [s["mean"] if s["mean"] is not None else 0.0 for s in stats]
    errors: list[list[float]] = [[], []]
    for s, mean in zip(stats, means, strict=True):
        low, high = s["ci95"] if s["ci95"] is not None else (mean, mean)
        errors[0].append(max(0.0, mean - low))
        errors[1].append(max(0.0, high - mean))
    ax.bar(range(len(means)), means, yerr=errors, capsize=4, color="#4c72b0")
    names = [f"{label}\n(n={s['n']})" for label, s in zip(labels, stats, strict=True)]
    ax.set_xticks(range(len(labels)), names)


def plot_spend(report: Mapping[str, Any], path: Path) -> Path:
    """Mean cost per request: each router's expected and real cost, and the called tier's."""
    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    labels, stats = [], []
    for router, spend in report["spend"].items():
        labels += [f"{router}\nexpected", f"{router}\nreal"]
        stats += [spend["expected_cost_usd"], spend["real_cost_usd"]]
    labels.append("called\nreal")
    stats.append(report["called"]["real_cost_usd"])
    _bars(ax, labels, stats)
    ax.set_ylabel("USD per request (95% CI)")
    ax.set_title("What each router would have spent")
    return _save(figure, path)


def plot_quality(report: Mapping[str, Any], path: Path) -> Path:
    """Mean grade where the chosen tier was graded, and mean predicted P(success)."""
    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    labels, stats = [], []
    for router, quality in report["quality"].items():
        labels += [f"{router}\ngrade", f"{router}\nP(success)"]
        stats += [quality["grade"], quality["p_success"]]
    labels.append("called\ngrade")
    stats.append(report["called"]["grade"])
    _bars(ax, labels, stats)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("mean (95% CI)")
    ax.set_title("Estimated quality of each router")
    return _save(figure, path)


def plot_tier_mix(report: Mapping[str, Any], path: Path) -> Path:
    """Stacked tier shares per router, in the reference window and the report window."""
    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    columns: list[tuple[str, Mapping[str, float]]] = []
    for router, mix in report["drift"]["tier_mix"].items():
        columns.append((f"{router}\nreference", mix["reference"]))
        columns.append((f"{router}\nwindow", mix["window"]))
    tiers = sorted({t for _, mix in columns for t in mix})
    bottoms = [0.0] * len(columns)
    for tier in tiers:
        shares = [mix.get(tier, 0.0) for _, mix in columns]
        ax.bar(range(len(columns)), shares, bottom=bottoms, label=tier)
        bottoms = [b + s for b, s in zip(bottoms, shares, strict=True)]
    ax.set_xticks(range(len(columns)), [name for name, _ in columns])
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("share of requests")
    ax.set_title("Chosen-tier mix")
    if tiers:
        ax.legend(loc="upper right", fontsize="small")
    return _save(figure, path)
