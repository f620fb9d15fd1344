"""An LLM judge: a Claude model grades shipped answers against a fixed rubric.

Validators only catch answers that break a contract; most requests have none.
A judge grades the rest, on a sample, so the call log keeps gaining labels
for every tier from live traffic. The judge's own call costs money and is
logged as a call of its own (tag ``role=judge``, its own request id, so it
never mixes with the request it graded); the answer it graded carries the
grade with grader ``judge:<model>``.

Inline grading (:meth:`Judge.maybe_grade`) adds a model call to the latency of
sampled requests. Where latency does not matter, grade logged calls later
through the Message Batches API (:meth:`Judge.submit_batch`,
:meth:`Judge.batch_results`), which is billed at a discount: set
``batch_price_factor`` to what your contract says.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from anthropic.types import Message, TextBlock

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from router_model.text import Message as Turn
from router_model.tiers import Tier
from serving.anthropic_client.escalation import strip_fence
from serving.anthropic_client.logging_calls import CallLogger, CallSink, build_call

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)

RUBRIC = """You grade how well an answer serves a request. Read the request and the answer, then
score the answer on this scale:
1.0  correct, complete and directly usable;
0.7  correct, with minor omissions or flaws that do not mislead;
0.3  partly correct, or with an error or omission that matters;
0.0  wrong, off-topic, unsafe, or a refusal of a reasonable request.
Judge correctness first, then completeness; ignore style and length.
Reply with only a JSON object: {"grade": <number from 0 to 1>, "reason": "<one sentence>"}"""
DEFAULT_SAMPLE_FRACTION = 0.05
DEFAULT_MAX_TOKENS = 300
JUDGE_KEY, JUDGE_ROLE = "role", "judge"


@dataclass(frozen=True)
class Verdict:
    grade: float
    reason: str
    grader: str


@dataclass(frozen=True)
class JudgeBatch:
    """A submitted batch and the calls it grades (``custom_id`` ``call-<index>``)."""

    id: str
    calls: tuple[GradedCall, ...]


class _JudgeCore:
    """Prompting, sampling, parsing and logging shared by the sync and async judges."""

    def __init__(
        self,
        tier: Tier,
        *,
        log: CallSink | None = None,
        sample_fraction: float = DEFAULT_SAMPLE_FRACTION,
        seed: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_price_factor: float = 1.0,
    ) -> None:
        if not 0.0 <= sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in [0, 1], got {sample_fraction}")
        self.tier = tier
        self.grader = f"judge:{tier.model}"
        self.sample_fraction = sample_fraction
        self.max_tokens = max_tokens
        self.batch_price_factor = batch_price_factor
        self.logger = CallLogger(log)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def sampled(self) -> bool:
        """Whether the next shipped answer is to be graded (seeded, reproducible)."""
        with self._lock:
            return self._rng.random() < self.sample_fraction

    def sample(self, calls: Iterable[GradedCall]) -> list[GradedCall]:
        """A sample of the calls worth grading: ungraded answers, not the judge's own calls."""
        return [c for c in calls if gradable(c) and self.sampled()]

    def params(self, call: GradedCall) -> dict[str, Any]:
        answer = call.extra.get("answer")
        if not isinstance(answer, str):
            raise InvalidInputError("a call to grade needs its answer in extra['answer']", "answer")
        prompt = (
            f"<request>\n{call.request_text().text}\n</request>\n\n<answer>\n{answer}\n</answer>"
        )
        return {
            "model": self.tier.model,
            "max_tokens": self.max_tokens,
            "system": RUBRIC,
            "messages": [{"role": "user", "content": prompt}],
        }

    def conclude(
        self,
        judged: GradedCall,
        message: Message,
        *,
        started: datetime,
        latency_ms: float | None,
        price_factor: float = 1.0,
    ) -> Verdict | None:
        """Log the judge's own call and read its verdict; None when it broke the form."""
        reply = "".join(b.text for b in message.content if isinstance(b, TextBlock))
        verdict = parse_verdict(reply, self.grader)
        params = self.params(judged)
        usage = message.usage
        own = build_call(
            request_id=f"judge-{uuid.uuid4().hex}",
            timestamp=started,
            messages=(Turn("user", params["messages"][0]["content"]),),
            system=RUBRIC,
            model=message.model or self.tier.model,
            tier=self.tier,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            latency_ms=latency_ms,
            tags={**judged.tags, JUDGE_KEY: JUDGE_ROLE},
            extra={
                "judged": {"request_id": judged.request_id, "model": judged.model},
                "answer": reply,
            },
        )
        if price_factor != 1.0 and own.cost_usd is not None:
            own = replace(own, cost_usd=own.cost_usd * price_factor)
        self.logger.submit(own)
        if verdict is None:
            log.warning("judge reply for %s is not a verdict: %.200r", judged.request_id, reply)
        return verdict


class Judge(_JudgeCore):
    """Grades with a blocking ``anthropic.Anthropic`` client; also drives batch grading."""

    def __init__(self, client: anthropic.Anthropic, tier: Tier, **options: Any) -> None:
        super().__init__(tier, **options)
        self.client = client

    def grade(self, call: GradedCall) -> Verdict | None:
        started, clock = datetime.now(UTC), time.perf_counter()
        message: Message = self.client.messages.create(**self.params(call))
        latency_ms = 1000.0 * (time.perf_counter() - clock)
        return self.conclude(call, message, started=started, latency_ms=latency_ms)

    def maybe_grade(self, call: GradedCall) -> Verdict | None:
        return self.grade(call) if self.sampled() else None

    def submit_batch(self, calls: Sequence[GradedCall]) -> JudgeBatch:
        """Queue calls for grading through the Message Batches API."""
        if not calls:
            raise InvalidInputError("a batch needs at least one call", "calls")
        requests = [
            {"custom_id": f"call-{i}", "params": self.params(call)} for i, call in enumerate(calls)
        ]
        batch = self.client.messages.batches.create(requests=cast(Any, requests))
        return JudgeBatch(id=batch.id, calls=tuple(calls))

    def batch_results(
        self,
        batch: JudgeBatch,
        *,
        poll_interval_s: float = 60.0,
        timeout_s: float | None = None,
        resubmit: bool = True,
    ) -> list[GradedCall]:
        """Wait for the batch, log every judge call, and return the graded calls.

        With ``resubmit`` the graded copies also go to the sink, as new lines
        that carry the grade; a store that can update grades in place is
        better served with ``resubmit=False`` and its own update method.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.client.messages.batches.retrieve(batch.id).processing_status != "ended":
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"judge batch {batch.id} still processing after {timeout_s}s")
            time.sleep(poll_interval_s)
        started = datetime.now(UTC)
        graded: dict[int, GradedCall] = {}
        for item in self.client.messages.batches.results(batch.id):
            index = _batch_index(item.custom_id, len(batch.calls))
            if index is None or item.result.type != "succeeded":
                log.warning("judge batch %s: no verdict for %s", batch.id, item.custom_id)
                continue
            judged = batch.calls[index]
            verdict = self.conclude(
                judged,
                item.result.message,
                started=started,
                latency_ms=None,
                price_factor=self.batch_price_factor,
            )
            if verdict is not None:
                graded[index] = with_verdict(judged, verdict)
        out = [graded[i] for i in sorted(graded)]
        for call in out if resubmit else ():
            self.logger.submit(call)
        return out


class AsyncJudge(_JudgeCore):
    """Grades inline for ``AsyncRoutedAnthropic`` with an ``anthropic.AsyncAnthropic`` client."""

    def __init__(self, client: anthropic.AsyncAnthropic, tier: Tier, **options: Any) -> None:
        super().__init__(tier, **options)
        self.client = client

    async def grade(self, call: GradedCall) -> Verdict | None:
        started, clock = datetime.now(UTC), time.perf_counter()
        message: Message = await self.client.messages.create(**self.params(call))
        latency_ms = 1000.0 * (time.perf_counter() - clock)
        return self.conclude(call, message, started=started, latency_ms=latency_ms)

    async def maybe_grade(self, call: GradedCall) -> Verdict | None:
        return await self.grade(call) if self.sampled() else None


def parse_verdict(reply: str, grader: str) -> Verdict | None:
    """``{"grade": 0..1, "reason": ...}`` from the judge's reply, tolerating a code fence."""
    body = strip_fence(reply)
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        obj = json.loads(body[start : end + 1])
    except json.JSONDecodeError:
        return None
    grade = obj.get("grade") if isinstance(obj, dict) else None
    if isinstance(grade, bool) or not isinstance(grade, int | float) or not 0 <= grade <= 1:
        return None
    reason = obj.get("reason")
    return Verdict(float(grade), reason if isinstance(reason, str) else "", grader)


def gradable(call: GradedCall) -> bool:
    """Whether a logged call is an ungraded answer (not a judge's call) with its text."""
    is_judge = call.tags.get(JUDGE_KEY) == JUDGE_ROLE
    return call.grade is None and not is_judge and isinstance(call.extra.get("answer"), str)


def with_verdict(call: GradedCall, verdict: Verdict) -> GradedCall:
    extra = {**call.extra, "judge_reason": verdict.reason}
    return replace(call, grade=verdict.grade, grader=verdict.grader, extra=extra)


def _batch_index(custom_id: str, size: int) -> int | None:
    prefix, _, number = custom_id.partition("-")
    if prefix != "call" or not number.isdigit() or int(number) >= size:
        return None
    return int(number)
