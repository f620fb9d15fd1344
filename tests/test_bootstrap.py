"""Paired bootstrap of router vs baselines: intervals and how often the router wins."""

from __future__ import annotations

import numpy as np

from training.evaluation.bootstrap import paired_bootstrap


def _table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cheap tier solves even requests only; top tier solves all; cost 1 vs 10."""
    n = 400
    grades = np.ones((n, 2))
    grades[1::2, 0] = 0.0
    costs = np.tile([1.0, 10.0], (n, 1))
    oracle = np.where(grades[:, 0] == 1.0, 0, 1)
    return grades, costs, oracle


def test_an_informed_router_beats_the_hull_on_every_resample() -> None:
    grades, costs, oracle = _table()
    always_top = np.ones_like(oracle)
    choices = np.stack([always_top, oracle])  # two settings: safe, then informed
    report = paired_bootstrap(choices, grades, costs, {"blind": np.stack([always_top])})
    assert report.router_better["hull"] == {"cost_at_90": 1.0, "cost_at_95": 1.0, "apgr": 1.0}
    assert report.router_better["blind"]["cost_at_95"] == 1.0
    low, high = (
        report.intervals["router"]["cost_at_95"].low,
        report.intervals["router"]["cost_at_95"].high,
    )
    assert low is not None and high is not None and 0.4 < low <= high < 0.7


def test_always_top_never_beats_the_hull_and_resamples_are_reproducible() -> None:
    grades, costs, oracle = _table()
    always_top = np.stack([np.ones_like(oracle)])
    report = paired_bootstrap(always_top, grades, costs, resamples=50, seed=3)
    assert report.router_better["hull"]["cost_at_95"] == 0.0
    again = paired_bootstrap(always_top, grades, costs, resamples=50, seed=3)
    assert again.to_dict() == report.to_dict()
    assert report.to_dict()["resamples"] == 50
