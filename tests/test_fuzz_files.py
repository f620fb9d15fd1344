"""Every input file the CLI reads: arbitrary content is accepted or refused with a
project error naming the file, never another exception."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_model.calls import KNOWN_FIELDS, read_calls
from router_model.errors import TierwiseError
from router_model.jsonl import read_records
from router_model.requests import parse_request
from router_model.tiers import load_tiers

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
call_keys = st.sampled_from(sorted(KNOWN_FIELDS))
call_like = st.dictionaries(call_keys, json_values, max_size=10)
lines = st.lists(
    st.one_of(
        call_like.map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=80),
        st.just(
            '{"request_id": "r", "timestamp": "2026-01-01T00:00:00Z", "prompt": "hi", '
            '"model": "m", "grade": 1}'
        ),
    ),
    max_size=6,
)


def _check(path: Path, read: object) -> None:
    try:
        read(path)  # type: ignore[operator]
    except TierwiseError as exc:
        assert str(path) in str(exc) or path.name in str(exc), exc


@SETTINGS
@given(content=lines)
def test_graded_call_files(content: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calls.jsonl"
        path.write_text("\n".join(content), encoding="utf-8")
        _check(path, read_calls)


@SETTINGS
@given(content=st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=60)), max_size=6))
def test_request_files_for_predict(content: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.jsonl"
        path.write_text("\n".join(content), encoding="utf-8")
        _check(path, lambda p: read_records(p, parse_request, "request"))


toml_scalars = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=8).map(json.dumps),
)
tier_block = st.builds(
    lambda name, price_in, price_out, model: (
        f"[[tiers]]\nname = {name}\ninput_usd_per_mtok = {price_in}\n"
        f"output_usd_per_mtok = {price_out}\nmodel = {model}\n"
    ),
    toml_scalars,
    toml_scalars,
    toml_scalars,
    toml_scalars,
)


@SETTINGS
@given(
    grade=toml_scalars,
    blocks=st.lists(tier_block, max_size=4),
    junk=st.text(max_size=40),
)
def test_tier_files(grade: str, blocks: list[str], junk: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiers.toml"
        path.write_text(f"pass_grade = {grade}\n" + "".join(blocks) + junk, encoding="utf-8")
        _check(path, load_tiers)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("mmlu-pro-wide", "graded_wide.csv.gz"),
        ("llmrouter", "train.jsonl.gz"),
        ("routellm", "binary_correctness.csv.gz"),
        ("mt-bench", "judgments.jsonl.gz"),
    ],
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.lists(st.text(max_size=60), max_size=5))
def test_importers(fmt: str, name: str, content: list[str], tmp_path: Path) -> None:
    from training.importers import import_calls

    path = tmp_path / name
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(content))
    try:
        for _ in import_calls(fmt, path):
            pass
    except TierwiseError as exc:
        assert str(tmp_path) in str(exc), exc  # names the file at fault
