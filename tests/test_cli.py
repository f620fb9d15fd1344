"""The command line end to end on small real data: import, train, predict, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierwise.cli import EXIT_INPUT_ERROR, main

DATA = Path(__file__).resolve().parent.parent / "data"


def test_import_writes_calls_and_tiers(tmp_path: Path) -> None:
    out, tiers = tmp_path / "calls.jsonl", tmp_path / "tiers.toml"
    src = DATA / "routellm" / "binary_correctness.csv.gz"
    assert (
        main(
            [
                "import",
                "--format",
                "routellm",
                str(src),
                "--out",
                str(out),
                "--tiers-out",
                str(tiers),
            ]
        )
        == 0
    )
    first = json.loads(out.open().readline())
    assert first["request_id"].startswith("routellm-") and first["grade"] in (0.0, 1.0)
    assert "gpt-4-1106-preview" in tiers.read_text()


def test_import_of_every_model_names_those_the_ladder_does_not_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, tiers = tmp_path / "calls.jsonl", tmp_path / "tiers.toml"
    src = DATA / "llmrouter" / "train.jsonl.gz"
    args = ["import", "--format", "llmrouter", str(src), "--out", str(out)]
    assert main([*args, "--tiers-out", str(tiers), "--all-models"]) == 0
    note = capsys.readouterr().err.splitlines()[-1]
    assert note.startswith(f"note: {tiers} maps only the ladder's models")
    assert "qwen2.5-7b-instruct" in note and "gemma-2-9b-it" not in note

    assert main([*args, "--tiers-out", str(tiers)]) == 0
    assert "note:" not in capsys.readouterr().err


def _requests(tmp_path: Path) -> Path:
    lines = [
        {"request_id": "q1", "prompt": "What is 7 * 8?"},
        {
            "request_id": "q2",
            "prompt": "Prove that there are infinitely many primes.",
            "quality_target": 0.9,
        },
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Summarise the French revolution."},
            ],
            "system": "You are a historian.",
            "max_cost_usd": 1e-9,
        },
        {"prompt": "Sort a list in Python.", "rule": "threshold", "quality_target": 0.6},
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_predict_writes_one_auditable_decision_per_line(
    logreg_router_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "decisions.jsonl"
    code = main(
        [
            "predict",
            "--model",
            str(logreg_router_dir),
            "--input",
            str(_requests(tmp_path)),
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(decisions) == 4
    assert [d["request_id"] for d in decisions] == ["q1", "q2", None, None]
    for d in decisions:
        assert set(d["p_success"]) == set(d["expected_cost_usd"]) == {"small", "medium", "large"}
        assert d["tier"] in d["p_success"] and d["model"]
        assert all(0.0 <= p <= 1.0 for p in d["p_success"].values())
        assert all(0.0 < c < 1.0 for c in d["expected_cost_usd"].values())
    assert decisions[2]["rule"] == "over_ceiling" and decisions[2]["tier"] == "small"
    assert decisions[3]["rule"] in ("threshold", "threshold_fallback")


def test_predict_bad_input_names_line_and_writes_nothing(
    logreg_router_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "x", "quality_target": "high"}\n')
    out = tmp_path / "decisions.jsonl"
    code = main(
        ["predict", "--model", str(logreg_router_dir), "--input", str(bad), "--output", str(out)]
    )
    assert code == EXIT_INPUT_ERROR
    assert "bad.jsonl:2: field 'quality_target'" in capsys.readouterr().err
    assert not out.exists()


def test_train_reports_clear_errors(
    tmp_path: Path, mmlu_tiers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        json.dumps(
            {
                "request_id": "a",
                "timestamp": "2025-01-01T00:00:00Z",
                "prompt": "p",
                "model": "unknown-model",
                "grade": 1,
            }
        )
        + "\n"
    )
    code = main(
        ["train", "--calls", str(calls), "--tiers", str(mmlu_tiers), "--out", str(tmp_path / "m")]
    )
    assert code == EXIT_INPUT_ERROR
    assert "calls.jsonl:1: model 'unknown-model' maps to no tier" in capsys.readouterr().err


def test_train_neighbours_defaults_to_the_library_and_refuses_negatives(
    tmp_path: Path, mmlu_tiers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from tierwise.commands import train_cmd
    from training.neighbours import DEFAULT_K

    parser = train_cmd.register(argparse.ArgumentParser().add_subparsers())
    base = ["--calls", "c.jsonl", "--tiers", str(mmlu_tiers), "--out", str(tmp_path / "m")]
    assert parser.parse_args(base).neighbours == DEFAULT_K
    with pytest.raises(SystemExit):
        main(["train", *base, "--neighbours", "-1"])
    assert "--neighbours: must be 0 or more, got -1" in capsys.readouterr().err


def test_evaluate_writes_metrics_and_plots(
    logreg_router_dir: Path, mmlu_calls: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(logreg_router_dir),
                "--calls",
                str(mmlu_calls),
                "--report",
                str(report),
                "--train-calls",
                str(mmlu_calls),
            ]
        )
        == 0
    )
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["requests_judged"] > 300
    for key in ("cost_at_90", "cost_at_95", "cost_at_100", "apgr"):
        assert key in metrics["routers"]["cost_aware"]
    assert {"always-small", "always-large", "random", "hull", "oracle"} <= set(metrics["baselines"])
    assert {"length", "code", "keyword", "knn"} <= set(metrics["heuristics"])
    assert isinstance(metrics["heuristics"]["knn"]["apgr"], float)
    shares = metrics["bootstrap"]["router_better_share"]
    assert set(shares) == {"knn", "hull"}
    assert all(0.0 <= v <= 1.0 for by_metric in shares.values() for v in by_metric.values())
    for tier in metrics["calibration"]["tiers"]:
        assert {"roc_auc", "brier", "ece", "ece_noise_floor"} <= set(tier)
        assert 0.0 < tier["ece_noise_floor"] < 0.1
    for png in ("cost_quality.png", "reliability.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_keeps_each_request_on_one_side(mmlu_calls: Path, tmp_path: Path) -> None:
    from router_model.calls import read_calls

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    assert (
        main(
            [
                "split",
                "--calls",
                str(mmlu_calls),
                "--held-out-fraction",
                "0.25",
                "--out-train",
                str(train),
                "--out-test",
                str(test),
            ]
        )
        == 0
    )
    train_ids = {c.request_id for c in read_calls(train)}
    test_ids = {c.request_id for c in read_calls(test)}
    assert train_ids.isdisjoint(test_ids)
    assert len(train_ids) + len(test_ids) == 360
    assert 0.15 < len(test_ids) / 360 < 0.35
    assert len(read_calls(train)) + len(read_calls(test)) == len(read_calls(mmlu_calls))


def test_train_warns_when_the_router_does_not_beat_the_hull(logreg_router_dir: Path) -> None:
    import copy

    from router_model.artifact import read_manifest
    from tierwise.commands.train_cmd import below_hull_warning

    metrics = dict(read_manifest(logreg_router_dir).metrics)
    hull = metrics["baselines"]["hull"]["apgr"]
    below, above = copy.deepcopy(metrics), copy.deepcopy(metrics)
    below["routers"]["cost_aware"]["apgr"] = hull - 0.05
    above["routers"]["cost_aware"]["apgr"] = hull + 0.05
    warning = below_hull_warning(below)
    assert warning is not None
    assert f"({hull - 0.05:.3f})" in warning and f"({hull:.3f})" in warning
    assert f"{metrics['requests_judged']} held-out requests" in warning
    assert below_hull_warning(above) is None
    assert below_hull_warning({"reason": "no held-out requests"}) is None


def test_train_warns_when_the_default_target_sends_everything_to_the_top_tier() -> None:
    from router_model.manifest import PolicyConfig, PolicyGuarantee
    from router_model.policy import ALWAYS_TOP
    from tierwise.commands.train_cmd import all_to_top_warning

    guarantee = PolicyGuarantee("m", 0.9, 180, (0.9,))
    table = ((0.9, 0.3), (0.95, ALWAYS_TOP), (1.0, ALWAYS_TOP))
    warning = all_to_top_warning(PolicyConfig(0.95, 1.0, table, guarantee=guarantee))
    assert warning is not None
    assert "0.95 could not be certified at a saving on 180 calibration requests" in warning
    assert "the highest target that saves is 0.90" in warning
    nothing = ((0.9, ALWAYS_TOP), (0.95, ALWAYS_TOP))
    warning = all_to_top_warning(PolicyConfig(0.95, 1.0, nothing, guarantee=guarantee))
    assert warning is not None and "highest target" not in warning
    assert all_to_top_warning(PolicyConfig(0.9, 1.0, table, guarantee=guarantee)) is None
    assert all_to_top_warning(PolicyConfig(0.95, 1.0, table)) is None  # no promise made


def test_serve_workers_default_to_auto_and_take_a_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from tierwise.commands import serve_cmd

    parser = serve_cmd.register(argparse.ArgumentParser().add_subparsers())
    assert parser.parse_args(["--model", "m"]).workers is None
    assert parser.parse_args(["--model", "m", "--workers", "auto"]).workers is None
    assert parser.parse_args(["--model", "m", "--workers", "3"]).workers == 3
    with pytest.raises(SystemExit):
        main(["serve", "--model", "m", "--workers", "two"])
    assert "--workers: expected a whole number or 'auto', got 'two'" in capsys.readouterr().err


def test_serve_turns_the_tokenizer_thread_pool_off_unless_told_otherwise() -> None:
    from tierwise.commands.serve_cmd import tokenize_on_calling_thread

    unset: dict[str, str] = {}
    tokenize_on_calling_thread(unset)
    assert unset == {"TOKENIZERS_PARALLELISM": "false"}
    chosen = {"TOKENIZERS_PARALLELISM": "true"}
    tokenize_on_calling_thread(chosen)
    assert chosen == {"TOKENIZERS_PARALLELISM": "true"}


def test_evaluate_without_fully_graded_training_calls_leaves_the_knn_router_out(
    logreg_router_dir: Path, mmlu_calls: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A call log: each training request answered (and graded) by one tier only.
    by_request: dict[str, list[str]] = {}
    for line in mmlu_calls.read_text().splitlines():
        by_request.setdefault(json.loads(line)["request_id"], []).append(line)
    one_tier = tmp_path / "log.jsonl"
    one_tier.write_text("".join(f"{c[i % len(c)]}\n" for i, c in enumerate(by_request.values())))
    report = tmp_path / "report"
    args = ["evaluate", "--model", str(logreg_router_dir), "--calls", str(mmlu_calls)]
    assert main([*args, "--report", str(report), "--train-calls", str(one_tier)]) == 0
    assert "no kNN router baseline in the report" in capsys.readouterr().err
    metrics = json.loads((report / "metrics.json").read_text())
    assert "knn" not in metrics["heuristics"]
    assert {"length", "code", "keyword"} <= set(metrics["heuristics"])
    assert set(metrics["bootstrap"]["router_better_share"]) == {"hull"}
