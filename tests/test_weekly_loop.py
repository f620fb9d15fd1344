"""The weekly loop end to end: routed traffic -> call log -> retrain -> promotion -> serving.

Four simulated weeks of real MMLU-Pro questions flow through the routed client,
which asks a real tierwise server (following a registry's ``current``) for the
tier and calls a local Messages API whose answers are right or wrong exactly as
the data set's real grades say. A validator grades each answer, a wrong answer
escalates to the next tier up, and a share of traffic is explored, so the log
fills with labels. ``tierwise retrain`` then trains a challenger on the first
three weeks and compares it with the current router on the fourth: a
challenger trained on logs whose grades were corrupted is rejected (and, run
in shadow beside the current router, shows up in ``tierwise shadow-report``),
one trained on sound logs is promoted, and the server switches to the
promoted router under traffic without a failed call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, N_QUESTIONS
from fake_anthropic import FakeAnthropic
from grpc_support import ServerThread, server_config, wait_until

from router_model.calls import GradedCall, read_calls, write_calls
from serving.anthropic_client import (
    Escalation,
    Exploration,
    RegexValidator,
    RoutedAnthropic,
)
from serving.anthropic_client.grpc_decider import GrpcDecider
from serving.calllog import CallLogWriter, open_store
from serving.client import TierwiseClient
from serving.registry import Registry
from tierwise.cli import main

NOW = datetime(2025, 6, 1, tzinfo=UTC)
WEEKS = 4
BOOTSTRAP_QUESTIONS = 60


class WeekSink:
    """Stamps each logged call with its simulated week, then hands it to the real writer."""

    def __init__(self, writer: CallLogWriter) -> None:
        self.writer = writer
        self.when = NOW

    def submit(self, call: GradedCall) -> bool:
        return self.writer.submit(replace(call, timestamp=self.when))


def _real_grades(calls: list[GradedCall]) -> dict[tuple[str, str], float]:
    return {(c.request_text().text, c.model): c.grade for c in calls if c.grade is not None}


def _bootstrap_calls(tmp_path: Path) -> Path:
    """A weak first router: trained on a few MMLU-Pro questions the traffic never asks."""
    from training.importers import import_calls

    calls, seen = [], set()
    for call in import_calls("mmlu-pro-wide", DATA / "mmlu_pro" / "graded_wide.csv.gz"):
        seen.add(call.request_id)
        if len(seen) > N_QUESTIONS + BOOTSTRAP_QUESTIONS:
            break
        if len(seen) > N_QUESTIONS:
            calls.append(call)
    path = tmp_path / "bootstrap.jsonl"
    write_calls(path, calls)
    return path


@pytest.fixture
def fake(mmlu_calls: Path) -> Iterator[FakeAnthropic]:
    grades = _real_grades(read_calls(mmlu_calls))

    def answer(model: str, body: dict[str, Any]) -> str:
        question = body["messages"][-1]["content"]
        return "CORRECT" if grades.get((question, model), 0.0) >= 0.5 else "WRONG"

    server = FakeAnthropic(answer=answer).start()
    yield server
    server.stop()


def _run_traffic(target: str, fake: FakeAnthropic, questions: list[str], sink: WeekSink) -> None:
    with TierwiseClient(target, timeout=30) as tierwise:
        client = RoutedAnthropic(
            GrpcDecider(tierwise),
            fake.client(),
            log=sink,
            escalation=Escalation(validators=(RegexValidator("CORRECT", name="answer_key"),)),
            exploration=Exploration(0.3, seed=1),
        )
        per_week = len(questions) // WEEKS
        for week in range(WEEKS):
            start = NOW - timedelta(weeks=WEEKS - week)
            for i, question in enumerate(questions[week * per_week : (week + 1) * per_week]):
                sink.when = start + timedelta(minutes=30 * i)
                client.messages.create(
                    max_tokens=8, messages=[{"role": "user", "content": question}]
                )


def _flip_training_weeks(url: str, out: Path) -> str:
    """The same log with every grade before the newest week inverted (a broken grader)."""
    store = open_store(url)
    calls = list(store.iter_calls())
    store.close()
    cutoff = NOW - timedelta(weeks=1)
    flipped = [
        replace(c, grade=1.0 - c.grade) if c.grade is not None and c.timestamp < cutoff else c
        for c in calls
    ]
    broken = open_store("sqlite:///" + str(out))
    broken.append(flipped)
    broken.close()
    return "sqlite:///" + str(out)


def _shadow_the_challenger(
    tmp_path: Path, registry: Registry, current: str, questions: list[str]
) -> None:
    """Serve the current router with the rejected challenger in shadow, then report."""
    (challenger,) = [v.version for v in registry.versions() if v.version != current]
    shadow_url = "sqlite:///" + str(tmp_path / "shadow.db")
    config = server_config(
        registry.artifact_dir(current),
        challenger=registry.artifact_dir(challenger),
        shadow_log=shadow_url,
    )
    server = ServerThread(config).load()
    try:
        with TierwiseClient(server.target, timeout=30) as client:
            for i, question in enumerate(questions):
                client.predict(question, request_id=f"shadowed-{i}")
        shadow = server.server.shadow
        assert shadow is not None and shadow.flush(30)
    finally:
        server.close()
    report_dir = tmp_path / "shadow-report"
    assert (
        main(
            [
                "shadow-report",
                "--store",
                shadow_url,
                "--since",
                "1d",
                "--report",
                str(report_dir),
                "--bootstraps",
                "200",
            ]
        )
        == 0
    )
    report = json.loads((report_dir / "report.json").read_text())
    assert report["agreement"] and set(report["spend"]) >= {"current", "challenger"}
    assert "drift" in report


def test_weeks_of_traffic_retrain_promote_and_reject(
    tmp_path: Path, mmlu_calls: Path, mmlu_tiers: Path, fake: FakeAnthropic
) -> None:
    registry = Registry(tmp_path / "registry")
    bootstrap = tmp_path / "bootstrap-router"
    assert (
        main(
            [
                "train",
                "--calls",
                str(_bootstrap_calls(tmp_path)),
                "--tiers",
                str(mmlu_tiers),
                "--out",
                str(bootstrap),
                "--no-progress",
            ]
        )
        == 0
    )
    first = registry.add(bootstrap)
    registry.promote(first, "bootstrap")

    log_url = "sqlite:///" + str(tmp_path / "calls.db")
    writer = CallLogWriter(open_store(log_url))
    questions = list(dict.fromkeys(c.request_text().text for c in read_calls(mmlu_calls)))
    server = ServerThread(server_config(registry.path, reload_interval_s=0.2)).load()
    try:
        _run_traffic(server.target, fake, questions, WeekSink(writer))
        assert writer.flush(timeout=30)
        assert writer.dropped == 0

        logged = list(open_store(log_url).iter_calls())
        assert len({c.request_id for c in logged}) == len(questions) // WEEKS * WEEKS
        assert len(logged) > len(questions)  # escalations and exploration add attempts
        assert {c.tier for c in logged} == {"small", "medium", "large"}

        # A challenger from corrupted logs must not take traffic.
        rejected = main(
            [
                "retrain",
                "--store",
                _flip_training_weeks(log_url, tmp_path / "bad.db"),
                "--registry",
                str(registry.path),
                "--tiers",
                str(mmlu_tiers),
                "--now",
                NOW.isoformat(),
                "--report",
                str(tmp_path / "rejected"),
                "--fail-on-reject",
                "--no-progress",
            ]
        )
        assert rejected == 4
        assert registry.current() == first
        _shadow_the_challenger(tmp_path, registry, first, questions[:40])

        # Predicts keep flowing while the sound challenger is trained and promoted.
        stop, failures, versions = threading.Event(), [], set()

        def traffic() -> None:
            with TierwiseClient(server.target, timeout=30) as client:
                while not stop.is_set():
                    try:
                        versions.add(client.predict(questions[0]).router_version)
                    except Exception as exc:  # any failure is what this test looks for
                        failures.append(exc)

        thread = threading.Thread(target=traffic)
        thread.start()
        promoted = main(
            [
                "retrain",
                "--store",
                log_url,
                "--registry",
                str(registry.path),
                "--tiers",
                str(mmlu_tiers),
                "--now",
                NOW.isoformat(),
                "--report",
                str(tmp_path / "promoted"),
                "--no-progress",
            ]
        )
        assert promoted == 0
        new_version = registry.current()
        assert new_version is not None and new_version != first
        new_router_version = registry.load(new_version).version
        wait_until(lambda: new_router_version in versions, "server switching to the challenger")
        stop.set()
        thread.join(30)
        assert failures == []
        assert (tmp_path / "promoted" / "metrics.json").is_file()
    finally:
        writer.close()
        server.close()
