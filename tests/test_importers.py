"""Importers against the bundled data sets, checked against the raw files."""

from __future__ import annotations

import csv
import gzip
import json
import math
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from router_model.calls import GradedCall, read_calls, write_calls
from router_model.errors import ConfigError, DataFileError
from router_model.tiers import TierLadder, load_tiers
from training.importers import FORMATS, import_calls, ladder_toml

DATA = Path(__file__).resolve().parents[1] / "data"
SOURCES = {
    "mmlu-pro-wide": DATA / "mmlu_pro" / "graded_wide.csv.gz",
    "llmrouter": DATA / "llmrouter" / "train.jsonl.gz",
    "routellm": DATA / "routellm" / "binary_correctness.csv.gz",
    "mt-bench": DATA / "routellm",
}
MMLU_LADDER = ("Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B-Instruct", "gemini-1.5-pro-002")
MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


@cache
def imported(fmt: str, all_models: bool = False) -> tuple[GradedCall, ...]:
    return tuple(import_calls(fmt, SOURCES[fmt], all_models=all_models))


def ladder(fmt: str) -> TierLadder:
    return TierLadder.from_dict(tomllib.loads(ladder_toml(fmt)), source=fmt)


def csv_rows(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle)


@pytest.mark.parametrize("fmt", FORMATS)
def test_calls_are_well_formed(fmt: str) -> None:
    calls = imported(fmt)
    source = fmt.removesuffix("-wide")
    assert calls
    for call in calls:
        assert call.request_id.startswith(f"{source}-")
        assert call.grade is not None and 0.0 <= call.grade <= 1.0
        assert call.timestamp.utcoffset() is not None
        assert call.input_tokens is not None and call.input_tokens > 0
        assert call.tags["source"] == source
    assert len({c.timestamp for c in calls}) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trips_through_the_call_log(fmt: str, tmp_path: Path) -> None:
    calls = imported(fmt)
    path = tmp_path / "calls.jsonl"
    assert write_calls(path, calls) == len(calls)
    assert tuple(read_calls(path)) == calls


@pytest.mark.parametrize("fmt", FORMATS)
def test_ladder_maps_every_model_emitted_by_default(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(ladder_toml(fmt), encoding="utf-8")
    tiers = load_tiers(path)
    assert tiers.pass_grade == 0.5
    emitted = {c.model for c in imported(fmt)}
    assert emitted == {m for tier in tiers.tiers for m in tier.model_ids()}


def test_claude_prior_maps_each_ladder_by_price(tmp_path: Path) -> None:
    path = tmp_path / "claude_prior.toml"
    path.write_text((files("training") / "tiers" / "claude_prior.toml").read_text())
    prior = load_tiers(path)
    assert prior.names == ("haiku", "sonnet", "opus")
    assert [t.model for t in prior.tiers] == [
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
    ]
    for fmt in FORMATS:
        rungs = [prior.tier_for_model(t.model) for t in ladder(fmt).tiers]
        assert rungs[0] is prior.tiers[0] and rungs[-1] is prior.tiers[-1], fmt
        if len(rungs) == 3:
            assert rungs[1] is prior.tiers[1], fmt


def test_unknown_format_names_the_known_ones() -> None:
    assert FORMATS == ("mmlu-pro-wide", "llmrouter", "routellm", "mt-bench")
    with pytest.raises(ConfigError, match="mmlu-pro-wide, llmrouter, routellm, mt-bench"):
        import_calls("csv", SOURCES["routellm"])
    with pytest.raises(ConfigError):
        ladder_toml("csv")


def test_missing_source_is_a_data_file_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="file not found"):
        import_calls("llmrouter", tmp_path / "absent.jsonl")


def test_mmlu_pro_counts_match_the_table() -> None:
    rows = list(csv_rows(SOURCES["mmlu-pro-wide"]))
    cells = [r[f"correct:{m}"] for r in rows for m in MMLU_LADDER]
    all_cells = [v for r in rows for k, v in r.items() if k.startswith("correct:")]
    assert len(rows) == 9_635
    assert len(imported("mmlu-pro-wide")) == sum(1 for v in cells if v) == 9_635 * 3 - 7
    every = import_calls("mmlu-pro-wide", SOURCES["mmlu-pro-wide"], all_models=True)
    assert sum(1 for _ in every) == sum(1 for v in all_cells if v) == 278_059
    assert len({c.request_id for c in imported("mmlu-pro-wide")}) == 9_635


def test_mmlu_pro_prompt_lists_lettered_options() -> None:
    row = next(csv_rows(SOURCES["mmlu-pro-wide"]))
    call = imported("mmlu-pro-wide")[0]
    options = json.loads(row["options"])
    assert call.request_id == f"mmlu-pro-{row['question_id']}"
    assert call.prompt is not None and call.prompt.startswith(row["question"] + "\nA. ")
    assert (
        call.prompt.splitlines()[-1] == f"{'ABCDEFGHIJ'[len(options) - 1]}. {options[-1].strip()}"
    )
    assert call.input_tokens == math.ceil(len(call.prompt) / 4)
    out_chars = float(row[f"out_chars:{call.model}"])
    assert call.output_tokens == math.ceil(out_chars / 4)
    assert call.tags == {"source": "mmlu-pro", "category": row["category"]}


def test_llmrouter_counts_and_graders() -> None:
    lines = list(jsonl(SOURCES["llmrouter"]))
    assert len(lines) == 5_608
    assert len(imported("llmrouter")) == 5_608 * 3
    assert len(imported("llmrouter", True)) == sum(len(x["scores"]) for x in lines) == 5_608 * 9
    partial = {x["task"] for x in lines if any(0 < s < 1 for s in x["scores"].values())}
    for call in imported("llmrouter", True):
        fractional = call.tags["task"] in partial
        assert call.grader == ("validator:f1" if fractional else "exact_match")
        assert call.output_tokens is None


def test_llmrouter_ladder_prices_come_from_models_json() -> None:
    prices = json.loads((DATA / "llmrouter" / "models.json").read_text())
    for tier in ladder("llmrouter").tiers:
        entry = prices[tier.model]
        assert (tier.input_usd_per_mtok, tier.output_usd_per_mtok) == (
            entry["input_price"],
            entry["output_price"],
        )
    mixtral = ladder("routellm").tiers[0]
    assert mixtral.input_usd_per_mtok == prices["mixtral-8x7b-instruct-v0.1"]["input_price"]


def test_routellm_grades_match_the_table() -> None:
    rows = list(csv_rows(SOURCES["routellm"]))
    assert len(rows) == 15_361
    calls = imported("routellm")
    assert len(calls) == 2 * len(rows)
    expected = {
        (f"routellm-{r['task']}-{i}", m): float(r[m] == "True")
        for i, r in enumerate(rows)
        for m in (MIXTRAL, GPT4)
    }
    assert {(c.request_id, c.model): c.grade for c in calls} == expected


def test_mt_bench_scores_and_conversations() -> None:
    questions = {
        q["question_id"]: q for q in jsonl(SOURCES["mt-bench"] / "mt_bench_question.jsonl")
    }
    judgements = list(jsonl(SOURCES["mt-bench"] / "mt_bench_judgements.jsonl"))
    calls = {(c.request_id, c.model): c for c in imported("mt-bench")}
    assert len(calls) == len(judgements) == 320
    for j in judgements:
        request_id = f"mt-bench-{j['question_id']}-turn{j['turn']}"
        if j["turn"] == 2:  # each model's turn 2 carries its own first answer
            request_id += "-" + j["model"].replace("/", "_")
        call = calls[(request_id, j["model"])]
        turns = questions[j["question_id"]]["turns"]
        assert call.grade == pytest.approx((j["score"] - 1) / 9)
        assert call.grader == "judge:gpt-4"
        if j["turn"] == 1:
            assert call.prompt == turns[0]
        else:
            assert [m.role for m in call.messages] == ["user", "assistant", "user"]
            assert (call.messages[0].content, call.messages[2].content) == tuple(turns[:2])
            assert call.messages[1].content and call.messages[1].content in j["user_prompt"]
        assert call.output_tokens is not None and call.output_tokens > 0


def test_mt_bench_accepts_a_file_in_the_folder() -> None:
    src = SOURCES["mt-bench"] / "mt_bench_judgements.jsonl"
    assert tuple(import_calls("mt-bench", src)) == imported("mt-bench")


def write_csv(path: Path, rows: list[list[str]], *, gz: bool = False) -> Path:
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def mmlu_rows(*cells: tuple[str, str, str]) -> list[list[str]]:
    header = ["question_id", "category", "question", "options"]
    header += [f"correct:{m}" for m in MMLU_LADDER] + [f"out_chars:{m}" for m in MMLU_LADDER]
    options = json.dumps(["yes", "no"])
    rows = [
        [str(i), "math", f"Question {i}?", options, *c, "40", "80", "120"]
        for i, c in enumerate(cells)
    ]
    return [header, *rows]


def test_empty_cells_are_no_record_not_errors(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "t.csv.gz", mmlu_rows(("1", "", "0.0"), ("", "", "")), gz=True)
    calls = list(import_calls("mmlu-pro-wide", src))
    assert [(c.model, c.grade) for c in calls] == [(MMLU_LADDER[0], 1.0), (MMLU_LADDER[2], 0.0)]
    assert calls[0].prompt == "Question 0?\nA. yes\nB. no"


RL_HEADER, RL_ROW = f"prompt,{MIXTRAL},{GPT4},task\n", "q,True,False,gsm8k\n"
BAD_CSV = {  # expected message: format, file text, line, field
    "missing column": ("mmlu-pro-wide", "question_id,question\n1,q\n", 1, "category"),
    "True or False": ("routellm", f'{RL_HEADER}{RL_ROW}"two\nlines",1,True,gsm8k\n', 3, MIXTRAL),
    "expected 4 fields": ("routellm", f"{RL_HEADER}{RL_ROW}q,True,gsm8k\n", 3, None),
    "malformed CSV": ("routellm", f'{RL_HEADER}{RL_ROW}"q,True,False,gsm8k\n', 3, None),
}


@pytest.mark.parametrize("message", BAD_CSV)
def test_malformed_csv_names_the_record_line(tmp_path: Path, message: str) -> None:
    fmt, text, line, field = BAD_CSV[message]
    src = tmp_path / "bad.csv"
    src.write_text(text, encoding="utf-8")
    with pytest.raises(DataFileError, match=rf"bad\.csv:{line}: .*{message}") as info:
        list(import_calls(fmt, src))
    assert (info.value.line, info.value.field) == (line, field)


def test_mmlu_pro_non_binary_cell(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "t.csv", mmlu_rows(("1", "1", "1"), ("1", "yes", "1")))
    with pytest.raises(DataFileError, match=r"t\.csv:3: .*must be 0 or 1") as info:
        list(import_calls("mmlu-pro-wide", src))
    assert info.value.field == f"correct:{MMLU_LADDER[1]}"


def test_jsonl_bad_line(tmp_path: Path) -> None:
    good = json.dumps({"split": "train", "task": "gsm8k", "prompt": "p", "scores": {"m": 1.0}})
    src = tmp_path / "t.jsonl"
    src.write_text(f"{good}\n{{not json\n")
    calls = import_calls("llmrouter", src, all_models=True)
    assert next(calls).model == "m"  # streamed: the good line arrives before the bad one is read
    with pytest.raises(DataFileError, match=r"t\.jsonl:2: malformed JSON") as info:
        next(calls)
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("scores", "field"),
    [
        ({"gemma-2-9b-it": 1.5}, "scores.gemma-2-9b-it"),
        ({"gemma-2-9b-it": "1"}, "scores.gemma-2-9b-it"),
        ([1], "scores"),
    ],
)
def test_jsonl_bad_scores(tmp_path: Path, scores: Any, field: str) -> None:
    src = tmp_path / "t.jsonl.gz"
    with gzip.open(src, "wt") as handle:
        handle.write(json.dumps({"task": "gsm8k", "prompt": "p", "scores": scores}) + "\n")
    with pytest.raises(DataFileError, match=r"t\.jsonl\.gz:1: ") as info:
        list(import_calls("llmrouter", src))
    assert info.value.field == field


def mt_bench_folder(tmp_path: Path, *judgements: dict[str, Any]) -> Path:
    question = {"question_id": 1, "category": "math", "turns": ["What is 2+2?", "And 3+3?"]}
    (tmp_path / "mt_bench_question.jsonl").write_text(json.dumps(question) + "\n")
    lines = "".join(json.dumps(j) + "\n" for j in judgements)
    (tmp_path / "mt_bench_judgements.jsonl").write_text(lines)
    return tmp_path


def judgement(**overrides: Any) -> dict[str, Any]:
    answer = "[The Start of Assistant's Answer]\n4\n[The End of Assistant's Answer]"
    base = {"question_id": 1, "model": GPT4, "judge": ["gpt-4", "single-math-v1"], "turn": 1}
    prompt = f"[Question]\nWhat is 2+2?\n\n{answer}"
    return {**base, "score": 10, "user_prompt": prompt, **overrides}


def test_mt_bench_skips_failed_judgements(tmp_path: Path) -> None:
    folder = mt_bench_folder(tmp_path, judgement(score=-1), judgement(model=MIXTRAL, score=4))
    calls = list(import_calls("mt-bench", folder))
    assert [(c.model, c.grade, c.output_tokens) for c in calls] == [(MIXTRAL, 1 / 3, 1)]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"question_id": 7}, None),
        ({"score": 11}, "score"),
        ({"turn": 2}, "user_prompt"),
        ({"judge": "gpt-4"}, "judge"),
    ],
)
def test_mt_bench_bad_judgement(tmp_path: Path, bad: dict[str, Any], field: str | None) -> None:
    folder = mt_bench_folder(tmp_path, judgement(), judgement(**bad))
    with pytest.raises(DataFileError, match=r"mt_bench_judgements\.jsonl:2: ") as info:
        list(import_calls("mt-bench", folder))
    assert info.value.field == field


def test_mt_bench_missing_question_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"mt_bench_question\.jsonl: file not found"):
        list(import_calls("mt-bench", tmp_path))


def test_every_bundled_set_builds_a_request_table() -> None:
    """Each import joins into one table per set: no request id with two prompts."""
    from training.dataset import build_table

    for fmt in ("mmlu-pro-wide", "llmrouter", "routellm", "mt-bench"):
        table = build_table(imported(fmt), ladder(fmt))
        assert len(table) > 0
