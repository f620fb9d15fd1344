"""Joining calls into a request table, the errors that protect it, and splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_model.calls import read_calls
from router_model.errors import ConfigError, DataFileError
from router_model.tiers import Tier, TierLadder
from training.dataset import RequestTable, build_table, tiers_better_than_top
from training.split import split_requests

LADDER = TierLadder.from_dict(
    {
        "pass_grade": 0.5,
        "tiers": [
            {
                "name": "small",
                "model": "s-1",
                "input_usd_per_mtok": 1,
                "output_usd_per_mtok": 2,
                "models": ["s-0"],
            },
            {"name": "large", "model": "l-1", "input_usd_per_mtok": 10, "output_usd_per_mtok": 20},
        ],
    }
)


def _call(request_id: str, model: str, grade: float | None, **extra: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "timestamp": "2025-01-01T00:00:00Z",
        "prompt": f"prompt {request_id}",
        "model": model,
        "grade": grade,
        **extra,
    }


def _file(tmp_path: Path, calls: list[dict[str, object]]) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calls))
    return path


def test_calls_join_by_request_and_model_aliases_map_to_tiers(tmp_path: Path) -> None:
    calls = [
        _call("a", "s-0", 1.0, input_tokens=100, output_tokens=50),
        _call("a", "l-1", 0.0, input_tokens=100, output_tokens=10),
        _call("b", "s-1", 0.0, input_tokens=100),
        _call("b", "l-1", None, cost_usd=0.5),
    ]
    table = build_table(read_calls(_file(tmp_path, calls)), LADDER)
    assert table.request_ids == ("a", "b")
    np.testing.assert_array_equal(table.grades, [[1.0, 0.0], [0.0, np.nan]])
    # a: priced from tokens; b/small: no output tokens -> the tier's median output (50)
    np.testing.assert_allclose(
        table.costs[0], [(100 * 1 + 50 * 2) / 1e6, (100 * 10 + 10 * 20) / 1e6]
    )
    np.testing.assert_allclose(table.costs[1], [(100 * 1 + 50 * 2) / 1e6, 0.5])
    assert table.fully_graded().tolist() == [True, False]


def test_a_recorded_cost_without_usage_implies_the_output_length(tmp_path: Path) -> None:
    calls = [
        _call("a", "s-1", 1.0, input_tokens=100, cost_usd=(100 * 1 + 300 * 2) / 1e6),
        _call("a", "l-1", 1.0, input_tokens=100, output_tokens=7, cost_usd=1.0),
        _call("b", "s-1", 0.0, input_tokens=100, cost_usd=50 / 1e6),  # below the input price
        _call("b", "l-1", 0.0, input_tokens=100),
    ]
    table = build_table(read_calls(_file(tmp_path, calls)), LADDER)
    # recorded tokens win over the cost; a cost below the input's price implies no output
    np.testing.assert_allclose(table.output_tokens, [[300.0, 7.0], [0.0, np.nan]])
    np.testing.assert_allclose(table.costs[:, 0], [700 / 1e6, 50 / 1e6])


def test_implied_output_length_reproduces_the_cost_and_needs_an_output_price() -> None:
    large = LADDER.tiers[1]
    assert large.output_tokens_for(large.cost_usd(100, 5), 100) == pytest.approx(5)
    assert Tier("free-output", "f", 1.0, 0.0).output_tokens_for(1.0, 100) is None


def test_a_cheaper_tier_that_clearly_beats_the_top_tier_is_named(tmp_path: Path) -> None:
    def table(small_grades: list[float], large_grades: list[float]) -> RequestTable:
        calls = [
            _call(f"r{i}", model, grade)
            for i, pair in enumerate(zip(small_grades, large_grades, strict=True))
            for model, grade in zip(("s-1", "l-1"), pair, strict=True)
        ]
        return build_table(read_calls(_file(tmp_path, calls)), LADDER)

    warning = tiers_better_than_top(table([1.0] * 8 + [0.0] * 2, [0.0] * 8 + [1.0] * 2), LADDER)
    assert warning is not None
    assert warning.startswith("cheaper tiers grade higher than the top tier 'large': 'small'")
    assert "by 0.600 over 10 requests" in warning
    # a lead within noise, and the usual ladder, say nothing
    assert tiers_better_than_top(table([1, 0, 1, 0, 1, 1], [0, 1, 1, 0, 1, 0]), LADDER) is None
    assert tiers_better_than_top(table([0, 0, 1, 0], [1, 1, 1, 0]), LADDER) is None


def test_repeated_calls_keep_their_mean_grade_and_the_share_that_passed(tmp_path: Path) -> None:
    calls = [_call("a", "s-1", 0.9), _call("a", "s-0", 0.2), _call("a", "s-1", 0.4)]
    calls += [_call("a", "l-1", 0.5), _call("b", "s-1", 0.3), _call("b", "l-1", None)]
    table = build_table(read_calls(_file(tmp_path, calls)), LADDER)
    np.testing.assert_allclose(table.grades, [[0.5, 0.5], [0.3, np.nan]])
    np.testing.assert_allclose(table.successes, [[1 / 3, 1.0], [0.0, np.nan]])


def test_unknown_tier_names_file_and_line(tmp_path: Path) -> None:
    path = _file(tmp_path, [_call("a", "s-1", 1.0), _call("a", "x", 1.0, tier="medium")])
    with pytest.raises(DataFileError, match=r"calls\.jsonl:2: tier 'medium' is not in the tiers"):
        build_table(read_calls(path), LADDER)


def test_unmapped_model_names_file_and_line(tmp_path: Path) -> None:
    path = _file(tmp_path, [_call("a", "s-1", 1.0), _call("a", "gpt-x", 1.0)])
    with pytest.raises(DataFileError, match=r":2: model 'gpt-x' maps to no tier"):
        build_table(read_calls(path), LADDER)


def test_tier_without_graded_calls_is_an_error(tmp_path: Path) -> None:
    path = _file(tmp_path, [_call("a", "s-1", 1.0), _call("a", "l-1", None)])
    with pytest.raises(ConfigError, match=r"\['large'\] have no graded calls") as raised:
        build_table(read_calls(path), LADDER)
    assert "evaluate --tiers" in str(raised.value)  # how to judge a router on another ladder


def test_conflicting_prompt_for_one_request(tmp_path: Path) -> None:
    path = _file(tmp_path, [_call("a", "s-1", 1.0), {**_call("a", "l-1", 1.0), "prompt": "other"}])
    with pytest.raises(DataFileError, match=r":2: request_id 'a' has a different prompt"):
        build_table(read_calls(path), LADDER)


def test_hash_split_is_stable_and_disjoint() -> None:
    ids = [f"r{i}" for i in range(1000)]
    same_time = np.zeros(len(ids))
    kept, held = split_requests(ids, same_time, 0.2)
    assert set(kept).isdisjoint(held) and len(kept) + len(held) == 1000
    assert 150 < len(held) < 250
    again_kept, _ = split_requests(list(reversed(ids)), same_time, 0.2)
    assert {ids[i] for i in kept} == {list(reversed(ids))[i] for i in again_kept}


def test_time_split_holds_out_the_newest() -> None:
    ids = [f"r{i}" for i in range(10)]
    times = np.array([5, 1, 9, 3, 7, 2, 8, 0, 6, 4], dtype=float)
    kept, held = split_requests(ids, times, 0.3)
    assert sorted(times[held]) == [7, 8, 9]
    assert times[kept].max() < times[held].min()


def test_a_few_run_timestamps_do_not_make_a_time_split() -> None:
    """Several evaluation runs, one timestamp each: hold out a sample of every run."""
    ids = [f"r{i}" for i in range(1000)]
    times = np.repeat([1.0, 2.0, 3.0, 4.0], 250)
    _, held = split_requests(ids, times, 0.2)
    assert set(times[held]) == {1.0, 2.0, 3.0, 4.0}


def test_shadow_decisions_are_not_training_data(tmp_path: Path) -> None:
    from router_model.router import Decision
    from serving.shadow.records import shadow_record

    decision = Decision(
        request_id="a",
        tier="large",
        model="l-1",
        rule="cost_aware",
        p_success={"small": 0.4, "large": 0.8},
        expected_cost_usd={"small": 0.001, "large": 0.01},
        router_version="v2",
    )
    answered = read_calls(_file(tmp_path, [_call("a", "s-1", 1.0), _call("a", "l-1", 0.0)]))
    shadow = shadow_record(decision, request_id="a", router="challenger")
    table = build_table([*answered, shadow], LADDER)
    assert table.request_ids == ("a",)
    np.testing.assert_array_equal(table.grades, [[1.0, 0.0]])


def test_salted_splits_are_independent() -> None:
    """Re-splitting a split's train side with the same seed must still hold some out."""
    ids = [f"r{i}" for i in range(1000)]
    same_time = np.zeros(len(ids))
    kept, _ = split_requests(ids, same_time, 0.2, seed=0, salt="split")
    train_ids = [ids[i] for i in kept]
    _, held_again = split_requests(train_ids, np.zeros(len(train_ids)), 0.2, seed=0)
    assert 0.15 * len(train_ids) < len(held_again) < 0.25 * len(train_ids)
    unsalted_train = [ids[i] for i in split_requests(ids, same_time, 0.2)[0]]
    _, unsalted_held = split_requests(unsalted_train, np.zeros(len(unsalted_train)), 0.2)
    assert len(unsalted_held) == 0  # the same hash re-derives the split it came from
