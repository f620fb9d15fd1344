"""The routed client against a local fake of the Messages API, through the real SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from fake_anthropic import FakeAnthropic, FixedDecider, count_tokens, fake_ladder, user

from router_model.calls import GradedCall, parse_call, read_calls
from router_model.errors import ConfigError, InvalidInputError
from router_model.router import DecisionRequest, Router
from router_model.text import flatten
from router_model.tiers import Tier, TierLadder
from serving.anthropic_client import (
    AsyncRoutedAnthropic,
    InProcessDecider,
    MemorySink,
    RoutedAnthropic,
)

LADDER = fake_ladder()


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(answer=lambda model, body: f"answer from {model}").start()
    yield server
    server.stop()


def routed(fake: FakeAnthropic, decider: Any, **options: Any) -> RoutedAnthropic:
    return RoutedAnthropic(decider, fake.client(), **options)


def test_routes_to_the_decided_tier_and_logs_the_call(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    client = routed(fake, FixedDecider(LADDER, "medium"), log=sink)
    reply = client.messages.create(
        max_tokens=64,
        system="Answer briefly.",
        messages=user("What is the capital of France?"),
        quality_target=0.9,
        tags={"endpoint": "faq"},
        request_id="req-1",
    )
    assert (reply.tier, reply.model, reply.rule) == ("medium", "fake-medium", "fixed")
    assert reply.text == "answer from fake-medium"
    assert reply.message.content[0].type == "text"
    assert reply.decision is not None and reply.decision.request_id == "req-1"
    (sent,) = fake.message_calls()
    assert sent.body["model"] == "fake-medium"
    assert sent.body["system"] == "Answer briefly."
    for private in ("quality_target", "max_cost_usd", "tags", "critical", "request_id"):
        assert private not in sent.body

    (call,) = sink.calls
    expected_in = count_tokens("Answer briefly.\nWhat is the capital of France?")
    expected_out = count_tokens("answer from fake-medium")
    assert (call.input_tokens, call.output_tokens) == (expected_in, expected_out)
    assert call.cost_usd == pytest.approx(
        LADDER.by_name("medium").cost_usd(expected_in, expected_out)
    )
    assert reply.cost_usd == pytest.approx(call.cost_usd)
    assert (call.request_id, call.model, call.tier) == ("req-1", "fake-medium", "medium")
    assert call.system == "Answer briefly." and call.messages[0].content.startswith("What")
    assert call.tags == {"endpoint": "faq"}
    assert call.latency_ms is not None and call.latency_ms > 0
    assert call.grade is None and call.grader is None
    assert call.extra["attempt"] == 1 and call.extra["answer"] == "answer from fake-medium"
    assert call.extra["decision"] == {
        "tier": "medium",
        "rule": "fixed",
        "p_success": {"small": 0.5, "medium": 0.5, "large": 0.5},
        "router_version": "fixed-1",
    }
    # The record is a valid line of the graded-call log, and reads back unchanged.
    assert parse_call(json.loads(json.dumps(call.to_json()))) == call


@pytest.fixture(scope="module")
def router(logreg_router_dir: Path) -> Router:
    return Router.load(logreg_router_dir)


def test_real_router_routes_each_request_to_its_predicted_tier(
    fake: FakeAnthropic, router: Router, mmlu_calls: Path
) -> None:
    serving_ladder = TierLadder(
        tiers=tuple(
            Tier(t.name, f"served-{t.name}", t.input_usd_per_mtok, t.output_usd_per_mtok)
            for t in router.ladder.tiers
        )
    )
    sink = MemorySink()
    client = routed(fake, InProcessDecider(router, ladder=serving_ladder), log=sink)
    prompts = sorted({c.prompt for c in read_calls(mmlu_calls) if c.prompt}, key=len)
    picked = prompts[:: max(len(prompts) // 12, 1)][:12]
    seen = set()
    for prompt, target in zip(picked, [0.8, 0.95, 0.99] * 4, strict=False):
        reply = client.messages.create(max_tokens=16, messages=user(prompt), quality_target=target)
        (expected,) = router.decide([DecisionRequest(flatten(prompt), quality_target=target)])
        assert reply.tier == expected.tier and reply.rule == expected.rule
        assert reply.decision is not None
        assert reply.decision.p_success == pytest.approx(dict(expected.p_success))
        assert fake.message_calls()[-1].body["model"] == f"served-{expected.tier}"
        seen.add(reply.tier)
    assert len(sink.calls) == len(picked)
    assert {c.model for c in sink.calls} == {f"served-{t}" for t in seen}
    print(f"\nreal router routed {len(picked)} MMLU-Pro prompts to tiers {sorted(seen)}")


def test_serving_ladder_must_match_the_router(router: Router) -> None:
    with pytest.raises(ConfigError, match="must equal"):
        InProcessDecider(router, ladder=TierLadder(tiers=LADDER.tiers[:2]))


def test_explicit_model_is_passed_through_unrouted(fake: FakeAnthropic) -> None:
    sink, decider = MemorySink(), FixedDecider(LADDER, "small")
    client = routed(fake, decider, log=sink)
    named = client.messages.create(model="fake-large", max_tokens=8, messages=user("hi"))
    other = client.messages.create(model="someone-else", max_tokens=8, messages=user("hi"))
    assert decider.requests == []
    assert [c.body["model"] for c in fake.message_calls()] == ["fake-large", "someone-else"]
    assert (named.tier, named.rule, named.decision) == ("large", "explicit_model", None)
    assert other.tier is None and other.cost_usd is None
    large, unknown = sink.calls
    assert large.tier == "large" and large.cost_usd is not None and large.extra["decision"] is None
    assert unknown.tier is None and unknown.cost_usd is None and unknown.input_tokens == 1


def test_auto_model_routes(fake: FakeAnthropic) -> None:
    client = routed(fake, FixedDecider(LADDER, "large"))
    assert client.messages.create(model="auto", max_tokens=8, messages=user("x")).tier == "large"


def test_sdk_retries_rate_limits_and_overloads(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    client = RoutedAnthropic(
        FixedDecider(LADDER, "small"), fake.client(max_retries=0), log=sink, max_retries=3
    )
    fake.fail_next(429, retry_after=0.2)
    fake.fail_next(529)
    started = time.perf_counter()
    reply = client.messages.create(max_tokens=8, messages=user("hello"))
    elapsed = time.perf_counter() - started
    assert reply.text == "answer from fake-small"
    assert len(fake.message_calls()) == 3  # 429, 529, then success
    assert elapsed >= 0.2 + 0.3  # retry-after honoured, then exponential backoff (0.5 s ± 25%)
    assert len(sink.calls) == 1 and reply.attempts[0].latency_ms >= 500
    retry_counts = [c.headers.get("x-stainless-retry-count") for c in fake.message_calls()]
    assert retry_counts == ["0", "1", "2"]


def test_without_retries_the_sdk_error_reaches_the_caller(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    client = routed(fake, FixedDecider(LADDER, "small"), log=sink)
    fake.fail_next(529)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(max_tokens=8, messages=user("hello"))
    assert caught.value.status_code == 529
    fake.fail_next(429, retry_after=0.01)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(max_tokens=8, messages=user("hello"))
    assert sink.calls == []


class BrokenSink:
    def __init__(self, raises: bool) -> None:
        self.raises = raises

    def submit(self, call: GradedCall) -> bool:
        if self.raises:
            raise OSError("disk full")
        return False


@pytest.mark.parametrize("raises", [True, False])
def test_a_failing_log_never_fails_the_call(fake: FakeAnthropic, raises: bool) -> None:
    client = routed(fake, FixedDecider(LADDER, "small"), log=BrokenSink(raises))
    reply = client.messages.create(max_tokens=8, messages=user("hello"))
    assert reply.text == "answer from fake-small"
    assert (client.call_log.submitted, client.call_log.dropped) == (0, 1)


def test_streaming_is_refused_before_any_call(fake: FakeAnthropic) -> None:
    client = routed(fake, FixedDecider(LADDER, "small"))
    with pytest.raises(InvalidInputError, match="stream"):
        client.messages.create(max_tokens=8, messages=user("hello"), stream=True)
    assert fake.requests == []


def test_content_blocks_and_system_blocks_are_read(fake: FakeAnthropic) -> None:
    sink, decider = MemorySink(), FixedDecider(LADDER, "small")
    client = routed(fake, decider, log=sink)
    client.messages.create(
        max_tokens=8,
        system=[{"type": "text", "text": "Be terse."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "First question"}]},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": "Second question"},
        ],
    )
    (request,) = decider.requests
    assert request.text.turns == 2 and request.text.has_system
    assert "user: Second question" in request.text.text
    assert sink.calls[0].system == "Be terse." and len(sink.calls[0].messages) == 3


def test_async_client_routes_and_logs(fake: FakeAnthropic) -> None:
    sink = MemorySink()

    async def main() -> list[str | None]:
        async with AsyncRoutedAnthropic(
            FixedDecider(LADDER, "medium"), fake.async_client(), log=sink, max_retries=2
        ) as client:
            fake.fail_next(429, retry_after=0.01)
            replies = await asyncio.gather(
                *(client.messages.create(max_tokens=8, messages=user(f"q{i}")) for i in range(4))
            )
        return [r.tier for r in replies]

    assert asyncio.run(main()) == ["medium"] * 4
    assert len(sink.calls) == 4 and len(fake.message_calls()) == 5
    assert len({c.request_id for c in sink.calls}) == 4
