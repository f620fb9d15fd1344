"""Recalibrating each tier's predicted gap to the top tier before the cost-aware rule."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from router_model import policy
from router_model.errors import ArtifactError
from router_model.manifest import Manifest, PolicyConfig
from training.evaluation.transfer import mapped_gap_calibration
from training.policy_fit import MIN_GAP_ROWS, fit_gap_calibration

CONFIG = PolicyConfig(
    default_quality_target=0.95, reference_cost_usd=1.0, lambda_table=((0.95, 0.2),)
)


def test_without_a_gap_calibration_the_rule_weighs_the_probabilities() -> None:
    p = np.array([[0.5, 0.7, 0.9]])
    assert policy.decision_scores(p, CONFIG) is p


def test_each_cheaper_tier_is_scored_by_its_recalibrated_gap() -> None:
    p = np.array([[0.5, 0.7, 0.9], [0.9, 0.9, 0.9]])
    config = replace(CONFIG, gap_calibration=((0.1, 0.5), (0.0, 0.25)))
    scores = policy.decision_scores(p, config)
    # tier 0: 0.9 - (0.1 + 0.5 * 0.4); tier 1: 0.9 - 0.25 * 0.2; the top keeps its P.
    np.testing.assert_allclose(scores, [[0.6, 0.85, 0.9], [0.8, 0.9, 0.9]])
    np.testing.assert_array_equal(p, [[0.5, 0.7, 0.9], [0.9, 0.9, 0.9]])  # not modified


def test_the_gap_calibration_changes_the_cost_aware_decision_only() -> None:
    p = np.array([[0.85, 0.95]])
    cost = np.array([[0.1, 1.0]])
    raw, _ = policy.decide(p, cost, CONFIG)  # 0.85 - 0.02 > 0.95 - 0.2: the cheap tier
    assert raw.tolist() == [0]
    shrunk = replace(CONFIG, gap_calibration=((0.2, 1.0),))  # a real gap 0.2 wider
    chosen, rules = policy.decide(p, cost, shrunk)  # 0.75 - 0.02 < 0.75: the top tier
    assert chosen.tolist() == [1]
    assert rules == ["cost_aware"]
    by_threshold, _ = policy.decide(p, cost, shrunk, rule="threshold", quality_target=0.8)
    assert by_threshold.tolist() == [0]  # the threshold rule reads P(success) as reported


def test_the_fit_takes_back_the_spread_of_noisy_gaps() -> None:
    """Two noisy but calibrated probabilities: their gap spreads wider than the real one."""
    rng = np.random.default_rng(0)
    n = 20_000
    true = np.clip(rng.normal([0.6, 0.8], 0.1, size=(n, 2)), 0.01, 0.99)
    p = np.clip(true + rng.normal(0.0, 0.1, size=(n, 2)), 0.0, 1.0)
    successes = (rng.random((n, 2)) < true).astype(float)
    ((intercept, slope),) = fit_gap_calibration(p, successes)
    # the gap's signal variance is 0.02, its noise variance 0.02: half of it is real
    assert 0.4 < slope < 0.6
    assert intercept == pytest.approx(0.1, abs=0.03)


def test_too_few_rows_or_one_tier_leave_the_probabilities_as_they_are() -> None:
    p = np.full((MIN_GAP_ROWS - 1, 3), 0.5)
    assert fit_gap_calibration(p, p) == ()
    assert fit_gap_calibration(np.full((500, 1), 0.5), np.ones((500, 1))) == ()


def test_rows_without_labels_are_skipped_and_a_constant_gap_stays_as_it_is() -> None:
    rng = np.random.default_rng(1)
    p = np.column_stack([np.full(400, 0.5), rng.random(400)])
    successes = np.column_stack([rng.random(400) < 0.5, rng.random(400) < 0.7]).astype(float)
    successes[:10, 1] = np.nan
    p[:, 1] = 0.9  # every predicted gap the same: nothing to fit a slope on
    assert fit_gap_calibration(p, successes) == ((0.0, 1.0),)


def test_transfer_maps_the_gaps_of_the_tiers_it_stands_in_with() -> None:
    gaps = ((0.1, 0.5), (0.0, 0.7))
    assert mapped_gap_calibration(gaps, (0, 2)) == ((0.1, 0.5),)
    assert mapped_gap_calibration(gaps, (0, 1, 1, 2)) == ((0.1, 0.5), (0.0, 0.7), (0.0, 0.7))
    assert mapped_gap_calibration(((0.1, 0.5),), (0, 1, 1)) == ((0.1, 0.5), (0.0, 1.0))
    assert mapped_gap_calibration((), (0, 2)) == ()


def test_a_trained_router_records_one_gap_per_cheaper_tier(logreg_router_dir: Path) -> None:
    manifest = Manifest.from_dict(json.loads((logreg_router_dir / "manifest.json").read_text()))
    gaps = manifest.policy.gap_calibration
    assert len(gaps) == len(manifest.ladder) - 1
    assert all(slope >= 0.0 for _, slope in gaps)


def test_a_manifest_with_the_wrong_number_of_gaps_is_refused(logreg_router_dir: Path) -> None:
    data = json.loads((logreg_router_dir / "manifest.json").read_text())
    data["policy"]["gap_calibration"] = [[0.0, 1.0]]
    with pytest.raises(ArtifactError, match="gap_calibration has 1 pairs; 3 tiers need 2"):
        Manifest.from_dict(data)
    del data["policy"]["gap_calibration"]  # artifacts trained before it existed
    assert Manifest.from_dict(data).policy.gap_calibration == ()
