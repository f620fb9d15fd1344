"""The quality guarantee: its p-value, the fixed-sequence test, the fit and the coverage check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from router_model import policy
from router_model.errors import InvalidInputError
from router_model.manifest import PolicyConfig, PolicyGuarantee
from router_model.router import Router
from tierwise.cli import main
from training.evaluation.guarantee import guarantee_coverage
from training.policy_fit import (
    GUARANTEE_METHODS,
    LAMBDA_GRID,
    QUALITY_TARGETS,
    betting_p_values,
    binomial_cdf,
    fit_policy,
    hb_p_values,
    select_lambdas,
    sweep,
)
from training.report import judged_subset
from training.train import load_calls

DELTA = 0.1
METHODS = ("betting", "hoeffding-bentkus")


def _p_values(method: str, losses: np.ndarray, alpha: float) -> np.ndarray:
    """[reps] p-values of H0: E[r] ≥ α from [reps, n] losses in [0, 1]."""
    if method == "betting":
        return betting_p_values(losses, alpha)
    return hb_p_values(losses.mean(axis=1)[:, None], losses.shape[1], np.array([alpha]))[:, 0]


def _select(
    chosen: np.ndarray, top: np.ndarray, cost: np.ndarray, targets: np.ndarray, method: str
) -> object:
    """select_lambdas on [R, K, n] routed grades and [R, n] top grades, one set per row."""
    sets, lambdas, n = chosen.shape
    table = np.moveaxis(chosen, 1, 0).reshape(lambdas, sets * n)
    costs = np.repeat(cost.T, n, axis=1)
    index = np.arange(sets * n).reshape(sets, n)
    return select_lambdas(table, costs, top.reshape(-1), index, targets, DELTA, method)


def _with_mean(mean: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n grades in {0, 1} in random order whose mean is ``mean`` to within 1/n."""
    grades = (np.arange(n) < round(mean * n)).astype(float)
    return rng.permutation(grades)


def test_binomial_cdf_matches_the_exact_sum() -> None:
    n, p = 12, 0.37
    exact = np.cumsum([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    assert binomial_cdf(n, np.array([p]))[0] == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n", "alpha"), [(20, 0.5), (200, 0.5), (150, 1 / 1.95)])
def test_p_value_is_valid_at_the_null_boundary(method: str, n: int, alpha: float) -> None:
    """Bernoulli losses with mean exactly α are the worst case; rejections must stay ≤ δ."""
    rng = np.random.default_rng(n)
    losses = rng.binomial(1, alpha, size=(20_000, n)).astype(float)
    assert (_p_values(method, losses, alpha) <= DELTA).mean() <= DELTA


@pytest.mark.parametrize("method", METHODS)
def test_p_value_is_valid_for_low_variance_losses_at_the_null(method: str) -> None:
    """Most losses exactly at the boundary, a few symmetric swings: still ≤ δ rejections."""
    rng = np.random.default_rng(5)
    alpha = 1 / 1.9
    u = rng.uniform(size=(20_000, 300))
    # r = α w.p. 0.9; else 0 or 1 with probabilities that keep the mean at exactly α.
    losses = np.where(u < 0.9, alpha, np.where(u < 0.9 + 0.1 * (1 - alpha), 0.0, 1.0))
    assert (_p_values(method, losses, alpha) <= DELTA).mean() <= DELTA


def test_p_value_rejects_a_clearly_safe_risk_and_never_an_unsafe_one() -> None:
    alpha = np.array([0.5])
    assert hb_p_values(np.array([[0.40]]), 1000, alpha)[0, 0] < 1e-6
    assert hb_p_values(np.array([[0.50], [0.7]]), 1000, alpha).min() == 1.0
    assert hb_p_values(np.array([[np.nan]]), 1000, alpha)[0, 0] == 1.0
    rng = np.random.default_rng(0)
    safe = rng.binomial(1, 0.40, size=(1, 1000)).astype(float)
    assert betting_p_values(safe, 0.5)[0] < 1e-3
    # At or above the boundary the wealth can only grow by luck; never when r ≥ α always.
    assert betting_p_values(np.array([[0.5] * 1000, [0.7] * 1000]), 0.5).min() == 1.0
    assert betting_p_values(np.full((1, 1000), np.nan), 0.5)[0] == 1.0


def test_betting_certifies_low_variance_losses_that_hoeffding_bentkus_cannot() -> None:
    """The router agrees with the top tier on 90% of requests (ℓ = 0 there): power.

    On the rest it loses (ℓ = X) on 2% and wins (ℓ = −1) on 8%, so the mean loss
    is clearly negative but small next to the worst-case variance that
    Hoeffding–Bentkus must allow for.
    """
    rng = np.random.default_rng(2)
    x, n = 0.95, 300
    alpha = 1 / (1 + x)
    u = rng.uniform(size=(200, n))
    loss = np.where(u < 0.90, 0.0, np.where(u < 0.92, x, -1.0))
    losses = (loss + 1.0) * alpha
    betting = _p_values("betting", losses, alpha) <= DELTA
    hoeffding = _p_values("hoeffding-bentkus", losses, alpha) <= DELTA
    assert betting.mean() > 0.8
    assert hoeffding.mean() < 0.05


@pytest.mark.parametrize("method", METHODS)
def test_paired_grades_at_the_target_are_rarely_certified(method: str) -> None:
    """Quality exactly X·top in expectation (the null boundary) passes at most δ of the time."""
    rng = np.random.default_rng(7)
    reps, n, target = 4_000, 300, 0.9
    top = rng.binomial(1, 0.8, size=(reps, n)).astype(float)
    chosen = rng.binomial(1, 0.72, size=(reps, 1, n)).astype(float)  # 0.72 = 0.9 × 0.8
    selection = _select(chosen, top, np.ones((reps, 1)), np.array([target]), method)
    assert selection.certified.mean() <= DELTA
    assert selection.point.shape == (reps, 1)


@pytest.mark.parametrize("method", METHODS)
def test_paired_grades_agreeing_with_the_top_tier_are_rarely_certified(method: str) -> None:
    """The null boundary again, but with the routed grade equal to the top's on most requests."""
    rng = np.random.default_rng(8)
    reps, n, target = 4_000, 300, 0.9
    top = rng.binomial(1, 0.8, size=(reps, n)).astype(float)
    # Keep the top's grade w.p. 0.85, else fail: E[chosen] = 0.85 · 0.8 = 0.68 ...
    chosen = top * rng.binomial(1, 0.85, size=(reps, n))
    # ... and turn a failed top into a success w.p. 0.2: 0.68 + 0.2 · 0.2 = 0.72 = 0.9 × 0.8.
    chosen = np.where(top == 0, rng.binomial(1, 0.2, size=(reps, n)), chosen)[:, None, :]
    selection = _select(chosen, top, np.ones((reps, 1)), np.array([target]), method)
    assert selection.certified.mean() <= DELTA


@pytest.mark.parametrize("method", METHODS)
def test_fixed_sequence_stops_at_the_first_failure(method: str) -> None:
    """λ 0 and 1 pass, λ 2 fails, λ 3 would pass and is cheapest: it must not be chosen."""
    rng = np.random.default_rng(0)
    n = 10_000
    chosen = np.stack([_with_mean(q, n, rng) for q in (0.95, 0.94, 0.50, 0.93)])[None]
    top = _with_mean(0.9, n, rng)[None]
    cost = np.array([[1.0, 0.8, 0.3, 0.2]])
    selection = _select(chosen, top, cost, np.array([0.9]), method)
    assert selection.certified[0, 0]
    assert selection.guaranteed[0, 0] == 1  # the cheaper of the two tested safe
    assert selection.point[0, 0] == 3  # the point estimate ignores the failure


@pytest.mark.parametrize("method", METHODS)
def test_nothing_certified_falls_back_to_lambda_zero(method: str) -> None:
    rng = np.random.default_rng(1)
    n = 10_000
    chosen = np.stack([_with_mean(q, n, rng) for q in (0.80, 0.95)])[None]
    top = _with_mean(0.9, n, rng)[None]
    selection = _select(chosen, top, np.array([[1.0, 0.5]]), np.array([0.9]), method)
    assert not selection.certified[0, 0]
    assert selection.guaranteed[0, 0] == 0
    assert selection.point[0, 0] == 1


def test_calibration_sets_are_tested_independently() -> None:
    """Batched sets give each the answer it gets alone, also where rows of λ repeat."""
    rng = np.random.default_rng(4)
    chosen = rng.binomial(1, [[0.9], [0.88], [0.88], [0.7]], size=(4, 600)).astype(float)
    chosen[2] = chosen[1]
    top = rng.binomial(1, 0.9, size=600).astype(float)
    cost = np.array([[1.0], [0.7], [0.7], [0.2]]) * np.ones((1, 600))
    index = np.stack([rng.permutation(600)[:300] for _ in range(6)])
    targets = np.array([0.8, 0.9, 0.95])
    together = select_lambdas(chosen, cost, top, index, targets, DELTA)
    for r in range(6):
        alone = select_lambdas(chosen, cost, top, index[r : r + 1], targets, DELTA)
        assert (alone.guaranteed[0] == together.guaranteed[r]).all()
        assert (alone.certified[0] == together.certified[r]).all()
    assert together.certified.any()


def test_selection_is_valid_against_the_true_population_quality() -> None:
    """End to end: a simulated router, fresh calibration draws, the true quality of the λ kept.

    The expectation is computed on a large population, so this checks the
    promise itself (the λ kept misses X·top in expectation at most δ of the
    time), not a finite test half.
    """
    rng = np.random.default_rng(11)
    skill, tier_cost = np.array([0.3, 0.6, 0.9]), np.array([0.05, 0.3, 1.0])
    grid = LAMBDA_GRID[::4]
    targets = np.array([0.85, 0.9, 0.95])

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        truth = 1 / (1 + np.exp(-6 * (skill[None, :] - rng.uniform(size=(n, 1)))))
        predicted = np.clip(truth + rng.normal(0, 0.1, size=truth.shape), 0, 1)
        choices = policy.cost_aware_choices(predicted, tier_cost[None, :], grid)
        grades = (rng.uniform(size=truth.shape) < truth).astype(float)
        return truth, grades, choices, np.arange(n)

    truth, _, choices, rows = draw(200_000)
    true_quality = truth[rows, choices].mean(axis=1)
    goal = targets * truth[:, -1].mean()
    reps, n = 300, 200
    missed = np.zeros(targets.size)
    certified = np.zeros(targets.size)
    for _ in range(reps):
        _, grades, choices, rows = draw(n)
        chosen = select_lambdas(
            grades[rows, choices],
            tier_cost[choices],
            grades[:, -1],
            rng.permutation(n)[None],
            targets,
            DELTA,
        )
        missed += true_quality[chosen.guaranteed[0]] < goal
        certified += chosen.certified[0]
    # δ plus three binomial standard errors of the estimate over the repetitions.
    assert (missed / reps <= DELTA + 3 * np.sqrt(DELTA * (1 - DELTA) / reps)).all()
    assert (certified / reps > 0.5).all(), "200 requests should certify these targets"


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


@pytest.mark.parametrize("method", METHODS)
def test_guaranteed_fit_is_never_cheaper_than_the_point_estimate(
    judged_scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], method: str
) -> None:
    p, expected, grades, costs = judged_scores
    strict = fit_policy(p, expected, grades, costs, confidence=0.95, method=method)
    loose = fit_policy(p, expected, grades, costs, confidence=0.5, method=method)
    point = fit_policy(p, expected, grades, costs, confidence=None)
    assert point.guarantee is None
    assert strict.guarantee is not None and loose.guarantee is not None
    assert strict.guarantee.method == GUARANTEE_METHODS[method]
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
            assert lam == policy.ALWAYS_TOP
            assert policy.guaranteed_for_target(strict, target)
        else:
            assert lam >= 0.0  # certified in the fixed sequence, which starts at λ = 0


def test_targets_uncertain_probabilities_cannot_certify_send_everything_to_the_top(
    judged_scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    p, expected, grades, costs = judged_scores
    noise = np.random.default_rng(0).permutation(p)  # another request's probabilities
    fitted = fit_policy(noise[:120], expected[:120], grades[:120], costs[:120])
    assert fitted.guarantee is not None
    certified = set(fitted.guarantee.guaranteed_targets)
    uncertified = [t for t, _ in fitted.lambda_table if t not in certified]
    assert 1.0 in uncertified
    for target in uncertified:
        assert policy.lambda_for_target(fitted, target) == policy.ALWAYS_TOP
        assert policy.guaranteed_for_target(fitted, target)
    chosen, _ = policy.decide(noise, expected, fitted, quality_target=1.0)
    assert (chosen == grades.shape[1] - 1).all()


def test_the_curve_reaches_the_top_tier_whatever_the_probabilities(
    judged_scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    p, expected, grades, costs = judged_scores
    inverted = 1.0 - p  # worse than no information
    quality, cost = sweep(inverted, expected / expected[:, -1].mean(), grades, costs)
    assert LAMBDA_GRID[0] == policy.ALWAYS_TOP
    assert quality[0] == pytest.approx(grades[:, -1].mean())
    assert cost[0] == pytest.approx(costs[:, -1].mean())
    at_zero = int(np.flatnonzero(LAMBDA_GRID == 0.0)[0])
    assert quality[at_zero] < grades[:, -1].mean()  # argmax P alone falls short
    # In between, the bonus for the top tier trades cost for quality step by step.
    assert len(np.unique(quality[:at_zero])) > 5


def test_betting_certifies_higher_targets_on_the_fixture_router_for_less(
    judged_scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """On real MMLU-Pro grades the router mostly agrees with the top tier: low-variance losses."""
    p, expected, grades, costs = judged_scores
    betting = fit_policy(p, expected, grades, costs, method="betting")
    hoeffding = fit_policy(p, expected, grades, costs, method="hoeffding-bentkus")
    assert betting.guarantee is not None and hoeffding.guarantee is not None
    assert set(hoeffding.guarantee.guaranteed_targets) <= set(betting.guarantee.guaranteed_targets)
    assert max(hoeffding.guarantee.guaranteed_targets, default=0.0) < 0.90
    assert max(betting.guarantee.guaranteed_targets) >= 0.95
    betting_cost = _calibration_cost(betting, judged_scores)
    hoeffding_cost = _calibration_cost(hoeffding, judged_scores)
    shared = hoeffding.guarantee.guaranteed_targets
    assert all(betting_cost[t] <= hoeffding_cost[t] for t in shared)
    assert sum(betting_cost[t] for t in shared) < sum(hoeffding_cost[t] for t in shared)


def test_unknown_method_is_refused(
    judged_scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    with pytest.raises(InvalidInputError):
        fit_policy(*judged_scores, method="bonferroni")


def test_trained_manifest_records_the_guarantee(logreg_router_dir: Path) -> None:
    raw = json.loads((logreg_router_dir / "manifest.json").read_text())["policy"]
    assert raw["guarantee"]["confidence"] == 0.9
    assert raw["guarantee"]["calibration_requests"] > 100
    assert raw["guarantee"]["method"] == GUARANTEE_METHODS["betting"]
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
    always_top = PolicyConfig(0.95, 1.0, ((0.95, policy.ALWAYS_TOP),))
    assert policy.guaranteed_for_target(always_top, 0.95)  # meets any target, untested


@pytest.mark.parametrize("method", METHODS)
def test_coverage_check_meets_the_confidence_where_the_point_estimate_does_not(
    method: str,
) -> None:
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
    report = guarantee_coverage(
        choices, grades, costs, confidence=1 - DELTA, resamples=100, method=method
    )
    assert report.method == GUARANTEE_METHODS[method]
    certified = [t for t in report.targets if t.certified > 0.5]
    assert certified, "3,000 requests should certify the lower targets"
    for t in certified:
        assert t.violations <= DELTA
        assert t.coverage >= 1 - DELTA
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
