"""The kNN router baseline: routes by its neighbours' grades and costs."""

from __future__ import annotations

import numpy as np
import pytest

from router_model.errors import InvalidInputError
from training.evaluation.knn_router import KnnRouter, knn_router_curve
from training.policy_fit import LAMBDA_GRID


def _clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two topics: the cheap tier solves topic A and fails topic B; the top solves both."""
    rng = np.random.default_rng(0)
    a = rng.normal([5.0, 0.0], 0.1, size=(40, 2))
    b = rng.normal([0.0, 5.0], 0.1, size=(40, 2))
    embeddings = np.vstack([a, b])
    grades = np.vstack([np.tile([1.0, 1.0], (40, 1)), np.tile([0.0, 1.0], (40, 1))])
    costs = np.tile([1.0, 10.0], (80, 1))
    return embeddings, grades, costs


def test_knn_router_sends_each_topic_to_the_tier_its_neighbours_needed() -> None:
    embeddings, grades, costs = _clusters()
    curve = knn_router_curve(
        embeddings[::2],
        grades[::2],
        costs[::2],
        embeddings[1::2],
        grades[1::2],
        costs[1::2],
        LAMBDA_GRID,
    )
    # Some setting reaches full quality while paying the top price only for topic B.
    perfect = curve.quality == 1.0
    assert perfect.any()
    assert curve.cost[perfect].min() == pytest.approx(5.5)


def test_knn_router_ignores_requests_not_graded_on_every_tier() -> None:
    embeddings, grades, costs = _clusters()
    grades = grades.copy()
    grades[40:, 0] = np.nan  # topic B never tried on the cheap tier: it cannot vote
    knn = KnnRouter(
        lambda texts: embeddings[40 : 40 + len(texts)].astype(np.float32),
        embeddings[:60].astype(np.float32),
        grades[:60],
        costs[:60],
        k=5,
    )
    weighing_cost = LAMBDA_GRID[LAMBDA_GRID >= 0.0]  # below zero the top tier is favoured
    curve = knn.curve(["x"] * 20, np.ones((20, 2)), np.tile([1.0, 10.0], (20, 1)), weighing_cost)
    assert curve.cost.max() == pytest.approx(
        1.0
    )  # topic B's only voters are topic A's cheap successes


def test_knn_router_needs_a_fully_graded_training_request() -> None:
    embeddings, grades, costs = _clusters()
    grades = grades.copy()
    grades[:, 0] = np.nan
    with pytest.raises(InvalidInputError, match="graded on every tier"):
        knn_router_curve(
            embeddings, grades, costs, embeddings, np.ones((80, 2)), costs, LAMBDA_GRID
        )
