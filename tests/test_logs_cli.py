"""``tierwise logs export`` and ``tierwise logs feedback`` end to end on a SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from calllog_support import make_call

from router_model.calls import read_calls
from serving.calllog import STORE_URL_ENV, SQLiteStore
from tierwise.cli import EXIT_INPUT_ERROR, main

NOW = datetime.now(UTC)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """Calls made 10 days, 2 days and 1 hour ago, one graded."""
    store = SQLiteStore(tmp_path / "calls.db")
    store.append(
        [
            make_call(1, timestamp=NOW - timedelta(days=10)),
            make_call(2, timestamp=NOW - timedelta(days=2), tags={"endpoint": "faq"}),
            make_call(3, timestamp=NOW - timedelta(hours=1), grade=1.0, grader="exact_match"),
        ]
    )
    store.close()
    return f"sqlite:///{tmp_path / 'calls.db'}"


def _export(store_url: str, out: Path, *extra: str) -> int:
    return main(["logs", "export", "--store", store_url, "--out", str(out), *extra])


def test_export_since_writes_readable_calls(store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "export" / "calls.jsonl"
    assert _export(store_url, out, "--since", "7d") == 0
    calls = read_calls(out)
    assert [c.request_id for c in calls] == ["r0000002", "r0000003"]
    assert calls[0].tags == {"endpoint": "faq"} and calls[1].grade == 1.0

    assert _export(store_url, out, "--since", "30d", "--until", "24h") == 0
    assert [c.request_id for c in read_calls(out)] == ["r0000001", "r0000002"]
    start = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _export(store_url, out, "--since", start) == 0
    assert len(read_calls(out)) == 2
    assert not out.with_name("calls.jsonl.partial").exists()


def test_store_defaults_to_environment(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORE_URL_ENV, store_url)
    out = tmp_path / "all.jsonl"
    assert main(["logs", "export", "--out", str(out)]) == 0
    assert len(read_calls(out)) == 3


def test_feedback_grades_logged_calls(store_url: str, tmp_path: Path) -> None:
    argv = ["logs", "feedback", "--store", store_url, "--request-id", "r0000002", "--grade", "0"]
    assert main(argv) == 0
    out = tmp_path / "calls.jsonl"
    assert _export(store_url, out, "--since", "7d") == 0
    graded = read_calls(out)[0]
    assert (graded.request_id, graded.grade, graded.grader) == ("r0000002", 0.0, "user")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--since", "last week"], "--since"),
        (["export", "--since", "2025-01-01T00:00:00"], "UTC offset"),
        (["export", "--since", "1d", "--until", "2d"], "before --until"),
        (["feedback", "--request-id", "nobody", "--grade", "1"], "no logged call"),
        (["feedback", "--request-id", "r0000001", "--grade", "1.5"], "grade"),
    ],
)
def test_bad_input_exits_2(
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    out = ["--out", str(tmp_path / "x.jsonl")] if argv[0] == "export" else []
    assert main(["logs", *argv, "--store", store_url, *out]) == EXIT_INPUT_ERROR
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("store", "message"),
    [("redis://cache", "unsupported call-log URL"), ("sqlite:///typo.db", "does not exist")],
)
def test_bad_store_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    store: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["logs", "export", "--store", store, "--out", "x.jsonl"]) == EXIT_INPUT_ERROR
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
