"""The LLM judge: verdicts, its own logged cost, sampling, inline and batch grading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fake_anthropic import (
    FakeAnthropic,
    FixedDecider,
    count_tokens,
    fake_ladder,
    request_text,
    user,
)

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from router_model.text import Message
from serving.anthropic_client import (
    AsyncJudge,
    AsyncRoutedAnthropic,
    Escalation,
    Judge,
    MemorySink,
    RegexValidator,
    RoutedAnthropic,
)
from serving.anthropic_client.judge import RUBRIC, parse_verdict

LADDER = fake_ladder()
JUDGE_TIER = LADDER.by_name("large")
GRADER = "judge:fake-large"


def judge_answers(model: str, body: dict[str, Any]) -> str:
    """The judge grades by whether the answer says Paris; other models answer the question."""
    if body.get("system") == RUBRIC:
        text = body["messages"][0]["content"]
        answer = text.split("<answer>")[1]
        good = "Paris" in answer
        return json.dumps({"grade": 1.0 if good else 0.2, "reason": f"says Paris: {good}"})
    return "Paris" if model == "fake-medium" else "Lyon"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(answer=judge_answers).start()
    yield server
    server.stop()


def answered(answer: str, request_id: str = "r1", model: str = "fake-small") -> GradedCall:
    return GradedCall(
        request_id=request_id,
        timestamp=datetime.now(UTC),
        model=model,
        messages=(Message("user", "Capital of France?"),),
        tier="small",
        tags={"endpoint": "geo"},
        extra={"answer": answer, "attempt": 1},
    )


def test_judge_grades_and_logs_its_own_cost(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    judge = Judge(fake.client(), JUDGE_TIER, log=sink)
    good = judge.grade(answered("Paris"))
    bad = judge.grade(answered("Lyon"))
    assert good is not None and (good.grade, good.grader) == (1.0, GRADER)
    assert bad is not None and bad.grade == 0.2 and bad.reason == "says Paris: False"

    sent = fake.message_calls()[0].body
    assert sent["model"] == "fake-large" and sent["system"] == RUBRIC
    assert "Capital of France?" in sent["messages"][0]["content"]
    own = sink.calls[0]
    assert own.model == "fake-large" and own.tier == "large"
    assert own.request_id.startswith("judge-") and own.request_id != "r1"
    assert own.tags == {"endpoint": "geo", "role": "judge"}
    assert own.grade is None and own.extra["judged"] == {"request_id": "r1", "model": "fake-small"}
    expected_in = count_tokens(request_text(sent))
    expected_out = count_tokens(json.dumps({"grade": 1.0, "reason": "says Paris: True"}))
    assert (own.input_tokens, own.output_tokens) == (expected_in, expected_out)
    assert own.cost_usd == pytest.approx(JUDGE_TIER.cost_usd(expected_in, expected_out))


def test_unreadable_verdicts_are_none_but_still_cost(fake: FakeAnthropic) -> None:
    fake.answer = lambda model, body: "It looks fine to me."
    sink = MemorySink()
    assert Judge(fake.client(), JUDGE_TIER, log=sink).grade(answered("Paris")) is None
    assert len(sink.calls) == 1 and (sink.calls[0].cost_usd or 0) > 0


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ('{"grade": 0.7, "reason": "ok"}', 0.7),
        ('```json\n{"grade": 1, "reason": "ok"}\n```', 1.0),
        ('Verdict: {"grade": 0, "reason": "wrong"}', 0.0),
        ('{"grade": 1.5, "reason": "too high"}', None),
        ('{"grade": true}', None),
        ('{"reason": "no grade"}', None),
        ("[1, 2]", None),
    ],
)
def test_parse_verdict(reply: str, grade: float | None) -> None:
    verdict = parse_verdict(reply, GRADER)
    assert (verdict.grade if verdict else None) == grade


def test_a_call_without_its_answer_cannot_be_graded(fake: FakeAnthropic) -> None:
    call = GradedCall(request_id="r", timestamp=datetime.now(UTC), model="m", prompt="q")
    with pytest.raises(InvalidInputError, match="answer"):
        Judge(fake.client(), JUDGE_TIER).grade(call)


def test_sample_fraction_is_respected_and_seeded(fake: FakeAnthropic) -> None:
    calls = [answered("Paris", request_id=f"r{i}") for i in range(2000)]
    first = Judge(fake.client(), JUDGE_TIER, sample_fraction=0.1, seed=7).sample(calls)
    again = Judge(fake.client(), JUDGE_TIER, sample_fraction=0.1, seed=7).sample(calls)
    other = Judge(fake.client(), JUDGE_TIER, sample_fraction=0.1, seed=8).sample(calls)
    assert [c.request_id for c in first] == [c.request_id for c in again]
    assert [c.request_id for c in first] != [c.request_id for c in other]
    assert 160 <= len(first) <= 240  # 200 expected; binomial sd ≈ 13
    assert Judge(fake.client(), JUDGE_TIER, sample_fraction=0.0).sample(calls) == []
    everything = Judge(fake.client(), JUDGE_TIER, sample_fraction=1.0)
    graded = replace(calls[0], grade=1.0)
    judges = replace(calls[1], tags={"role": "judge"})
    assert everything.sample([graded, judges, calls[2]]) == [calls[2]]
    with pytest.raises(ValueError):
        Judge(fake.client(), JUDGE_TIER, sample_fraction=1.5)


def test_routed_client_has_shipped_answers_judged(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    judge = Judge(fake.client(), JUDGE_TIER, log=sink, sample_fraction=0.5, seed=3)
    client = RoutedAnthropic(FixedDecider(LADDER, "small"), fake.client(), log=sink, judge=judge)
    for i in range(20):
        client.messages.create(
            max_tokens=16, messages=user("Capital of France?"), request_id=f"q{i}"
        )
    answers = [c for c in sink.calls if c.tags.get("role") != "judge"]
    judged = [c for c in answers if c.grader == GRADER]
    judge_calls = [c for c in sink.calls if c.tags.get("role") == "judge"]
    assert len(answers) == 20 and 0 < len(judged) < 20
    assert len(judge_calls) == len(judged)
    assert all(c.grade == 0.2 and c.extra["judge_reason"] == "says Paris: False" for c in judged)
    assert all(c.grade is None for c in answers if c not in judged)
    assert {c.extra["judged"]["request_id"] for c in judge_calls} == {c.request_id for c in judged}


def test_validator_grades_take_precedence_over_the_judge(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    judge = Judge(fake.client(), JUDGE_TIER, log=sink, sample_fraction=1.0)
    escalation = Escalation(validators=(RegexValidator("Paris"),))
    client = RoutedAnthropic(
        FixedDecider(LADDER, "small"), fake.client(), log=sink, judge=judge, escalation=escalation
    )
    reply = client.messages.create(max_tokens=16, messages=user("Capital of France?"))
    assert reply.tier == "medium"
    assert [c.grader for c in sink.calls] == ["validator:regex", "validator:regex"]


def test_batch_mode_grades_logged_calls(fake: FakeAnthropic) -> None:
    fake.batch_polls = 3
    sink = MemorySink()
    judge = Judge(fake.client(), JUDGE_TIER, log=sink, batch_price_factor=0.5)
    calls = [answered("Paris", "b0"), answered("Lyon", "b1"), answered("Paris, France", "b2")]
    batch = judge.submit_batch(calls)
    created = [r for r in fake.requests if r.path == "/v1/messages/batches"]
    assert len(created) == 1 and fake.message_calls() == []
    requests = created[0].body["requests"]
    assert [r["custom_id"] for r in requests] == ["call-0", "call-1", "call-2"]
    assert all(r["params"]["system"] == RUBRIC for r in requests)

    graded = judge.batch_results(batch, poll_interval_s=0.01, timeout_s=5)
    assert [(c.request_id, c.grade, c.grader) for c in graded] == [
        ("b0", 1.0, GRADER),
        ("b1", 0.2, GRADER),
        ("b2", 1.0, GRADER),
    ]
    polls = [r for r in fake.requests if r.method == "GET" and r.path.endswith(batch.id)]
    assert len(polls) >= 3
    own = [c for c in sink.calls if c.tags.get("role") == "judge"]
    assert len(own) == 3 and all(c.latency_ms is None for c in own)
    for c in own:
        full = JUDGE_TIER.cost_usd(c.input_tokens or 0, c.output_tokens or 0)
        assert c.cost_usd == pytest.approx(0.5 * full)
    assert [c for c in sink.calls if c.grader == GRADER] == graded  # labels go back to the log

    again = judge.submit_batch(calls[:1])
    quiet = judge.batch_results(again, poll_interval_s=0.01, timeout_s=5, resubmit=False)
    assert len(quiet) == 1 and len([c for c in sink.calls if c.grader == GRADER]) == 3


def test_batch_timeout(fake: FakeAnthropic) -> None:
    fake.batch_polls = 1000
    judge = Judge(fake.client(), JUDGE_TIER)
    batch = judge.submit_batch([answered("Paris")])
    with pytest.raises(TimeoutError):
        judge.batch_results(batch, poll_interval_s=0.01, timeout_s=0.05)


def test_async_judge_with_the_async_client(fake: FakeAnthropic) -> None:
    sink = MemorySink()

    async def main() -> None:
        judge_client = fake.async_client()
        judge = AsyncJudge(judge_client, JUDGE_TIER, log=sink, sample_fraction=1.0)
        async with AsyncRoutedAnthropic(
            FixedDecider(LADDER, "medium"), fake.async_client(), log=sink, judge=judge
        ) as client:
            reply = await client.messages.create(max_tokens=8, messages=user("Capital?"))
            assert reply.text == "Paris"
        await judge_client.close()

    asyncio.run(main())
    judge_call, answer = sink.calls
    assert judge_call.tags["role"] == "judge" and (answer.grade, answer.grader) == (1.0, GRADER)
