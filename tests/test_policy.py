"""The decision policy on hand-made probabilities and costs."""

from __future__ import annotations

import numpy as np
import pytest

from router_model import policy
from router_model.errors import InvalidInputError
from router_model.manifest import PolicyConfig

CONFIG = PolicyConfig(
    default_quality_target=0.95,
    reference_cost_usd=1.0,
    lambda_table=((0.9, 0.5), (0.95, 0.1), (1.0, 0.0)),
)
P = np.array([[0.80, 0.85, 0.90], [0.10, 0.60, 0.95], [0.2, 0.3, 0.4]])
COST = np.array([[0.1, 0.5, 1.0], [0.1, 0.5, 1.0], [0.1, 0.5, 1.0]])


def test_lambda_lookup_is_conservative() -> None:
    assert policy.lambda_for_target(CONFIG, 0.90) == 0.5
    assert policy.lambda_for_target(CONFIG, 0.93) == 0.1  # next higher target
    assert policy.lambda_for_target(CONFIG, 0.999) == 0.0
    assert policy.lambda_for_target(CONFIG, 0.5) == 0.5


def test_cost_aware_trades_probability_for_cost() -> None:
    chosen, rules = policy.decide(P, COST, CONFIG, quality_target=0.9)  # λ = 0.5
    # row 0: 0.80-0.05 > 0.85-0.25 > 0.90-0.5 -> small; row 1: 0.95-0.5 > 0.60-0.25 -> large
    assert chosen.tolist() == [0, 2, 0]
    assert rules == ["cost_aware"] * 3
    best, _ = policy.decide(P, COST, CONFIG, quality_target=1.0)  # λ = 0: most likely
    assert best.tolist() == [2, 2, 2]


def test_below_zero_lambda_favours_the_top_tier_until_it_takes_everything() -> None:
    lambdas = [0.0, -0.08, policy.ALWAYS_TOP]
    # The top tier trails by 0.05 on row 2 and by 0.20 on row 1 (cost plays no part).
    p = np.array([[0.2, 0.3, 0.9], [0.9, 0.5, 0.7], [0.3, 0.85, 0.8]])
    choices = policy.cost_aware_choices(p, COST, lambdas)
    assert choices.tolist() == [[2, 0, 1], [2, 0, 2], [2, 2, 2]]


def test_always_top_keeps_to_the_cost_ceiling() -> None:
    config = PolicyConfig(0.95, 1.0, ((0.95, policy.ALWAYS_TOP),))
    chosen, rules = policy.decide(P, COST, config)
    assert chosen.tolist() == [2, 2, 2] and rules == ["cost_aware"] * 3
    capped, rules = policy.decide(P, COST, config, max_cost_usd=0.6)
    assert capped.tolist() == [1, 1, 1] and rules == ["cost_ceiling"] * 3


def test_threshold_rule_and_its_fallback() -> None:
    chosen, rules = policy.decide(P, COST, CONFIG, rule="threshold", quality_target=0.85)
    assert chosen.tolist() == [1, 2, 2]
    assert rules == ["threshold", "threshold", "threshold_fallback"]


def test_cost_ceiling_removes_tiers_and_says_so() -> None:
    chosen, rules = policy.decide(P, COST, CONFIG, quality_target=1.0, max_cost_usd=0.6)
    assert chosen.tolist() == [1, 1, 1]
    assert rules == ["cost_ceiling"] * 3
    cheapest, rules = policy.decide(P, COST, CONFIG, max_cost_usd=0.01)
    assert cheapest.tolist() == [0, 0, 0] and rules == ["over_ceiling"] * 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quality_target": float("nan")}, "quality_target"),
        ({"quality_target": 1.5}, "quality_target"),
        ({"quality_target": 0.0}, "quality_target"),
        ({"max_cost_usd": -1.0}, "max_cost_usd"),
        ({"max_cost_usd": float("inf")}, "max_cost_usd"),
        ({"rule": "cheapest"}, "rule"),
    ],
)
def test_bad_controls_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        policy.decide(P, COST, CONFIG, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
