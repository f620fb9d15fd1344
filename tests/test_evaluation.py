"""Routing-quality metrics on small tables whose answers are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_model.errors import InvalidInputError
from training.evaluation import (
    Curve,
    OperatingPoint,
    Reference,
    apgr,
    brier_score,
    calibration_report,
    code_score,
    compute_baselines,
    cost_at,
    cost_at_mixed,
    curve_points,
    expected_calibration_error,
    keyword_score,
    knn_success_probabilities,
    length_code_score,
    length_score,
    oracle_choices,
    plot_cost_quality,
    plot_reliability,
    quantile_choices,
    random_mixing,
    reliability_bins,
    roc_auc,
    score_curve,
    summarize_curve,
    tier_hull,
)
from training.evaluation.chains import fallback_chain_point
from training.evaluation.heuristics import cut_grid, percentile_ranks


def _two_tier_table() -> tuple[np.ndarray, np.ndarray]:
    """Cheap tier (cost 1) solves requests 0 and 1; top tier (cost 4) solves all."""
    grades = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    costs = np.array([[1.0, 4.0]] * 4)
    return grades, costs


def _three_tier_table() -> tuple[np.ndarray, np.ndarray]:
    """Tier means: A (cost 1, quality .5), B (2, .8), C (4, .9) over 10 requests."""
    grades = np.zeros((10, 3))
    grades[:5, 0] = 1.0
    grades[:8, 1] = 1.0
    grades[:9, 2] = 1.0
    costs = np.tile([1.0, 2.0, 4.0], (10, 1))
    return grades, costs


# --- curves -------------------------------------------------------------------------------


def test_curve_points_scores_each_setting() -> None:
    grades, costs = _two_tier_table()
    choices = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]])
    curve = curve_points(choices, grades, costs)
    np.testing.assert_allclose(curve.cost, [1.0, 2.5, 4.0, 2.5])
    np.testing.assert_allclose(curve.quality, [0.5, 1.0, 1.0, 0.5])


def test_curve_points_rejects_bad_choices() -> None:
    grades, costs = _two_tier_table()
    with pytest.raises(InvalidInputError):
        curve_points(np.array([[0, 1, 2, 0]]), grades, costs)
    with pytest.raises(InvalidInputError):
        curve_points(np.array([[0, 1, 0]]), grades, costs)


def test_cost_at_of_oracle_like_router() -> None:
    grades, costs = _two_tier_table()
    curve = curve_points(np.array([[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]]), grades, costs)
    # Quality 1.0 is first reached at mean cost 2.5 of a top cost of 4.
    for fraction in (0.90, 0.95, 1.00):
        assert cost_at(curve, fraction, 1.0, 4.0) == pytest.approx(0.625)
    # Quality 0.5 is reached by always-cheapest already.
    assert cost_at(curve, 0.5, 1.0, 4.0) == pytest.approx(0.25)


def test_cost_at_unreached_is_none_and_not_interpolated() -> None:
    curve = Curve(cost=np.array([1.0, 4.0]), quality=np.array([0.5, 0.8]))
    assert cost_at(curve, 1.0, 0.9, 4.0) is None
    # Mixing the two points would reach 0.65 at cost 2.5; a router's points do not.
    assert cost_at(curve, 0.65 / 0.8, 0.8, 4.0) == pytest.approx(1.0)
    assert cost_at_mixed(curve, 0.65 / 0.8, 0.8, 4.0) == pytest.approx(2.5 / 4.0)


def test_apgr_of_random_mixing_is_one_half() -> None:
    cheap, top = OperatingPoint(1.0, 0.5), OperatingPoint(4.0, 0.9)
    line = Curve(cost=np.linspace(1.0, 4.0, 7), quality=np.linspace(0.5, 0.9, 7))
    assert apgr(line, cheap, top) == pytest.approx(0.5)
    dominated = Curve(cost=np.array([2.5, 4.5]), quality=np.array([0.5, 0.9]))
    assert apgr(dominated, cheap, top) == pytest.approx(0.5)


def test_apgr_below_random_mixing() -> None:
    cheap, top = OperatingPoint(1.0, 0.5), OperatingPoint(4.0, 0.9)
    # Halfway in cost, a quarter of the gap: 0.5 * 0.25 / 2 + 0.5 * (0.25 + 1) / 2.
    sagging = Curve(cost=np.array([2.5]), quality=np.array([0.6]))
    assert apgr(sagging, cheap, top) == pytest.approx(0.375)


def test_apgr_by_hand() -> None:
    cheap, top = OperatingPoint(1.0, 0.5), OperatingPoint(5.0, 0.9)
    # Top quality at 1% of the cost span: triangle of 0.005 plus 0.99 of full area.
    near_oracle = Curve(cost=np.array([1.04]), quality=np.array([0.9]))
    assert apgr(near_oracle, cheap, top) == pytest.approx(0.995)
    # Top quality halfway: 0.25 + 0.5.
    halfway = Curve(cost=np.array([3.0]), quality=np.array([0.9]))
    assert apgr(halfway, cheap, top) == pytest.approx(0.75)
    # Twice the gap halfway: the line crosses top quality a quarter of the way, then clips.
    beyond = Curve(cost=np.array([3.0]), quality=np.array([1.3]))
    assert apgr(beyond, cheap, top) == pytest.approx(0.125 + 0.75)


def test_apgr_undefined_without_a_gap() -> None:
    curve = Curve(cost=np.array([2.0]), quality=np.array([0.9]))
    assert apgr(curve, OperatingPoint(1.0, 0.8), OperatingPoint(4.0, 0.7)) is None
    assert apgr(curve, OperatingPoint(1.0, 0.5), OperatingPoint(1.0, 0.7)) is None


def test_summary_is_json_without_nan() -> None:
    grades, costs = _two_tier_table()
    curve = curve_points(np.array([[0, 0, 0, 0], [0, 0, 1, 1]]), grades, costs)
    summary = summarize_curve(curve, Reference.from_table(grades, costs))
    data = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert data["cost_at_95"] == pytest.approx(0.625)
    assert data["apgr"] == pytest.approx(1.0 - 0.5 * 0.5)
    assert [p["cost_fraction"] for p in data["frontier"]] == pytest.approx([0.25, 0.625])


def test_curve_points_match_a_per_setting_loop() -> None:
    rng = np.random.default_rng(1)
    grades = (rng.random((300, 3)) < [0.4, 0.6, 0.8]).astype(float)
    costs = rng.random((300, 3)) * [1.0, 3.0, 10.0]
    choices = rng.integers(0, 3, size=(20, 300))
    curve = curve_points(choices, grades, costs)
    rows = np.arange(300)
    for k, picks in enumerate(choices):
        assert curve.quality[k] == pytest.approx(grades[rows, picks].mean())
        assert curve.cost[k] == pytest.approx(costs[rows, picks].mean())


# --- baselines ----------------------------------------------------------------------------


def test_hull_and_random_cost_at_on_three_tiers() -> None:
    grades, costs = _three_tier_table()
    hull = tier_hull(grades, costs)
    np.testing.assert_allclose(hull.cost, [1.0, 2.0, 4.0])
    # 95% of 0.9 = 0.855: 55% of the way from B (2, .8) to C (4, .9) -> cost 3.1.
    assert cost_at_mixed(hull, 0.95, 0.9, 4.0) == pytest.approx(3.1 / 4.0)
    assert cost_at_mixed(hull, 0.90, 0.9, 4.0) == pytest.approx(2.2 / 4.0)
    assert cost_at_mixed(hull, 1.00, 0.9, 4.0) == 1.0
    # The line from A (1, .5) to C (4, .9) reaches 0.855 at 1 + 3 * 0.355 / 0.4.
    line = random_mixing(grades, costs)
    assert cost_at_mixed(line, 0.95, 0.9, 4.0) == pytest.approx((1.0 + 3 * 0.355 / 0.4) / 4.0)


def test_hull_skips_a_tier_below_the_mixing_line() -> None:
    grades, costs = _three_tier_table()
    grades[:, 1] = 0.0
    grades[:6, 1] = 1.0
    costs[:, 1] = 3.0  # B at (3, .6) lies under the A-C line (3, .767)
    np.testing.assert_allclose(tier_hull(grades, costs).cost, [1.0, 4.0])


def test_random_mixing_collapses_when_top_is_worse() -> None:
    grades = np.array([[1.0, 0.0], [1.0, 1.0]])
    costs = np.array([[1.0, 2.0], [1.0, 2.0]])
    line = random_mixing(grades, costs)
    assert len(line) == 1 and line.cost[0] == 1.0


def test_oracle_picks_cheapest_success_else_best_grade() -> None:
    grades = np.array([[1.0, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0.3, 0.2], [1, 1, 0]])
    costs = np.tile([1.0, 2.0, 4.0], (5, 1))
    costs[4] = [3.0, 2.0, 4.0]  # this request's mid-tier call happened to be cheaper
    np.testing.assert_array_equal(oracle_choices(grades, costs, 0.5), [0, 1, 2, 1, 1])
    baselines = compute_baselines(grades[:4], costs[:4], 0.5, ["s", "m", "l"])
    assert baselines.oracle.cost == pytest.approx((1 + 2 + 4 + 2) / 4)
    assert baselines.oracle.quality == pytest.approx(3.3 / 4)
    assert baselines.oracle_tier_share == pytest.approx((0.25, 0.5, 0.25))


def test_baselines_report() -> None:
    grades, costs = _three_tier_table()
    report = compute_baselines(grades, costs, 0.5, ["a", "b", "c"]).to_dict()
    data = json.loads(json.dumps(report, allow_nan=False))
    assert data["baselines"]["random"]["apgr"] == pytest.approx(0.5)
    assert data["baselines"]["hull"]["cost_at_95"] == pytest.approx(0.775)
    assert data["baselines"]["always-a"]["cost_at_95"] is None
    assert data["baselines"]["always-c"]["cost_at_100"] == pytest.approx(1.0)
    assert data["baselines"]["oracle"]["cost_at_100"] == pytest.approx(1.6 / 4.0)


def test_fallback_chain_pays_every_attempt_and_keeps_the_top_answer() -> None:
    grades = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    costs = np.tile([1.0, 2.0, 10.0], (3, 1))
    perfect = fallback_chain_point(grades, costs, 0.5, 1.0)
    assert (perfect.cost, perfect.quality) == pytest.approx(((3 + 1 + 13) / 3, 2 / 3))
    # catching half the failures: request 0 escalates half the time, request 2 a quarter
    half = fallback_chain_point(grades, costs, 0.5, 0.5)
    assert half.cost == pytest.approx((2 + 1 + (1 + 1 + 2.5)) / 3)
    assert half.quality == pytest.approx((0.5 + 1 + 0) / 3)
    blind = fallback_chain_point(grades, costs, 0.5, 0.0)
    assert (blind.cost, blind.quality) == pytest.approx((1.0, 1 / 3))
    with pytest.raises(InvalidInputError, match="recall"):
        fallback_chain_point(grades, costs, 0.5, 1.5)


def test_fallback_chains_in_the_report_span_cheapest_to_oracle_quality() -> None:
    grades, costs = _three_tier_table()
    baselines = compute_baselines(grades, costs, 0.5, ["a", "b", "c"])
    points = dict(baselines.chains)
    assert sorted(points) == [0.25, 0.5, 0.75, 1.0]
    assert points[1.0].quality == pytest.approx(baselines.oracle.quality)
    assert points[1.0].cost > baselines.oracle.cost  # the failed attempts are paid for
    qualities = [points[r].quality for r in sorted(points)]
    assert qualities == sorted(qualities) and qualities[0] > baselines.always[0].quality
    summary = baselines.to_dict()["baselines"]["fallback-chain-catching-100%"]
    assert summary["cost_at_100"] == pytest.approx(points[1.0].cost / 4.0)


def test_knn_averages_nearest_neighbours_by_cosine() -> None:
    train = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    grades = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.0, 0.0]])
    test = np.array([[10.0, 1.0], [0.0, 0.2]])
    probs = knn_success_probabilities(train, grades, test, k=2)
    np.testing.assert_allclose(probs, [[0.75, 0.0], [0.0, 0.5]])
    with pytest.raises(InvalidInputError):
        knn_success_probabilities(train, grades, test, k=5)


# --- heuristics ---------------------------------------------------------------------------


def test_code_and_keyword_scores_rank_texts() -> None:
    code = "Fix this:\n```python\ndef f(x):\n    return {x: [x]}\n```"
    greeting = "Hello, how are you today?"
    assert code_score([code, greeting]).tolist()[0] > code_score([code, greeting]).tolist()[1]
    assert code_score([greeting])[0] < 1.0
    hard = "Prove the theorem that the integral of this polynomial is finite."
    lookup = "What is the capital of France?"
    scores = keyword_score([hard, lookup, greeting])
    assert scores.tolist() == [1.0, -1.0, 0.0]
    assert length_score(["ab", "abcd"]).tolist() == [2.0, 4.0]
    assert length_code_score([code, greeting])[0] > length_code_score([code, greeting])[1]


def test_percentile_ranks_share_ties() -> None:
    np.testing.assert_allclose(percentile_ranks([3.0, 1.0, 3.0, 2.0]), [2.5 / 3, 0, 2.5 / 3, 1 / 3])


def test_quantile_choices_sweep_from_top_to_cheapest() -> None:
    choices = quantile_choices(np.array([0.0, 1.0, 2.0, 3.0]), n_tiers=2, levels=5)
    np.testing.assert_array_equal(
        choices, [[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    )
    assert quantile_choices(np.zeros(4), n_tiers=3, levels=21).shape == (231, 4)


def test_cut_grid_for_many_tiers_is_one_dimensional_and_monotone() -> None:
    grid = cut_grid(5, levels=11)
    assert grid.shape == (21, 4)
    assert (np.diff(grid, axis=1) >= 0).all()
    assert (grid[0] == 0).all() and (grid[-1] == 1).all()


def test_score_curve_finds_a_perfect_signal() -> None:
    grades, costs = _two_tier_table()
    curve = score_curve(np.array([0.0, 1.0, 2.0, 3.0]), grades, costs, levels=5)
    assert cost_at(curve, 0.95, 1.0, 4.0) == pytest.approx(0.625)
    backwards = score_curve(np.array([3.0, 2.0, 1.0, 0.0]), grades, costs, levels=5)
    assert cost_at(backwards, 0.95, 1.0, 4.0) == pytest.approx(1.0)


# --- calibration --------------------------------------------------------------------------


def test_ece_zero_when_calibrated() -> None:
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    assert expected_calibration_error(p, rng.random(p.size) < p) < 0.01


def test_ece_and_brier_of_known_miscalibration() -> None:
    # Bin 9: predicts 0.9, 6 of 10 succeed; bin 1: predicts 0.15, 0 of 5 succeed.
    p = np.array([0.9] * 10 + [0.15] * 5)
    y = np.array([1] * 6 + [0] * 4 + [0] * 5)
    assert expected_calibration_error(p, y) == pytest.approx((10 * 0.3 + 5 * 0.15) / 15)
    assert brier_score(p, y) == pytest.approx((6 * 0.01 + 4 * 0.81 + 5 * 0.0225) / 15)


def test_reliability_bins_put_one_in_the_last_bin() -> None:
    rel = reliability_bins(np.array([0.0, 0.05, 0.19, 1.0, 0.95]), np.array([0, 0, 1, 1, 1]))
    assert rel.count.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert rel.mean_predicted[9] == pytest.approx(0.975)
    assert json.loads(json.dumps(rel.to_dict(), allow_nan=False))["observed_rate"][2] is None


def test_roc_auc_matches_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.4
    p = np.round(np.clip(0.4 + 0.3 * (y - 0.4) + 0.3 * rng.standard_normal(500), 0, 1), 1)
    assert roc_auc(p, y) == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-12)
    assert roc_auc([0.2, 0.2, 0.9], [0, 1, 1]) == pytest.approx(0.75)


def test_calibration_report_handles_one_class_tier() -> None:
    grades = np.array([[0.0, 1.0], [0.2, 1.0], [0.9, 0.6], [1.0, 0.7]])
    probs = np.array([[0.1, 0.9], [0.3, 0.8], [0.6, 0.7], [0.8, 0.9]])
    report = calibration_report(probs, grades, 0.5, ["small", "large"])
    small, large = report.tiers
    assert small.roc_auc == pytest.approx(1.0)
    assert large.roc_auc is None
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["tiers"][1]["roc_auc"] is None
    assert data["tiers"][0]["brier"] == pytest.approx((0.01 + 0.09 + 0.16 + 0.04) / 4)


# --- plots --------------------------------------------------------------------------------


def test_plots_write_png_files(tmp_path: Path) -> None:
    grades, costs = _three_tier_table()
    baselines = compute_baselines(grades, costs, 0.5, ["a", "b", "c"])
    router = curve_points(np.array([[0] * 10, [0] * 5 + [1] * 5, [2] * 10]), grades, costs)
    heuristic = score_curve(np.arange(10.0), grades, costs)
    png_magic = b"\x89PNG\r\n\x1a\n"
    out = plot_cost_quality(tmp_path / "cq.png", {"router": router}, baselines, {"len": heuristic})
    assert out.read_bytes()[:8] == png_magic and out.stat().st_size > 5_000
    probs = np.clip(grades * 0.8 + 0.1, 0, 1)
    report = calibration_report(probs, grades, 0.5, ["a", "b", "c"])
    out = plot_reliability(tmp_path / "sub" / "rel.png", report.reliability_by_tier())
    assert out.read_bytes()[:8] == png_magic and out.stat().st_size > 5_000


def test_calibration_report_judges_each_tier_on_its_graded_requests() -> None:
    probs = np.array([[0.9, 0.2], [0.1, 0.8], [0.9, 0.5], [0.1, 0.5]])
    grades = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, np.nan], [0.0, 0.0]])
    report = calibration_report(probs, grades, 0.5, ["small", "large"])
    small, large = report.tiers
    assert (small.n, large.n) == (4, 2)
    assert small.success_rate == 0.5 and large.success_rate == 0.5
    assert large.mean_predicted == pytest.approx(0.65)
    with pytest.raises(InvalidInputError, match="no graded request"):
        calibration_report(probs[:1], grades[:1], 0.5, ["small", "large"])


def test_ece_noise_floor_matches_calibrated_outcomes_and_shrinks_with_n() -> None:
    from training.evaluation.calibration import ece_noise_floor

    rng = np.random.default_rng(5)
    small = rng.uniform(size=1_000)
    large = rng.uniform(size=16_000)
    floor_small, floor_large = ece_noise_floor(small), ece_noise_floor(large)
    # Outcomes drawn from the predictions are calibrated: their ECE is noise alone.
    measured = np.mean(
        [expected_calibration_error(small, rng.uniform(size=small.size) < small) for _ in range(50)]
    )
    assert floor_small == pytest.approx(measured, rel=0.2)
    assert floor_large < floor_small / 2  # noise falls as 1/sqrt(n)
    assert ece_noise_floor(np.zeros(100)) == 0.0  # certain predictions carry no noise
