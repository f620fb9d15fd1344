"""``tierwise shadow-report`` on a real call log: graded MMLU-Pro calls plus shadow decisions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from router_model.calls import GradedCall, read_calls
from router_model.features import estimate_tokens
from router_model.router import DecisionRequest, Router
from serving.calllog import open_store
from serving.shadow.records import CHALLENGER, CURRENT, InputStats, is_shadow, shadow_record
from serving.shadow.report import load_window
from tierwise.cli import main
from training.shadow_report import ReportOptions, build_report

N_REQUESTS = 120  # half in the reference window, half in the report window
OUTPUT_TOKENS = 200


@pytest.fixture(scope="module")
def shadow_store(
    tmp_path_factory: pytest.TempPathFactory,
    mmlu_calls: Path,
    logreg_router_dir: Path,
    gbt_router_dir: Path,
) -> Iterator[str]:
    """A SQLite log: graded calls re-timed into two windows, and both routers' decisions."""
    current, challenger = Router.load(logreg_router_dir), Router.load(gbt_router_dir)
    tiers = {t.model: t for t in current.ladder.tiers}
    calls: dict[str, list[GradedCall]] = {}
    for call in read_calls(mmlu_calls):
        if call.model in tiers and (call.request_id in calls or len(calls) < N_REQUESTS):
            calls.setdefault(call.request_id, []).append(call)
    now = datetime.now(UTC)
    records: list[GradedCall] = []
    ids = sorted(calls)
    requests = [DecisionRequest(calls[r][0].request_text(), request_id=r) for r in ids]
    decided = zip(current.decide(requests), challenger.decide(requests), strict=True)
    for i, (rid, (mine, theirs)) in enumerate(zip(ids, decided, strict=True)):
        at = now - timedelta(days=10 if i % 2 else 2, seconds=i)
        for call in calls[rid]:
            tier = tiers[call.model]
            tokens = estimate_tokens(call.request_text().text)
            cost = tier.cost_usd(tokens, OUTPUT_TOKENS)
            records.append(dataclasses.replace(call, timestamp=at, tier=tier.name, cost_usd=cost))
        stats = InputStats.of(requests[i].text)
        for role, decision in ((CURRENT, mine), (CHALLENGER, theirs)):
            records.append(
                shadow_record(decision, request_id=rid, router=role, stats=stats, timestamp=at)
            )
    url = f"sqlite:///{tmp_path_factory.mktemp('shadow-log') / 'calls.db'}"
    store = open_store(url)
    store.append(records)
    store.close()
    yield url


def _check_stat(stat: dict[str, Any], n: int | None = None) -> None:
    assert stat["n"] > 0 if n is None else stat["n"] == n
    low, high = stat["ci95"]
    assert low <= stat["mean"] <= high


def test_report_joins_decisions_with_outcomes(shadow_store: str) -> None:
    store = open_store(shadow_store, create=False)
    now = datetime.now(UTC)
    try:
        window = load_window(store, now - timedelta(days=7), now)
        reference = load_window(store, now - timedelta(days=14), now - timedelta(days=7))
    finally:
        store.close()
    half = N_REQUESTS // 2
    assert len(window.shadowed()) == half and len(reference.shadowed()) == half
    options = ReportOptions(seed=3, bootstraps=200)
    report = build_report(window, reference, options)
    assert report == build_report(window, reference, options)  # seeded: reproducible
    pairs = [(r.decisions[CURRENT].tier, r.decisions[CHALLENGER].tier) for r in window.shadowed()]
    agreement = report["agreement"]["current_vs_challenger"]
    assert agreement["mean"] == pytest.approx(sum(a == b for a, b in pairs) / half)
    _check_stat(agreement, half)
    for label in (CURRENT, CHALLENGER):
        # every tier of every request was answered and graded, so all are joined
        _check_stat(report["spend"][label]["expected_cost_usd"], half)
        _check_stat(report["spend"][label]["real_cost_usd"], half)
        _check_stat(report["quality"][label]["grade"], half)
        _check_stat(report["quality"][label]["p_success"], half)
        assert sum(report["tier_mix"][label].values()) == pytest.approx(1.0)
        calibration = report["drift"]["calibration"]["routers"][label]
        assert set(calibration) == {"small", "medium", "large"}
        assert all(t["n"] == half for t in calibration.values())


def test_shadow_report_command_writes_json_and_plots(
    shadow_store: str, logreg_router_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = ["shadow-report", "--store", shadow_store, "--since", "7d", "--report", str(out)]
    argv += ["--model", str(logreg_router_dir), "--bootstraps", "200"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == N_REQUESTS // 2
    report = json.loads((out / "report.json").read_text())
    assert set(report["agreement"]) == {
        "current_vs_challenger",
        "current_vs_called",
        "challenger_vs_called",
    }
    drift = report["drift"]
    assert drift["length_chars"]["reference_n"] == drift["length_chars"]["window_n"] == 60
    assert drift["length_chars"]["shift"] == pytest.approx(
        drift["length_chars"]["window"] - drift["length_chars"]["reference"]
    )
    assert 0.0 <= drift["code_share"]["window"] <= 1.0
    assert drift["tier_mix"][CURRENT]["total_variation"] is not None
    embedding = drift["embedding"]
    assert embedding["reference_n"] == embedding["window_n"] == 60
    assert embedding["centroid_distance"] > 0.0
    assert drift["calibration"]["threshold"] == 0.1
    for flag in drift["calibration"]["flagged"]:
        assert flag["n"] > 0
    for name in ("spend.png", "quality.png", "tier_mix.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shadow_records_are_not_answered_calls(shadow_store: str) -> None:
    store = open_store(shadow_store, create=False)
    try:
        calls = list(store.iter_calls())
    finally:
        store.close()
    shadows = [c for c in calls if is_shadow(c)]
    assert len(shadows) == 2 * N_REQUESTS
    assert all(
        c.grade is None and c.request_id.endswith(("current", "challenger")) for c in shadows
    )
    assert not any(is_shadow(c) for c in calls if c.grade is not None)
