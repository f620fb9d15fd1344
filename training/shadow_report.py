"""The shadow report: would the challenger (or the router, before adoption) have done better?

Shadow decisions are joined with the graded answered calls of the same
requests (``serving.shadow.report``). For each router the report gives:

- agreement with the other router and with the tier actually called;
- spend: the expected cost of the chosen tier (every request), and the real
  cost where the chosen tier's call exists in the log;
- quality: the mean grade where the chosen tier was answered and graded (an
  unbiased estimate only where the chosen tier was sampled), and the model's
  own estimate, the mean P(success) of the chosen tier (every request);
- drift between a reference window and the report window (``shadow_drift``).

Every mean carries a seeded percentile-bootstrap 95% interval, so two runs on
the same log give the same report, and a difference inside the intervals is
read as no difference.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from serving.shadow.report import JoinedRequest, Window
from training.shadow_drift import drift_report

DEFAULT_BOOTSTRAPS = 1000
DEFAULT_CALIBRATION_THRESHOLD = 0.1
_CHUNK_CELLS = 4_000_000  # resampled values held at once by the bootstrap


@dataclass(frozen=True)
class ReportOptions:
    """How the report is computed; ``model_dir`` turns on the embedding drift."""

    seed: int = 0
    bootstraps: int = DEFAULT_BOOTSTRAPS
    calibration_threshold: float = DEFAULT_CALIBRATION_THRESHOLD
    model_dir: Path | None = None


def bootstrap_mean(
    values: Sequence[float], rng: np.random.Generator, n_boot: int
) -> dict[str, Any]:
    """Mean, percentile-bootstrap 95% interval and count; ``None`` fields when empty."""
    data = np.asarray(values, dtype=np.float64)
    n = len(data)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    means = np.empty(n_boot)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_boot, step):
        rows = min(step, n_boot - start)
        means[start : start + rows] = data[rng.integers(0, n, (rows, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(data.mean()), "ci95": [float(low), float(high)], "n": n}


def build_report(
    window: Window, reference: Window, options: ReportOptions | None = None
) -> dict[str, Any]:
    """The whole report as a JSON-ready dict."""
    opts = options or ReportOptions()
    rng = np.random.default_rng(opts.seed)
    requests = window.shadowed()
    routers = window.routers

    def stat(pick: Callable[[JoinedRequest], float | None]) -> dict[str, Any]:
        values = [v for v in (pick(r) for r in requests) if v is not None]
        return bootstrap_mean(values, rng, opts.bootstraps)

    report: dict[str, Any] = {
        "window": _span(window.since, window.until),
        "reference": _span(reference.since, reference.until),
        "requests": len(requests),
        "malformed_shadow_records": window.malformed,
        "seed": opts.seed,
        "bootstraps": opts.bootstraps,
        "routers": {
            label: {
                "decisions": sum(label in r.decisions for r in requests),
                "router_versions": sorted(
                    {r.decisions[label].router_version for r in requests if label in r.decisions}
                ),
            }
            for label in routers
        },
        "agreement": _agreement(routers, stat),
        "spend": {label: _spend(label, stat) for label in routers},
        "quality": {label: _quality(label, stat) for label in routers},
        "called": {
            "requests": sum(r.called_tier is not None for r in requests),
            "real_cost_usd": stat(_called_cost),
            "grade": stat(lambda r: r.graded(r.called_tier) if r.called_tier else None),
        },
        "tier_mix": {label: tier_mix(requests, label) for label in routers},
    }
    report["drift"] = drift_report(
        window, reference, opts.calibration_threshold, opts.model_dir, opts.seed
    )
    return report


def tier_mix(requests: Sequence[JoinedRequest], label: str) -> dict[str, float]:
    """Share of requests for which router ``label`` chose each tier."""
    tiers = [r.decisions[label].tier for r in requests if label in r.decisions]
    if not tiers:
        return {}
    return {t: tiers.count(t) / len(tiers) for t in sorted(set(tiers))}


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """``report.json`` and the PNG plots in ``out_dir``; returns the files written."""
    from training.shadow_plots import plot_quality, plot_spend, plot_tier_mix

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return [
        path,
        plot_spend(report, out_dir / "spend.png"),
        plot_quality(report, out_dir / "quality.png"),
        plot_tier_mix(report, out_dir / "tier_mix.png"),
    ]


def _agreement(
    routers: Sequence[str], stat: Callable[[Callable[[JoinedRequest], float | None]], Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, a in enumerate(routers):
        for b in routers[i + 1 :]:
            out[f"{a}_vs_{b}"] = stat(functools.partial(_pair, a=a, b=b))
        out[f"{a}_vs_called"] = stat(functools.partial(_same_as_called, label=a))
    return out


def _pair(request: JoinedRequest, a: str, b: str) -> float | None:
    da, db = request.decisions.get(a), request.decisions.get(b)
    return None if da is None or db is None else float(da.tier == db.tier)


def _same_as_called(request: JoinedRequest, label: str) -> float | None:
    decision, called = request.decisions.get(label), request.called_tier
    return None if decision is None or called is None else float(decision.tier == called)


def _spend(label: str, stat: Callable[[Callable[[JoinedRequest], float | None]], Any]) -> Any:
    def expected(r: JoinedRequest) -> float | None:
        d = r.decisions.get(label)
        return None if d is None else d.chosen_cost_usd

    def real(r: JoinedRequest) -> float | None:
        d = r.decisions.get(label)
        call = r.answer(d.tier) if d is not None else None
        return None if call is None else call.cost_usd

    return {"expected_cost_usd": stat(expected), "real_cost_usd": stat(real)}


def _quality(label: str, stat: Callable[[Callable[[JoinedRequest], float | None]], Any]) -> Any:
    def grade(r: JoinedRequest) -> float | None:
        d = r.decisions.get(label)
        return None if d is None else r.graded(d.tier)

    def p_success(r: JoinedRequest) -> float | None:
        d = r.decisions.get(label)
        return None if d is None else d.chosen_p_success

    return {"grade": stat(grade), "p_success": stat(p_success)}


def _called_cost(request: JoinedRequest) -> float | None:
    tier = request.called_tier
    call = request.answer(tier) if tier is not None else None
    return None if call is None else call.cost_usd


def _span(since: datetime | None, until: datetime | None) -> dict[str, str | None]:
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
