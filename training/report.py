"""Judging a router on held-out calls: the metrics of DESIGN.md, as JSON and plots.

The router is scored through its artifact (the ONNX path that serves), its
control is swept over the whole range to get its cost–quality curve, and the
same split yields every baseline. Only requests graded on every tier can be
judged this way; the report says how many there were.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model import policy
from router_model.errors import InvalidInputError
from router_model.manifest import PolicyConfig
from router_model.router import Router
from router_model.tiers import TierLadder
from training.dataset import RequestTable
from training.evaluation.baselines import (
    Baselines,
    Reference,
    compute_baselines,
    summarize_curve,
)
from training.evaluation.bootstrap import paired_bootstrap
from training.evaluation.calibration import CalibrationReport, calibration_report
from training.evaluation.curves import Curve, curve_points
from training.evaluation.guarantee import GuaranteeCoverage, guarantee_coverage
from training.evaluation.heuristics import heuristic_curves
from training.evaluation.knn_router import KnnRouter
from training.evaluation.plots import plot_cost_quality, plot_guarantee, plot_reliability
from training.policy_fit import DEFAULT_CONFIDENCE, LAMBDA_GRID

FloatArray = npt.NDArray[np.float64]
THRESHOLD_GRID = np.linspace(0.0, 1.0, 201)
MIN_JUDGED = 10


@dataclass(frozen=True)
class Evaluation:
    """The metrics as JSON-ready data plus the objects the plots are drawn from."""

    metrics: dict[str, Any]
    curves: dict[str, Curve]
    baselines: Baselines
    heuristics: dict[str, Curve]
    calibration: CalibrationReport
    guarantee: GuaranteeCoverage | None = None


@dataclass(frozen=True)
class RouterOutputs:
    """The router's view of each judged request, in the tier columns of ``ladder``.

    Evaluation reads only these, so where they come from is a separate step:
    straight from the artifact (``router_outputs``), or mapped onto another
    data set's ladder (``training.evaluation.transfer``). ``sections`` are extra
    top-level metrics entries in which that step says what it did.
    """

    ladder: TierLadder
    p_success: FloatArray
    expected_cost_usd: FloatArray
    policy: PolicyConfig
    sections: Mapping[str, Any] = field(default_factory=dict)

    def subset(self, rows: npt.NDArray[np.int64]) -> RouterOutputs:
        return replace(
            self, p_success=self.p_success[rows], expected_cost_usd=self.expected_cost_usd[rows]
        )


Scoring = Callable[[Router, RequestTable], RouterOutputs]


def router_outputs(router: Router, table: RequestTable) -> RouterOutputs:
    """In distribution: the artifact's outputs on the router's own ladder."""
    scores = router.score(table.requests)
    return RouterOutputs(
        router.ladder, scores.p_success, router.expected_costs(scores), router.manifest.policy
    )


def cost_aware_choices(outputs: RouterOutputs) -> npt.NDArray[np.int64]:
    """[K, N] tiers the cost-aware rule picks at every λ of the grid."""
    cost_norm = outputs.expected_cost_usd / outputs.policy.reference_cost_usd
    scores = policy.decision_scores(outputs.p_success, outputs.policy)
    choices = policy.cost_aware_choices(scores, cost_norm, LAMBDA_GRID)
    return np.asarray(choices, dtype=np.int64)


def router_curves(
    outputs: RouterOutputs, table: RequestTable, aware: npt.NDArray[np.int64]
) -> dict[str, Curve]:
    """Cost–quality curves of both rules over their whole control range.

    ``aware`` is ``cost_aware_choices(outputs)``, computed once per evaluation.
    """
    p_success = outputs.p_success
    threshold = np.stack([policy.threshold_choices(p_success, q)[0] for q in THRESHOLD_GRID])
    return {
        "cost_aware": curve_points(aware, table.grades, table.costs),
        "threshold": curve_points(threshold, table.grades, table.costs),
    }


def _default_point(
    outputs: RouterOutputs, table: RequestTable, reference: Reference
) -> dict[str, Any]:
    """What the shipped default (rule and quality target) realises on this split."""
    config = outputs.policy
    chosen, _ = policy.decide(outputs.p_success, outputs.expected_cost_usd, config)
    rows = np.arange(len(table))
    quality = float(table.grades[rows, chosen].mean())
    cost = float(table.costs[rows, chosen].mean())
    share = np.bincount(chosen, minlength=len(outputs.ladder)) / len(chosen)
    return {
        "rule": config.default_rule,
        "quality_target": config.default_quality_target,
        "quality_fraction_of_top": quality / reference.top.quality,
        "cost_fraction_of_top": cost / reference.top.cost,
        "tier_share": dict(zip(outputs.ladder.names, share.round(4).tolist(), strict=True)),
    }


def judged_rows(table: RequestTable) -> npt.NDArray[np.int64]:
    """Rows graded on every tier: the only ones a cost–quality curve can be read on."""
    rows = np.flatnonzero(table.fully_graded())
    if len(rows) < MIN_JUDGED:
        raise InvalidInputError(
            f"only {len(rows)} requests are graded on every tier; evaluation needs at "
            f"least {MIN_JUDGED}",
            "calls",
        )
    return rows.astype(np.int64)


def judged_subset(table: RequestTable) -> RequestTable:
    return table.subset(judged_rows(table))


def evaluate(
    router: Router,
    table: RequestTable,
    *,
    detailed: bool = True,
    scoring: Scoring = router_outputs,
    knn: KnnRouter | None = None,
) -> Evaluation:
    """Every metric of one held-out split; ``detailed`` adds frontiers and reliability bins.

    ``scoring`` turns the requests into router outputs in the table's tier
    columns; the default scores them on the router's own ladder. Curves,
    baselines and the guarantee use the requests graded on every tier;
    calibration uses every graded call. ``knn`` adds the kNN router baseline.
    """
    rows = judged_rows(table)
    scored = scoring(router, table)
    outputs = scored.subset(rows)
    judged = table.subset(rows)
    ladder = outputs.ladder
    aware = cost_aware_choices(outputs)
    curves = router_curves(outputs, judged, aware)
    baselines = compute_baselines(judged.grades, judged.costs, ladder.pass_grade, ladder.names)
    reference = baselines.reference
    heuristics = heuristic_curves(judged.texts, judged.grades, judged.costs)
    others = {} if knn is None else {"knn": knn.choices(judged.texts, LAMBDA_GRID)}
    for name, choices in others.items():
        heuristics[name] = curve_points(choices, judged.grades, judged.costs)
    calibration = calibration_report(
        scored.p_success, table.grades, ladder.pass_grade, ladder.names, successes=table.successes
    )

    def summary(curve: Curve) -> dict[str, Any]:
        out = summarize_curve(curve, reference).to_dict()
        return out if detailed else _compact(out)

    baseline_summaries = baselines.summaries()
    metrics: dict[str, Any] = {
        "requests": len(table),
        "requests_judged": len(judged),
        "tiers": list(ladder.names),
        "reference": reference.to_dict(),
        "routers": {name: summary(c) for name, c in curves.items()},
        "default_operating_point": _default_point(outputs, judged, reference),
        "baselines": {
            name: (s.to_dict() if detailed else _compact(s.to_dict()))
            for name, s in baseline_summaries.items()
        },
        "heuristics": {name: summary(c) for name, c in heuristics.items()},
        "calibration": _calibration_dict(calibration.to_dict(), detailed),
        **outputs.sections,
    }
    guarantee = guarantee_check(outputs, judged, aware)
    metrics["guarantee"] = guarantee.to_dict() if detailed else guarantee.compact()
    if detailed:
        bootstrap = paired_bootstrap(aware, judged.grades, judged.costs, others)
        metrics["bootstrap"] = bootstrap.to_dict()
    return Evaluation(metrics, curves, baselines, heuristics, calibration, guarantee)


def guarantee_check(
    outputs: RouterOutputs, judged: RequestTable, aware: npt.NDArray[np.int64]
) -> GuaranteeCoverage:
    """Resampled coverage of the λ fit's quality guarantee, at the manifest's confidence."""
    stated = outputs.policy.guarantee
    confidence = stated.confidence if stated is not None else DEFAULT_CONFIDENCE
    return guarantee_coverage(aware, judged.grades, judged.costs, confidence=confidence)


def heldout_metrics(
    router: Router, table: RequestTable, scoring: Scoring = router_outputs
) -> dict[str, Any]:
    """The compact metrics recorded in the manifest at training time."""
    return evaluate(router, table, detailed=False, scoring=scoring).metrics


def write_report(
    router: Router,
    table: RequestTable,
    report_dir: Path,
    *,
    scoring: Scoring = router_outputs,
    knn: KnnRouter | None = None,
) -> dict[str, Any]:
    """``metrics.json`` and the cost-quality, reliability and guarantee plots in ``report_dir``."""
    result = evaluate(router, table, scoring=scoring, knn=knn)
    report_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"router_version": router.version, **result.metrics}
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_cost_quality(
        report_dir / "cost_quality.png",
        result.curves,
        result.baselines,
        result.heuristics,
        title=f"Cost-quality on held-out calls (router {router.version})",
    )
    plot_reliability(report_dir / "reliability.png", result.calibration.reliability_by_tier())
    if result.guarantee is not None:
        plot_guarantee(report_dir / "guarantee_coverage.png", result.guarantee)
    return metrics


def _compact(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("frontier", "n_points", "mixing")}


def _calibration_dict(data: dict[str, Any], detailed: bool) -> dict[str, Any]:
    if detailed:
        return data
    return {
        t["tier"]: {k: t[k] for k in ("roc_auc", "brier", "ece", "ece_noise_floor", "n")}
        for t in data["tiers"]
    }
