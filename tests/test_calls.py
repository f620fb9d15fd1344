"""The graded-call JSONL format: round trip and precise errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_model.calls import read_calls, write_calls
from router_model.errors import DataFileError

GOOD = {
    "request_id": "r1",
    "timestamp": "2025-03-01T12:00:00Z",
    "prompt": "What is 2 + 2?",
    "model": "claude-haiku-4-5",
    "input_tokens": 12,
    "output_tokens": 3,
    "grade": 1.0,
    "grader": "exact_match",
    "tags": {"endpoint": "support-bot"},
}


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    messages = {
        **GOOD,
        "request_id": "r2",
        "prompt": None,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "system": "Be brief.",
        "grade": None,
        "custom": {"kept": True},
    }
    calls = read_calls(_write(tmp_path, GOOD, messages))
    out = tmp_path / "again.jsonl"
    write_calls(out, calls)
    again = read_calls(out)
    assert again == calls
    assert again[1].request_text().text == "Be brief.\n\nHi"
    assert again[1].extra == {"custom": {"kept": True}}
    assert again[0].origin == f"{out}:1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r":2: malformed JSON"),
        ({**GOOD, "grade": 1.5}, r":2: field 'grade': must be in \[0, 1\], got 1.5"),
        ({**GOOD, "grade": -0.1}, r":2: field 'grade': must be in \[0, 1\]"),
        ({k: v for k, v in GOOD.items() if k != "model"}, r":2: field 'model': is required"),
        ({k: v for k, v in GOOD.items() if k != "timestamp"}, r":2: field 'timestamp'"),
        ({**GOOD, "timestamp": "yesterday"}, r":2: field 'timestamp': not an RFC 3339"),
        ({**GOOD, "prompt": None}, r":2: field 'prompt': exactly one of"),
        ({**GOOD, "messages": [{"role": "user", "content": "x"}]}, r"exactly one of"),
        ({**GOOD, "input_tokens": -3}, r":2: field 'input_tokens'"),
        ({**GOOD, "tags": {"a": 1}}, r":2: field 'tags'"),
        ([1, 2], r":2: a call must be a JSON object"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path: Path, line: object, message: str) -> None:
    path = _write(tmp_path, GOOD, line)
    with pytest.raises(DataFileError, match=message) as info:
        read_calls(path)
    assert info.value.path == str(path)
    assert info.value.line == 2


def test_bad_message_role_names_the_element(tmp_path: Path) -> None:
    bad = {**GOOD, "prompt": None, "messages": [{"role": "robot", "content": "x"}]}
    with pytest.raises(DataFileError, match=r"field 'messages\[0\]': role must be one of"):
        read_calls(_write(tmp_path, bad))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataFileError, match="empty"):
        read_calls(empty)
    with pytest.raises(DataFileError, match="file not found"):
        read_calls(tmp_path / "absent.jsonl")
