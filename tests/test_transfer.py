"""Out-of-distribution evaluation: the tier mapping, gain retained, and ``evaluate --tiers``
on real data (the MMLU-Pro router judged on a slice of RouteLLM with its own two-tier ladder).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router_model.errors import InvalidInputError
from router_model.router import Scores
from training.evaluation.baselines import chain_name
from training.evaluation.chains import VALIDATOR_RECALLS
from training.evaluation.transfer import (
    gain_over_hull,
    gain_retained,
    map_scores,
    rescaled_reference,
    tier_mapping,
    transfer_summary,
)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
ROUTELLM_STRIDE = 64  # every 64th of ~15,000 requests: ~240, GSM8K and MMLU alike


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_mapping_is_the_identity_when_ladders_have_equal_length(n: int) -> None:
    assert tier_mapping(n, n) == tuple(range(n))


@pytest.mark.parametrize("n_router", [1, 2, 3, 5])
def test_two_tier_ladder_takes_the_router_ends(n_router: int) -> None:
    assert tier_mapping(n_router, 2) == (0, n_router - 1)


def test_mapping_rounds_by_price_rank_with_halves_up() -> None:
    assert tier_mapping(3, 5) == (0, 1, 1, 2, 2)  # 0, .5, 1, 1.5, 2
    assert tier_mapping(2, 3) == (0, 1, 1)  # the middle rung sits at .5
    assert tier_mapping(5, 3) == (0, 2, 4)
    assert tier_mapping(4, 3) == (0, 2, 3)  # 0, 1.5, 3


@pytest.mark.parametrize(("n", "m"), [(n, m) for n in range(1, 7) for m in range(2, 7)])
def test_mapping_is_monotone_and_keeps_both_ends(n: int, m: int) -> None:
    mapping = tier_mapping(n, m)
    assert len(mapping) == m
    assert mapping[0] == 0 and mapping[-1] == n - 1
    assert all(a <= b for a, b in itertools.pairwise(mapping))


def test_single_tier_eval_ladder_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="at least two tiers"):
        tier_mapping(3, 1)
    with pytest.raises(InvalidInputError, match="at least two tiers"):
        tier_mapping(1, 1)


def test_map_scores_takes_each_eval_column_from_its_router_tier() -> None:
    scores = Scores(
        p_success=np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 0.8]]),
        output_tokens=np.array([[10.0, 20.0, 30.0], [11.0, 21.0, 31.0]]),
        input_tokens=np.array([5.0, 6.0]),
    )
    mapped = map_scores(scores, (0, 2))
    np.testing.assert_array_equal(mapped.p_success, [[0.1, 0.9], [0.2, 0.8]])
    np.testing.assert_array_equal(mapped.output_tokens, [[10.0, 30.0], [11.0, 31.0]])
    np.testing.assert_array_equal(mapped.input_tokens, [5.0, 6.0])
    with pytest.raises(InvalidInputError, match="not within 3 router tiers"):
        map_scores(scores, (0, 3))


def test_reference_cost_follows_the_eval_ladder_prices() -> None:
    router_expected = np.array([[1.0, 4.0], [1.0, 6.0]])  # mean top 5
    assert rescaled_reference(2.0, router_expected, router_expected * 3) == pytest.approx(6.0)
    assert rescaled_reference(2.0, router_expected, router_expected) == 2.0
    assert rescaled_reference(2.0, router_expected, np.zeros((2, 2))) == 2.0


# ---------------------------------------------------------------- gain retained


def _metrics(router: dict[str, Any], hull: dict[str, Any], judged: int = 100) -> dict[str, Any]:
    return {
        "requests_judged": judged,
        "routers": {"cost_aware": router},
        "baselines": {"hull": hull},
    }


IN_DIST = _metrics(
    {"cost_at_90": 0.30, "cost_at_95": 0.50, "apgr": 0.70},
    {"cost_at_90": 0.40, "cost_at_95": 0.70, "apgr": 0.50},
)


def test_gain_retained_divides_ood_gain_by_in_distribution_gain() -> None:
    ood = _metrics(
        {"cost_at_90": 0.45, "cost_at_95": 0.70, "apgr": 0.55},
        {"cost_at_90": 0.50, "cost_at_95": 0.80, "apgr": 0.50},
    )
    assert gain_over_hull(IN_DIST, "cost_at_95") == pytest.approx(0.20)
    assert gain_retained(IN_DIST, ood) == pytest.approx(0.10 / 0.20)
    assert gain_retained(IN_DIST, ood, "cost_at_90") == pytest.approx(0.05 / 0.10)
    assert gain_retained(IN_DIST, ood, "apgr") == pytest.approx(0.05 / 0.20)
    assert gain_retained(IN_DIST, IN_DIST, "cost_at_95") == pytest.approx(1.0)


def test_gain_retained_is_negative_when_the_router_loses_to_the_hull() -> None:
    ood = _metrics(
        {"cost_at_90": 0.60, "cost_at_95": 0.90, "apgr": 0.40},
        {"cost_at_90": 0.50, "cost_at_95": 0.80, "apgr": 0.50},
    )
    for at in ("cost_at_90", "cost_at_95", "apgr"):
        kept = gain_retained(IN_DIST, ood, at)
        assert kept is not None and kept < 0.0, at


def test_gain_retained_is_none_without_a_gain_to_keep() -> None:
    no_gain = _metrics({"cost_at_95": 0.70, "apgr": 0.5}, {"cost_at_95": 0.70, "apgr": 0.6})
    unreached = _metrics({"cost_at_95": None, "apgr": 0.6}, {"cost_at_95": 0.70, "apgr": 0.5})
    assert gain_retained(no_gain, IN_DIST) is None
    assert gain_retained(no_gain, IN_DIST, "apgr") is None
    assert gain_retained(IN_DIST, unreached) is None
    assert gain_retained(unreached, IN_DIST) is None
    with pytest.raises(InvalidInputError, match="unknown metric"):
        gain_retained(IN_DIST, IN_DIST, "cost_at_80")


def test_transfer_summary_reads_router_hull_and_mapping() -> None:
    ood = {
        **_metrics(
            {"cost_at_90": 0.45, "cost_at_95": 0.70, "apgr": 0.55},
            {"cost_at_90": 0.50, "cost_at_95": 0.80, "apgr": 0.50},
            judged=42,
        ),
        "transfer": {"mapping": [{"eval_tier": "s", "router_tier": "small", "router_index": 0}]},
    }
    summary = transfer_summary(ood, IN_DIST)
    assert summary["requests_judged"] == 42
    assert summary["mapping"] == {"s": "small"}
    assert summary["router"]["cost_at_95"] == 0.70 and summary["hull"]["apgr"] == 0.50
    assert summary["gain_retained"]["cost_at_95"] == pytest.approx(0.5)


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def routellm_tiers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.importers import ladder_toml

    path = tmp_path_factory.mktemp("tiers") / "routellm.toml"
    path.write_text(ladder_toml("routellm"))
    return path


@pytest.fixture(scope="module")
def routellm_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every ROUTELLM_STRIDE-th RouteLLM request (both tiers), imported like the bundle."""
    from router_model.calls import write_calls
    from training.importers import import_calls

    order: dict[str, int] = {}
    kept = []
    for call in import_calls("routellm", DATA / "routellm" / "binary_correctness.csv.gz"):
        index = order.setdefault(call.request_id, len(order))
        if index % ROUTELLM_STRIDE == 0:
            kept.append(call)
    path = tmp_path_factory.mktemp("calls") / "routellm_slice.jsonl"
    write_calls(path, kept)
    return path


@pytest.fixture(scope="module")
def mmlu_slice(mmlu_calls: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 requests of the router's own training questions: cheap to score."""
    from router_model.calls import read_calls, write_calls

    calls = read_calls(mmlu_calls)
    ids = list(dict.fromkeys(c.request_id for c in calls))[:60]
    path = tmp_path_factory.mktemp("calls") / "mmlu_slice.jsonl"
    write_calls(path, [c for c in calls if c.request_id in set(ids)])
    return path


def test_own_ladder_through_the_mapping_equals_in_distribution(
    logreg_router_dir: Path, mmlu_slice: Path, mmlu_tiers: Path
) -> None:
    from router_model.router import Router
    from router_model.tiers import load_tiers
    from training.dataset import build_table
    from training.evaluation.transfer import transfer_scoring
    from training.report import evaluate
    from training.train import load_calls

    router = Router.load(logreg_router_dir)
    table = build_table(load_calls([mmlu_slice]), router.ladder)
    plain = evaluate(router, table).metrics
    mapped = evaluate(router, table, scoring=transfer_scoring(load_tiers(mmlu_tiers))).metrics
    section = mapped.pop("transfer")
    assert [m["router_index"] for m in section["mapping"]] == [0, 1, 2]
    # The same prices reached by two routes: equal up to float rounding.
    reference = section["reference_cost_usd"]
    assert reference["eval"] == pytest.approx(reference["router"], rel=1e-12)
    assert json.dumps(mapped, sort_keys=True) == json.dumps(plain, sort_keys=True)


@pytest.fixture(scope="module")
def routellm_report(
    logreg_router_dir: Path, routellm_calls: Path, routellm_tiers: Path, tmp_path_factory: Any
) -> Path:
    from tierwise.cli import main

    report = tmp_path_factory.mktemp("reports") / "mmlu_on_routellm"
    argv = ["evaluate", "--model", str(logreg_router_dir), "--calls", str(routellm_calls)]
    assert main([*argv, "--tiers", str(routellm_tiers), "--report", str(report)]) == 0
    return report


def test_cli_transfer_report_maps_two_tiers_onto_the_router_ends(routellm_report: Path) -> None:
    metrics = json.loads((routellm_report / "metrics.json").read_text())
    section = metrics["transfer"]
    assert section["router_tiers"] == ["small", "medium", "large"]
    assert section["eval_tiers"] == ["small", "large"]
    assert [(m["eval_tier"], m["router_tier"], m["router_index"]) for m in section["mapping"]] == [
        ("small", "small", 0),
        ("large", "large", 2),
    ]
    assert metrics["tiers"] == ["small", "large"]
    assert metrics["requests_judged"] >= 200
    assert set(metrics["default_operating_point"]["tier_share"]) == {"small", "large"}
    assert [t["tier"] for t in metrics["calibration"]["tiers"]] == ["small", "large"]
    chains = {chain_name(r) for r in VALIDATOR_RECALLS}
    assert {"always-small", "always-large", "random", "hull", "oracle"} | chains == set(
        metrics["baselines"]
    )
    for key in ("cost_at_90", "cost_at_95", "cost_at_100", "apgr"):
        assert key in metrics["routers"]["cost_aware"]
    for png in ("cost_quality.png", "reliability.png"):
        assert (routellm_report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_transfer_costs_come_from_the_eval_ladder(
    routellm_report: Path, routellm_calls: Path, routellm_tiers: Path, mmlu_tiers: Path
) -> None:
    from router_model.calls import read_calls
    from router_model.tiers import load_tiers

    metrics = json.loads((routellm_report / "metrics.json").read_text())
    calls = read_calls(routellm_calls)
    tokens = np.array([c.input_tokens for c in calls if c.model == "gpt-4-1106-preview"], float)
    # RouteLLM records no answers: a call costs its input tokens at the tier's input price.
    eval_top = load_tiers(routellm_tiers).tiers[-1].input_usd_per_mtok
    router_top = load_tiers(mmlu_tiers).tiers[-1].input_usd_per_mtok
    top_cost = metrics["reference"]["top"]["cost_usd"]
    assert top_cost == pytest.approx(tokens.mean() * eval_top / 1e6, rel=1e-9)
    assert top_cost != pytest.approx(tokens.mean() * router_top / 1e6, rel=1e-3)
    reference = metrics["transfer"]["reference_cost_usd"]
    assert reference["eval"] > reference["router"]  # GPT-4 costs more than gemini-1.5-pro


def test_transfer_outputs_price_mapped_tokens_with_the_eval_ladder(
    logreg_router_dir: Path, routellm_calls: Path, routellm_tiers: Path
) -> None:
    from router_model.router import Router
    from router_model.tiers import load_tiers
    from training.dataset import build_table
    from training.evaluation.transfer import transfer_outputs
    from training.report import judged_subset
    from training.train import load_calls

    router = Router.load(logreg_router_dir)
    ladder = load_tiers(routellm_tiers)
    judged = judged_subset(build_table(load_calls([routellm_calls]), ladder)).subset(range(24))
    outputs = transfer_outputs(router, judged, ladder)
    scores = router.score(judged.requests)
    np.testing.assert_array_equal(outputs.p_success, scores.p_success[:, [0, 2]])
    large = ladder.by_name("large")
    expected_large = (
        scores.input_tokens * large.input_usd_per_mtok
        + scores.output_tokens[:, 2] * large.output_usd_per_mtok
    ) / 1e6
    np.testing.assert_allclose(outputs.expected_cost_usd[:, 1], expected_large, rtol=1e-12)
    assert outputs.ladder is ladder and outputs.sections["transfer"]["eval_tiers"] == [
        "small",
        "large",
    ]


def test_cli_tiers_that_do_not_match_the_calls_are_an_input_error(
    logreg_router_dir: Path,
    routellm_calls: Path,
    mmlu_tiers: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tierwise.cli import EXIT_INPUT_ERROR, main

    argv = ["evaluate", "--model", str(logreg_router_dir), "--calls", str(routellm_calls)]
    code = main([*argv, "--tiers", str(mmlu_tiers), "--report", str(tmp_path / "r")])
    assert code == EXIT_INPUT_ERROR
    assert "maps to no tier" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- the matrix script


def _load_script() -> Any:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "transfer_matrix", REPO / "scripts" / "transfer_matrix.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_transfer_matrix_script_judges_every_pair(
    logreg_router_dir: Path,
    mmlu_slice: Path,
    mmlu_tiers: Path,
    routellm_calls: Path,
    routellm_tiers: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = _load_script()
    out, reports = tmp_path / "matrix.json", tmp_path / "reports"
    sets = [
        f"mmlu={logreg_router_dir},{mmlu_slice},{mmlu_tiers}",
        f"routellm={logreg_router_dir},{routellm_calls},{routellm_tiers}",
    ]
    argv = [arg for s in sets for arg in ("--set", s)]
    code = script.main(
        [*argv, "--out", str(out), "--reports", str(reports), "--max-requests", "40"]
    )
    assert code == 0
    result = json.loads(out.read_text())
    pairs = {(p["train"], p["eval"]): p for p in result["pairs"]}
    assert set(pairs) == {(a, b) for a in ("mmlu", "routellm") for b in ("mmlu", "routellm")}
    assert pairs["mmlu", "routellm"]["mapping"] == {"small": "small", "large": "large"}
    assert pairs["mmlu", "mmlu"]["mapping"] == {
        "small": "small",
        "medium": "medium",
        "large": "large",
    }
    for (train, target), pair in pairs.items():
        assert pair["requests_judged"] == 40
        report = json.loads((reports / f"{train}__on__{target}" / "metrics.json").read_text())
        assert pair["router"]["cost_at_95"] == report["routers"]["cost_aware"]["cost_at_95"]
        assert pair["hull"]["apgr"] == report["baselines"]["hull"]["apgr"]
        if train == target:
            assert pair["gain_retained"]["apgr"] in (1.0, None)
    captured = capsys.readouterr()
    assert "[4/4] routellm -> routellm" in captured.err
    table = [line for line in captured.out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4 and "mmlu → routellm" in captured.out


def test_transfer_matrix_script_rejects_a_malformed_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _load_script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--set", "mmlu=only-a-model-dir", "--out", str(tmp_path / "m.json")])
    assert exit_info.value.code == 2
    assert "NAME=MODEL_DIR,CALLS,TIERS" in capsys.readouterr().err
