"""Escalation: when a cheap tier's answer is not good enough, ask the next tier up.

Three independent switches, all off by default:

* **validators** (fallback chain): the answer must pass every validator (JSON
  schema, regex, any function); a failure sends the request one tier up, until
  the top tier, whose answer is returned whatever it is;
* **confidence gate**: tiers below the top answer in a fixed JSON form
  ``{"answer": ..., "confidence": 0..1}`` and are escalated below a threshold
  (or when they do not keep to the form); the caller gets the bare answer;
* **handoff**: the next tier is shown the rejected attempt and the reason, so
  it can finish the work instead of starting over.

Every rejection is a routing label: the rejected attempt is logged with grade
0 by ``validator:<name>``, so the router learns which requests that tier
cannot serve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from serving.anthropic_client._schema import schema_checker

CONFIDENCE_GATE = "confidence_gate"
GATE_INSTRUCTION = (
    "Reply with only a JSON object of the form "
    '{"answer": <your complete answer>, "confidence": <number from 0 to 1>}, '
    "where confidence is the probability that your answer is correct and complete."
)
HANDOFF_TEMPLATE = (
    "An earlier attempt at this request was rejected.\n"
    "<rejected_attempt>\n{answer}\n</rejected_attempt>\n"
    "Reason for rejection: {reason}\n"
    "Keep what is right in it, fix what is wrong, and reply with the complete final answer."
)
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


@runtime_checkable
class Validator(Protocol):
    """Checks an answer; returns why it is rejected, or None to accept it."""

    @property
    def name(self) -> str: ...

    def check(self, answer: str) -> str | None: ...


class JsonSchemaValidator:
    """The answer must be JSON (a fenced code block is accepted) valid under ``schema``."""

    def __init__(self, schema: Mapping[str, Any], name: str = "json_schema") -> None:
        self._name = name
        self._check = schema_checker(schema)

    @property
    def name(self) -> str:
        return self._name

    def check(self, answer: str) -> str | None:
        try:
            value = json.loads(strip_fence(answer))
        except json.JSONDecodeError as exc:
            return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        return self._check(value)


class RegexValidator:
    """The answer must contain a match of ``pattern`` (or match it whole)."""

    def __init__(self, pattern: str | re.Pattern[str], name: str = "regex", *, full: bool = False):
        self._name = name
        self._pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self._full = full

    @property
    def name(self) -> str:
        return self._name

    def check(self, answer: str) -> str | None:
        text = answer.strip()
        found = self._pattern.fullmatch(text) if self._full else self._pattern.search(text)
        if found:
            return None
        how = "match" if self._full else "contain a match of"
        return f"answer does not {how} /{self._pattern.pattern}/"


class CallableValidator:
    """Any predicate over the answer text; ``reason`` explains a rejection."""

    def __init__(self, predicate: Callable[[str], bool], name: str, reason: str | None = None):
        self._name = name
        self._predicate = predicate
        self._reason = reason or f"answer rejected by {name}"

    @property
    def name(self) -> str:
        return self._name

    def check(self, answer: str) -> str | None:
        return None if self._predicate(answer) else self._reason


@dataclass(frozen=True)
class Escalation:
    """Which safeguards run on each attempt; the default runs none."""

    validators: tuple[Validator, ...] = ()
    confidence_threshold: float | None = None
    handoff: bool = False

    def __post_init__(self) -> None:
        t = self.confidence_threshold
        if t is not None and not 0.0 <= t <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {t}")

    @property
    def enabled(self) -> bool:
        return bool(self.validators) or self.confidence_threshold is not None

    @property
    def validator_grader(self) -> str | None:
        """Who grades an answer every validator accepted."""
        if not self.validators:
            return None
        return "validator:" + "+".join(v.name for v in self.validators)


@dataclass(frozen=True)
class Assessment:
    """What the safeguards made of one attempt."""

    answer: str
    confidence: float | None
    rejection: str | None
    grade: float | None
    grader: str | None

    @property
    def accepted(self) -> bool:
        return self.rejection is None


def assess(policy: Escalation, text: str, *, gated: bool) -> Assessment:
    """Unwrap a gated reply, then apply the gate and the validators in order."""
    answer: str = text
    confidence: float | None = None
    if gated and policy.confidence_threshold is not None:
        parsed = parse_gated(text)
        if parsed is None:
            return _rejected(text, None, CONFIDENCE_GATE, "reply is not in the required JSON form")
        answer, confidence = parsed
        if confidence < policy.confidence_threshold:
            reason = f"confidence {confidence:.2f} is below {policy.confidence_threshold:.2f}"
            return _rejected(answer, confidence, CONFIDENCE_GATE, reason)
    for validator in policy.validators:
        problem = validator.check(answer)
        if problem is not None:
            return _rejected(answer, confidence, validator.name, problem)
    grader = policy.validator_grader
    grade = 1.0 if grader is not None else None
    return Assessment(answer, confidence, rejection=None, grade=grade, grader=grader)


def parse_gated(text: str) -> tuple[str, float] | None:
    """``(answer, confidence)`` from a gated reply, or None when it broke the form."""
    try:
        obj = json.loads(strip_fence(text))
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            obj = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            return None
    if not isinstance(obj, dict) or "answer" not in obj:
        return None
    confidence = obj.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return None
    answer = obj["answer"]
    text_answer = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    return text_answer, min(max(float(confidence), 0.0), 1.0)


def handoff_instruction(answer: str, reason: str) -> str:
    return HANDOFF_TEMPLATE.format(answer=answer, reason=reason)


def with_instructions(system: Any, instructions: Iterable[str]) -> Any:
    """The ``system`` parameter with instructions appended, keeping its shape.

    The system prompt rather than extra turns carries them, so that requests
    ending in an assistant prefill or a tool result stay valid.
    """
    extra = [i for i in instructions if i]
    if not extra:
        return system
    if system is None or system == "":
        return "\n\n".join(extra)
    if isinstance(system, str):
        return "\n\n".join([system, *extra])
    return [*system, *({"type": "text", "text": i} for i in extra)]


def strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text.strip()


def _rejected(answer: str, confidence: float | None, name: str, reason: str) -> Assessment:
    return Assessment(answer, confidence, rejection=reason, grade=0.0, grader=f"validator:{name}")
