"""Labels from a router's own traffic: escalations, exploration and inverse-propensity weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fake_anthropic import FakeAnthropic, FixedDecider, fake_ladder, user

from router_model.calls import GradedCall, parse_call
from router_model.tiers import TierLadder
from serving.anthropic_client import (
    EXPLORE,
    Escalation,
    Exploration,
    MemorySink,
    RegexValidator,
    RoutedAnthropic,
)
from training.classifier import TierSuccessClassifier
from training.dataset import build_table, propensity_weight

LADDER = fake_ladder()


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(answer=lambda model, body: f"answer from {model}").start()
    yield server
    server.stop()


def _roundtrip(calls: list[GradedCall]) -> list[GradedCall]:
    """As training reads them: through the JSON of the call log."""
    return [parse_call(c.to_json()) for c in calls]


def test_an_escalation_labels_both_tiers(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    client = RoutedAnthropic(
        FixedDecider(LADDER, "small"),
        fake.client(),
        log=sink,
        escalation=Escalation(validators=(RegexValidator(r"fake-medium", name="mentions"),)),
    )
    client.messages.create(max_tokens=16, messages=user("Which model are you?"))
    two_rungs = TierLadder(tiers=LADDER.tiers[:2])  # the top tier was never called
    table = build_table(_roundtrip(sink.calls), two_rungs)
    assert len(table) == 1
    np.testing.assert_array_equal(table.grades[0], [0.0, 1.0])


def test_exploration_sends_a_share_elsewhere_and_logs_propensities(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    client = RoutedAnthropic(
        FixedDecider(LADDER, "small"),
        fake.client(),
        log=sink,
        exploration=Exploration(0.3, seed=7),
    )
    for i in range(60):
        client.messages.create(max_tokens=4, messages=user(f"question {i}"))
    client.messages.create(max_tokens=4, messages=user("urgent"), critical=True)
    decisions = [c.extra["decision"] for c in sink.calls]
    explored = [d for d in decisions[:-1] if d["rule"] == EXPLORE]
    assert 5 <= len(explored) <= 35  # ~30% of 60, seeded
    for d in decisions[:-1]:
        expected = (0.7 if d["tier"] == "small" else 0.0) + 0.3 / 3
        assert d["propensity"] == pytest.approx(expected)
    assert decisions[-1]["propensity"] == 1.0 and decisions[-1]["tier"] == "small"
    assert {c.tier for c in sink.calls} == {"small", "medium", "large"}


def test_inverse_propensity_weights_reach_the_classifier() -> None:
    call = parse_call(
        {
            "request_id": "r",
            "timestamp": "2025-01-01T00:00:00Z",
            "prompt": "p",
            "model": "fake-large",
            "grade": 1.0,
            "decision": {"tier": "large", "propensity": 0.1},
        }
    )
    assert propensity_weight(call) == pytest.approx(10.0)
    assert propensity_weight(parse_call({**call.to_json(), "decision": {}})) == 1.0


def test_weighting_a_row_equals_repeating_it() -> None:
    """Sample weights enter the fit: weight 3 on a row is the same as three copies."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(np.float64).reshape(-1, 1)
    weights = np.ones((80, 1))
    weights[:10] = 3.0
    repeated_X = np.vstack([X, X[:10], X[:10]])
    repeated_y = np.vstack([y, y[:10], y[:10]])

    def margins(fit_X: np.ndarray, fit_y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        model = TierSuccessClassifier(calibration="sigmoid", progress=False)
        model.mean_, model.scale_ = X.astype(np.float64).mean(0), X.astype(np.float64).std(0)
        base = model._fit_logreg(fit_X, fit_y[:, 0].astype(np.int64), w)
        return np.asarray(X.astype(np.float64) @ base.weights + base.bias)

    weighted = margins(X, y, weights[:, 0])
    np.testing.assert_allclose(weighted, margins(repeated_X, repeated_y, None), atol=1e-4)
    assert not np.allclose(weighted, margins(X, y, None), atol=1e-3)
