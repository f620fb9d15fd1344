"""The graded-call log: one LLM call per JSON line (see DESIGN.md).

This is the interchange format between importers, the call-log writer and
training, so it lives beside the router definition that every side imports.
Parsing is strict: a malformed line raises ``DataFileError`` naming the file and
line; nothing is silently dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from router_model.errors import DataFileError, InvalidInputError
from router_model.jsonl import iter_records
from router_model.text import Message, RequestText, flatten, parse_messages

KNOWN_FIELDS = frozenset(
    {
        "request_id",
        "timestamp",
        "prompt",
        "messages",
        "system",
        "model",
        "tier",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "grade",
        "grader",
        "latency_ms",
        "tags",
    }
)


@dataclass(frozen=True)
class GradedCall:
    """One LLM call, possibly graded. ``origin`` (``path:line``) is not serialised."""

    request_id: str
    timestamp: datetime
    model: str
    prompt: str | None = None
    messages: tuple[Message, ...] = ()
    system: str | None = None
    tier: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    grade: float | None = None
    grader: str | None = None
    latency_ms: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    origin: str | None = field(default=None, compare=False)

    def request_text(self) -> RequestText:
        return flatten(self.prompt, self.messages, self.system)

    def to_json(self) -> dict[str, Any]:
        """The record as DESIGN.md's JSON object; unset optional fields are omitted."""
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
        }
        if self.prompt is not None:
            out["prompt"] = self.prompt
        else:
            out["messages"] = [{"role": m.role, "content": m.content} for m in self.messages]
        if self.system is not None:
            out["system"] = self.system
        out["model"] = self.model
        optional = {
            "tier": self.tier,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "grader": self.grader,
            "latency_ms": self.latency_ms,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out["grade"] = self.grade
        if self.tags:
            out["tags"] = dict(self.tags)
        out.update(self.extra)
        return out


def parse_call(obj: Any) -> GradedCall:
    """Validate one decoded JSON object; raises ``InvalidInputError`` naming the field."""
    if not isinstance(obj, Mapping):
        raise InvalidInputError("a call must be a JSON object")
    request_id = _required_str(obj, "request_id")
    model = _required_str(obj, "model")
    timestamp = _parse_timestamp(obj.get("timestamp"))
    prompt, messages, system = _parse_request(obj)
    return GradedCall(
        request_id=request_id,
        timestamp=timestamp,
        model=model,
        prompt=prompt,
        messages=messages,
        system=system,
        tier=_optional_str(obj, "tier"),
        input_tokens=_optional_count(obj, "input_tokens"),
        output_tokens=_optional_count(obj, "output_tokens"),
        cost_usd=_optional_number(obj, "cost_usd", minimum=0.0),
        grade=_optional_number(obj, "grade", minimum=0.0, maximum=1.0),
        grader=_optional_str(obj, "grader"),
        latency_ms=_optional_number(obj, "latency_ms", minimum=0.0),
        tags=_parse_tags(obj.get("tags")),
        extra={k: v for k, v in obj.items() if k not in KNOWN_FIELDS},
    )


def iter_calls(path: str | Path) -> Iterator[GradedCall]:
    """Yield the calls of a JSONL file, raising on the first malformed line."""
    for line_no, call in iter_records(path, parse_call):
        yield replace(call, origin=f"{path}:{line_no}")


def read_calls(path: str | Path) -> list[GradedCall]:
    """All calls of a file; an empty file is an error, since it can train nothing."""
    calls = list(iter_calls(path))
    if not calls:
        raise DataFileError(str(path), None, "no calls in file (it is empty)")
    return calls


def write_calls(path: str | Path, calls: Iterable[GradedCall]) -> int:
    """Write calls as JSON Lines; returns how many were written."""
    with Path(path).open("w", encoding="utf-8") as handle:
        return dump_calls(handle, calls)


def dump_calls(handle: IO[str], calls: Iterable[GradedCall]) -> int:
    count = 0
    for call in calls:
        handle.write(json.dumps(call.to_json(), ensure_ascii=False) + "\n")
        count += 1
    return count


def _parse_request(obj: Mapping[str, Any]) -> tuple[str | None, tuple[Message, ...], str | None]:
    has_prompt = obj.get("prompt") is not None
    has_messages = obj.get("messages") is not None
    if has_prompt == has_messages:
        raise InvalidInputError("exactly one of 'prompt' or 'messages' is required", "prompt")
    system = _optional_str(obj, "system")
    if has_prompt:
        prompt = obj["prompt"]
        if not isinstance(prompt, str):
            raise InvalidInputError("must be a string", "prompt")
        return prompt, (), system
    return None, parse_messages(obj["messages"]), system


def _parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidInputError("required RFC 3339 string", "timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"not an RFC 3339 time: {value!r}", "timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidInputError(f"needs a UTC offset (e.g. 'Z'): {value!r}", "timestamp")
    return parsed


def _parse_tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInputError("must be an object of strings", "tags")
    return dict(value)


def _required_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise InvalidInputError("is required", key)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"must be a non-empty string, got {value!r}", key)
    return value


def _optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {value!r}", key)
    return value


def _optional_count(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"must be a non-negative integer, got {value!r}", key)
    return value


def _optional_number(
    obj: Mapping[str, Any], key: str, minimum: float, maximum: float = math.inf
) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"must be a number, got {value!r}", key)
    if not minimum <= value <= maximum:
        bound = f"[{minimum:g}, {maximum:g}]" if math.isfinite(maximum) else f">= {minimum:g}"
        raise InvalidInputError(f"must be in {bound}, got {value!r}", key)
    return float(value)
