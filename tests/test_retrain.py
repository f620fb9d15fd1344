"""The weekly retrain against a real SQLite call log filled with real graded calls.

The fixture's MMLU-Pro calls (every request answered and graded by all three
tiers) are spread over four weeks; the newest week is the evaluation week.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from router_model.calls import GradedCall, read_calls
from serving.calllog import open_store
from serving.registry import Registry
from tierwise.cli import main
from training.retrain import RetrainConfig, retrain, split_window

NOW = datetime(2025, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=28)


def _spread(mmlu_calls: Path) -> list[GradedCall]:
    """Real calls re-timestamped evenly over the four weeks before NOW (one time per request)."""
    calls = read_calls(mmlu_calls)
    order = list(dict.fromkeys(c.request_id for c in calls))
    step = SPAN / len(order)
    when = {rid: NOW - SPAN + step * (i + 0.5) for i, rid in enumerate(order)}
    return [replace(c, timestamp=when[c.request_id], origin=None) for c in calls]


def _store(path: Path, calls: list[GradedCall]) -> str:
    url = "sqlite:///" + str(path)
    store = open_store(url)
    store.append(calls)
    store.close()
    return url


def _broken_grader(calls: list[GradedCall]) -> list[GradedCall]:
    """A grader that flipped its verdicts for the first three weeks; the newest week is intact."""
    eval_since = NOW - timedelta(days=7)
    return [
        replace(c, grade=1.0 - c.grade) if c.grade is not None and c.timestamp < eval_since else c
        for c in calls
    ]


def test_retrain_promotes_first_then_rejects_a_worse_challenger(
    mmlu_calls: Path, mmlu_tiers: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _spread(mmlu_calls)
    registry = Registry(tmp_path / "registry")

    first = retrain(
        RetrainConfig(
            store_url=_store(tmp_path / "good.db", calls),
            registry=registry.path,
            tiers=mmlu_tiers,
            now=NOW,
            report_dir=tmp_path / "report1",
        )
    )
    assert first.promoted and first.current is None
    assert first.challenger.basis == "cost_at_95" and first.challenger.n >= 80
    assert registry.current() == first.challenger.version
    assert (tmp_path / "report1" / "challenger" / "cost_quality.png").is_file()
    assert not (tmp_path / "report1" / "current").exists()

    argv = [
        "retrain",
        "--store",
        _store(tmp_path / "flipped.db", _broken_grader(calls)),
        "--registry",
        str(registry.path),
        "--tiers",
        str(mmlu_tiers),
        "--now",
        NOW.isoformat(),
        "--report",
        str(tmp_path / "report2"),
        "--no-progress",
        "--fail-on-reject",
    ]
    capsys.readouterr()
    assert main(argv) == 4
    printed = json.loads(capsys.readouterr().out)
    assert printed["decision"] == "reject"
    assert any(r.endswith("worse") for r in printed["reasons"])
    assert registry.current() == first.challenger.version  # unchanged

    report = json.loads((tmp_path / "report2" / "metrics.json").read_text())
    assert report["decision"] == "reject"
    assert report["current"]["version"] == first.challenger.version
    # both routers judged on the same untouched newest week
    assert report["current"]["n"] == report["challenger"]["n"] == first.challenger.n
    assert report["current"]["cost_at_95"] == first.challenger.cost_at_95
    for name in ("challenger", "current"):
        assert (tmp_path / "report2" / name / "cost_quality.png").is_file()
        assert (tmp_path / "report2" / name / "metrics.json").is_file()
    history = registry.history()
    assert [e.action for e in history] == ["promote", "reject"]
    assert history[1].version == printed["challenger"] != first.challenger.version
    assert len(registry.versions()) == 2  # the rejected challenger stays available


def test_split_keeps_each_request_on_one_side(mmlu_calls: Path) -> None:
    calls = _spread(mmlu_calls)
    late = replace(calls[0], timestamp=NOW - timedelta(hours=1), model="escalated")
    train, held = split_window([*calls, late], NOW - timedelta(days=7))
    assert late in train
    assert not {c.request_id for c in train} & {c.request_id for c in held}
    assert 80 <= len({c.request_id for c in held}) <= 100


def test_unreachable_store_and_bad_window_exit_2(
    mmlu_tiers: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["retrain", "--registry", str(tmp_path / "reg"), "--tiers", str(mmlu_tiers)]
    missing = "sqlite:///" + str(tmp_path / "nope.db")
    assert main([*base, "--store", missing]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, "--store", missing, "--eval-days", "30"]) == 2
    assert "eval_days" in capsys.readouterr().err
    assert main([*base, "--store", missing, "--now", "2025-06-01"]) == 2
    assert "UTC offset" in capsys.readouterr().err


def test_decision_falls_back_to_losses_without_fully_graded_requests(tmp_path: Path) -> None:
    from training.retrain import Score, decide

    config = RetrainConfig("sqlite:///x.db", tmp_path, tmp_path, tolerance=0.01)
    current = Score("old", "graded_calls", brier=0.20, log_loss=0.60, n=50)
    better = Score("new", "graded_calls", brier=0.205, log_loss=0.58, n=50)
    worse = Score("new", "graded_calls", brier=0.25, log_loss=0.58, n=50)
    assert decide(better, current, config)[0]
    promoted, reasons = decide(worse, current, config)
    assert not promoted and reasons[0].startswith("Brier") and reasons[0].endswith("worse")
    assert decide(better, None, config)[0]
