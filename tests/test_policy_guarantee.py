"""The quality guarantee: its p-value, the fixed-sequence test, the fit and the coverage check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from router_model import policy
from router_model.manifest import PolicyConfig, PolicyGuarantee
from router_model.router import Router
from tierwise.cli import main
from training.evaluation.guarantee import guarantee_coverage
from training.policy_fit import (
    LAMBDA_GRID,
    QUALITY_TARGETS,
    binomial_cdf,
    fit_policy,
    hb_p_values,
    select_lambdas,
    sweep,
)
from training.report import judged_subset
from training.train import load_calls

DELTA = 0.1


def test_binomial_cdf_matches_the_exact_sum() -> None:
    n, p = 12, 0.37
    exact = np.cumsum([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    assert binomial_cdf(n, np.array([p]))[0] == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize(("n", "alpha"), [(20, 0.5), (200, 0.5), (150, 1 / 1.95)])
def test_p_value_is_valid_at_the_null_boundary(n: int, alpha: float) -> None:
    """Bernoulli losses with mean exactly α are the worst case; rejections must stay ≤ δ."""
    rng = np.random.default_rng(n)
    means = rng.binomial(1, alpha, size=(20_000, n)).mean(axis=1)[:, None]
    rejected = hb_p_values(means, n, np.array([alpha])) <= DELTA
    assert rejected.mean() <= DELTA


def test_p_value_rejects_a_clearly_safe_risk_and_never_an_unsafe_one() -> None:
    alpha = np.array([0.5])
    assert hb_p_values(np.array([[0.40]]), 1000, alpha)[0, 0] < 1e-6
    assert hb_p_values(np.array([[0.50], [0.7]]), 1000, alpha).min() == 1.0
    assert hb_p_values(np.array([[np.nan]]), 1000, alpha)[0, 0] == 1.0


def test_paired_grades_at_the_target_are_rarely_certified() -> None:
    """Quality exactly X·top in expectation (the null boundary) passes at most δ of the time."""
    rng = np.random.default_rng(7)
    reps, n, target = 4_000, 300, 0.9
    top = rng.binomial(1, 0.8, size=(reps, n)).astype(float)
    chosen = rng.binomial(1, 0.72, size=(reps, n)).astype(float)  # 0.72 = 0.9 × 0.8
    selection = select_lambdas(
        chosen.mean(axis=1, keepdims=True),
        np.ones((reps, 1)),
        top.mean(axis=1),
        n,
        np.array([target]),
        DELTA,
    )
    assert selection.certified.mean() <= DELTA
    assert selection.point.shape == (reps, 1)


def test_fixed_sequence_stops_at_the_first_failure() -> None:
    """λ 0 and 1 pass, λ 2 fails, λ 3 would pass and is cheapest: it must not be chosen."""
    quality = np.array([[0.95, 0.94, 0.50, 0.93]])
    cost = np.array([[1.0, 0.8, 0.3, 0.2]])
    selection = select_lambdas(quality, cost, np.array([0.9]), 10_000, np.array([0.9]), DELTA)
    assert selection.certified[0, 0]
    assert selection.guaranteed[0, 0] == 1  # the cheaper of the two tested safe
    assert selection.point[0, 0] == 3  # the point estimate ignores the failure


def test_nothing_certified_falls_back_to_lambda_zero() -> None:
    quality = np.array([[0.80, 0.95]])
    cost = np.array([[1.0, 0.5]])
    selection = select_lambdas(quality, cost, np.array([0.9]), 10_000, np.array([0.9]), DELTA)
    assert not selection.certified[0, 0]
    assert selection.guaranteed[0, 0] == 0
    assert selection.point[0, 0] == 1


@pytest.fixture(scope="module")
def judged_scores(
    logreg_router_dir: Path, mmlu_calls: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixture router's P(success) and expected costs on real graded MMLU-Pro requests."""
    from training.dataset import build_table

    router = Router.load(logreg_router_dir)
    table = judged_subset(build_table(load_calls([mmlu_calls]), router.ladder))
    scores = router.score(table.requests)
    return scores.p_success, router.expected_costs(scores), table.grades, table.costs


def _calibration_cost(
    fitted: PolicyConfig, scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> dict[float, float]:
    """Calibration cost of the λ the table holds for each target."""
    p, expected, grades, costs = scores
    _, cost = sweep(p, expected / fitted.reference_cost_usd, grades, costs)
    index = {float(lam): i for i, lam in enumerate(LAMBDA_GRID)}
    return {t: float(cost[index[lam]]) for t, lam in fitted.lambda_table}


def test_guaranteed_fit_is_never_cheaper_than_the_point_estimate(
    judged_scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    p, expected, grades, costs = judged_scores
    strict = fit_policy(p, expected, grades, costs, confidence=0.95)
    loose = fit_policy(p, expected, grades, costs, confidence=0.5)
    point = fit_policy(p, expected, grades, costs, confidence=None)
    assert point.guarantee is None
    assert strict.guarantee is not None and loose.guarantee is not None
    assert strict.guarantee.calibration_requests == len(grades)
    assert strict.guarantee.guaranteed_targets, "real data should certify the easy targets"
    # A looser confidence can only certify more targets, never fewer.
    assert set(strict.guarantee.guaranteed_targets) <= set(loose.guarantee.guaranteed_targets)
    strict_cost = _calibration_cost(strict, judged_scores)
    loose_cost = _calibration_cost(loose, judged_scores)
    point_cost = _calibration_cost(point, judged_scores)
    for target in strict.guarantee.guaranteed_targets:
        assert strict_cost[target] >= loose_cost[target] >= point_cost[target]
    for target, lam in strict.lambda_table:
        if target not in strict.guarantee.guaranteed_targets:
            assert lam == 0.0


def test_trained_manifest_records_the_guarantee(logreg_router_dir: Path) -> None:
    raw = json.loads((logreg_router_dir / "manifest.json").read_text())["policy"]
    assert raw["guarantee"]["confidence"] == 0.9
    assert raw["guarantee"]["calibration_requests"] > 100
    assert "hoeffding-bentkus" in raw["guarantee"]["method"]
    targets = {t for t, _ in raw["lambda_table"]}
    assert set(raw["guarantee"]["guaranteed_targets"]) <= targets
    assert len(raw["lambda_table"]) == len(QUALITY_TARGETS)


def test_policy_without_guarantee_still_loads_and_promises_nothing() -> None:
    old = {"default_quality_target": 0.95, "reference_cost_usd": 1.0, "lambda_table": [[0.9, 0.2]]}
    config = PolicyConfig.from_dict(old)
    assert config.guarantee is None and config.to_dict() == {"default_rule": "cost_aware", **old}
    assert not policy.guaranteed_for_target(config, 0.9)


def test_guaranteed_for_target_follows_the_conservative_lookup() -> None:
    guarantee = PolicyGuarantee("m", 0.9, 500, (0.85, 0.9))
    config = PolicyConfig(0.95, 1.0, ((0.85, 0.4), (0.9, 0.2), (0.95, 0.0)), guarantee=guarantee)
    again = PolicyConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert policy.guaranteed_for_target(config, 0.88)  # looked up at 0.90
    assert not policy.guaranteed_for_target(config, 0.93)  # looked up at 0.95
    assert not policy.guaranteed_for_target(config, 0.99)  # above the table


def test_coverage_check_meets_the_confidence_where_the_point_estimate_does_not() -> None:
    """A simulated router on 3,000 requests: certified targets hold, point estimates coin-flip."""
    rng = np.random.default_rng(3)
    n = 3_000
    skill = np.array([0.3, 0.6, 0.9])
    difficulty = rng.uniform(size=n)
    truth = 1 / (1 + np.exp(-6 * (skill[None, :] - difficulty[:, None])))
    grades = (rng.uniform(size=truth.shape) < truth).astype(float)
    predicted = np.clip(truth + rng.normal(0, 0.1, size=truth.shape), 0, 1)
    costs = np.array([[0.05, 0.3, 1.0]]) * rng.uniform(0.5, 1.5, size=(n, 1))
    choices = policy.cost_aware_choices(predicted, costs / costs[:, -1].mean(), LAMBDA_GRID)
    report = guarantee_coverage(choices, grades, costs, confidence=1 - DELTA, resamples=100)
    certified = [t for t in report.targets if t.certified > 0.5]
    assert certified, "3,000 requests should certify the lower targets"
    for t in certified:
        assert t.coverage_certified is not None and t.coverage_certified >= 1 - DELTA
        assert t.cost_fraction >= t.point_cost_fraction
    assert min(t.point_coverage for t in report.targets) < 0.8


def test_evaluate_reports_guarantee_coverage(
    logreg_router_dir: Path, mmlu_calls: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    args = ["evaluate", "--model", str(logreg_router_dir), "--calls", str(mmlu_calls)]
    assert main([*args, "--report", str(report)]) == 0
    section = json.loads((report / "metrics.json").read_text())["guarantee"]
    assert section["confidence"] == 0.9 and section["resamples"] == 200
    assert [t["target"] for t in section["targets"]] == [0.80, 0.85, 0.90, 0.95, 0.98]
    for t in section["targets"]:
        for key in ("coverage", "certified", "point_estimate_coverage"):
            assert 0.0 <= t[key] <= 1.0
        assert t["cost_fraction"] > 0 and t["point_estimate_cost_fraction"] > 0
    assert (report / "guarantee_coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    compact = json.loads((logreg_router_dir / "manifest.json").read_text())["metrics"]["guarantee"]
    assert {"at_90", "at_95"} <= set(compact)
