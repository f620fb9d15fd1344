"""Escalation: validators and the fallback chain, the confidence gate, handoff, metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic, FixedDecider, count_tokens, fake_ladder, user
from prometheus_client import CollectorRegistry

from serving.anthropic_client import (
    CallableValidator,
    Escalation,
    JsonSchemaValidator,
    MemorySink,
    RegexValidator,
    RoutedAnthropic,
    RoutingMetrics,
)
from serving.anthropic_client._schema import schema_checker, subset_checker
from serving.anthropic_client.escalation import GATE_INSTRUCTION, handoff_instruction

LADDER = fake_ladder()
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


def client_for(
    fake: FakeAnthropic, tier: str, escalation: Escalation, **options: Any
) -> tuple[RoutedAnthropic, MemorySink]:
    sink = MemorySink()
    decider = options.pop("decider", None) or FixedDecider(LADDER, tier)
    return RoutedAnthropic(decider, fake.client(), log=sink, escalation=escalation, **options), sink


def by_model(**answers: str) -> Any:
    return lambda model, body: answers[model.removeprefix("fake-")]


def test_failed_validation_escalates_and_labels_every_attempt(fake: FakeAnthropic) -> None:
    fake.answer = by_model(
        small="Paris, about 2 million", medium='{"city": "Paris", "population": 2102650}'
    )
    client, sink = client_for(fake, "small", Escalation(validators=(JsonSchemaValidator(SCHEMA),)))
    reply = client.messages.create(max_tokens=64, messages=user("Population of Paris as JSON?"))
    assert (reply.tier, reply.accepted, reply.escalated) == ("medium", True, True)
    assert reply.decision is not None and reply.decision.tier == "small"
    assert json.loads(reply.text)["city"] == "Paris"
    assert [c.body["model"] for c in fake.message_calls()] == ["fake-small", "fake-medium"]
    rejected, accepted = sink.calls
    assert rejected.request_id == accepted.request_id == reply.request_id
    assert (rejected.tier, rejected.grade, rejected.grader) == (
        "small",
        0.0,
        "validator:json_schema",
    )
    assert "not valid JSON" in rejected.extra["rejection"]
    assert (accepted.tier, accepted.grade, accepted.grader) == (
        "medium",
        1.0,
        "validator:json_schema",
    )
    assert [c.extra["attempt"] for c in sink.calls] == [1, 2]
    assert reply.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in sink.calls))
    assert client.metrics.escalations == 1 and client.metrics.spend_by_tier.keys() == {
        "small",
        "medium",
    }


def test_the_chain_stops_at_the_top_tier(fake: FakeAnthropic) -> None:
    fake.answer = lambda model, body: "no digits here"
    validators = (RegexValidator(r"\d+", name="number"), CallableValidator(str.isupper, "shout"))
    client, sink = client_for(fake, "small", Escalation(validators=validators))
    reply = client.messages.create(max_tokens=8, messages=user("How many?"))
    assert (reply.tier, reply.accepted, len(reply.attempts)) == ("large", False, 3)
    assert [c.grade for c in sink.calls] == [0.0, 0.0, 0.0]
    assert {c.grader for c in sink.calls} == {"validator:number"}
    assert reply.attempts[-1].rejection == r"answer does not contain a match of /\d+/"


def test_every_validator_must_accept(fake: FakeAnthropic) -> None:
    fake.answer = by_model(small="42", medium="FORTY-TWO 42")
    validators = (RegexValidator(r"\d+", name="number"), CallableValidator(str.isupper, "shout"))
    client, sink = client_for(fake, "small", Escalation(validators=validators))
    reply = client.messages.create(max_tokens=8, messages=user("How many?"))
    assert reply.tier == "medium"
    assert [(c.grade, c.grader) for c in sink.calls] == [
        (0.0, "validator:shout"),
        (1.0, "validator:number+shout"),
    ]


def test_escalation_respects_the_cost_ceiling(fake: FakeAnthropic) -> None:
    fake.answer = lambda model, body: "nope"
    costs = {"small": 0.001, "medium": 0.004, "large": 0.05}
    decider = FixedDecider(LADDER, "small", expected_cost_usd=costs)
    escalation = Escalation(validators=(RegexValidator("yes"),))
    client, _ = client_for(fake, "small", escalation, decider=decider)
    reply = client.messages.create(max_tokens=8, messages=user("ok?"), max_cost_usd=0.01)
    assert [a.tier for a in reply.attempts] == ["small", "medium"] and not reply.accepted


def test_confidence_gate_escalates_unsure_answers(fake: FakeAnthropic) -> None:
    fake.answer = by_model(
        small='{"answer": "1912", "confidence": 0.35}',
        medium='```json\n{"answer": "1911", "confidence": 0.9}\n```',
        large="1911",
    )
    client, sink = client_for(fake, "small", Escalation(confidence_threshold=0.7))
    reply = client.messages.create(max_tokens=32, system="Be exact.", messages=user("Year?"))
    assert (reply.tier, reply.text, reply.attempts[-1].confidence) == ("medium", "1911", 0.9)
    small_call, medium_call = fake.message_calls()
    assert small_call.body["system"] == "Be exact.\n\n" + GATE_INSTRUCTION
    assert medium_call.body["system"].endswith(GATE_INSTRUCTION)
    rejected, shipped = sink.calls
    assert (rejected.grade, rejected.grader) == (0.0, "validator:confidence_gate")
    assert rejected.extra["confidence"] == 0.35 and "below 0.70" in rejected.extra["rejection"]
    # A model's own confidence is not evidence of correctness: no grade on acceptance.
    assert (shipped.grade, shipped.grader, shipped.extra["answer"]) == (None, None, "1911")
    assert shipped.system == rejected.system == "Be exact."  # the caller's request, as sent


def test_confidence_gate_rejects_replies_out_of_form_and_spares_the_top(
    fake: FakeAnthropic,
) -> None:
    fake.answer = by_model(medium="I think 1911", large="1911")
    client, sink = client_for(fake, "medium", Escalation(confidence_threshold=0.5))
    reply = client.messages.create(max_tokens=8, messages=user("Year?"))
    assert reply.tier == "large" and reply.text == "1911"
    assert sink.calls[0].extra["rejection"] == "reply is not in the required JSON form"
    assert "system" not in fake.message_calls()[-1].body  # the top tier answers plainly


def test_gate_and_validators_combine(fake: FakeAnthropic) -> None:
    fake.answer = by_model(small='{"answer": {"city": "Paris"}, "confidence": 0.95}')
    fake.answer = by_model(
        small='{"answer": {"city": "Paris"}, "confidence": 0.95}',
        medium='{"answer": {"city": "Paris", "population": 2}, "confidence": 0.95}',
    )
    escalation = Escalation(validators=(JsonSchemaValidator(SCHEMA),), confidence_threshold=0.5)
    client, sink = client_for(fake, "small", escalation)
    reply = client.messages.create(max_tokens=32, messages=user("Paris as JSON"))
    assert reply.tier == "medium" and json.loads(reply.text) == {"city": "Paris", "population": 2}
    assert [c.grader for c in sink.calls] == ["validator:json_schema"] * 2


WORKING = (
    "Step 1: the train leaves at 09:40 and the trip takes 2 h 35 min. "
    "Step 2: 09:40 plus 2 h is 11:40. Step 3: 11:40 plus 35 min is 12:15. "
    "Step 4: the connection waits 20 minutes, so the second leg starts at 12:35. "
    "Step 5: the second leg takes 1 h 50 min, so arrival is 14:25."
)
FINAL = "FINAL ANSWER: 14:25"


def handoff_answers(model: str, body: dict[str, Any]) -> str:
    """The small tier does the work but forgets the required last line; the medium tier
    completes a handed-off attempt with that line, or redoes the work when asked afresh."""
    if model == "fake-small":
        return WORKING
    if "<rejected_attempt>" in str(body.get("system", "")):
        return FINAL
    return f"{WORKING}\n{FINAL}"


def run_chain(fake: FakeAnthropic, handoff: bool) -> tuple[Any, MemorySink]:
    validators = (RegexValidator(r"FINAL ANSWER: \d\d:\d\d", name="final_line"),)
    client, sink = client_for(fake, "small", Escalation(validators=validators, handoff=handoff))
    question = "A train leaves at 09:40 (2 h 35 min), waits 20 min, then rides 1 h 50 min. Arrival?"
    reply = client.messages.create(
        max_tokens=256, system="Show your work.", messages=user(question)
    )
    return reply, sink


def test_handoff_gives_the_next_tier_the_rejected_attempt(
    fake: FakeAnthropic, record_property: Any
) -> None:
    fake.answer = handoff_answers
    plain, _ = run_chain(fake, handoff=False)
    handed, handed_sink = run_chain(fake, handoff=True)
    assert plain.tier == handed.tier == "medium" and plain.accepted and handed.accepted

    sent = fake.message_calls()[-1].body["system"]
    reason = r"answer does not contain a match of /FINAL ANSWER: \d\d:\d\d/"
    assert WORKING in sent and reason in sent and sent.startswith("Show your work.")
    assert handed.attempts[1].handoff and not plain.attempts[1].handoff
    assert handed_sink.calls[1].extra["handoff"] is True
    assert handed_sink.calls[1].system == "Show your work."  # logged as the caller sent it

    a_plain, a_handed = plain.attempts[1], handed.attempts[1]
    extra_in = a_handed.input_tokens - a_plain.input_tokens
    assert extra_in == count_tokens(handoff_instruction(WORKING, reason))
    saved_out = a_plain.output_tokens - a_handed.output_tokens
    assert saved_out == count_tokens(WORKING)
    figures = {
        "re-ask input tokens": a_plain.input_tokens,
        "handoff input tokens": a_handed.input_tokens,
        "re-ask output tokens": a_plain.output_tokens,
        "handoff output tokens": a_handed.output_tokens,
        "re-ask cost usd": a_plain.cost_usd,
        "handoff cost usd": a_handed.cost_usd,
    }
    for key, value in figures.items():
        record_property(key, value)
    print(
        f"\nhandoff vs re-ask on the medium tier: input {a_handed.input_tokens} vs "
        f"{a_plain.input_tokens} tokens (+{extra_in}), output {a_handed.output_tokens} vs "
        f"{a_plain.output_tokens} (-{saved_out}), cost ${a_handed.cost_usd:.6f} vs "
        f"${a_plain.cost_usd:.6f}"
    )


def test_no_escalation_by_default(fake: FakeAnthropic) -> None:
    fake.answer = lambda model, body: "anything"
    client, sink = client_for(fake, "small", Escalation())
    reply = client.messages.create(max_tokens=8, messages=user("x"))
    assert reply.tier == "small" and len(sink.calls) == 1 and sink.calls[0].grade is None


def test_escalation_rate_alert_over_a_sliding_window(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    fake.answer = lambda model, body: body["messages"][0]["content"]
    metrics = RoutingMetrics(window=10, min_requests=5)
    client, _ = client_for(
        fake, "small", Escalation(validators=(RegexValidator("^ok$"),)), metrics=metrics
    )
    with caplog.at_level(logging.WARNING, logger="serving.anthropic_client.metrics"):
        for prompt in ["ok", "ok", "bad", "ok", "bad"]:
            client.messages.create(max_tokens=8, messages=user(prompt))
        assert metrics.escalation_rate == pytest.approx(0.4) and metrics.alerting
        assert len([r for r in caplog.records if "escalation rate" in r.message]) == 1
        for _ in range(6):
            client.messages.create(max_tokens=8, messages=user("ok"))
    assert metrics.escalation_rate == pytest.approx(0.2) and not metrics.alerting
    assert (metrics.requests, metrics.escalations) == (11, 2)
    assert len([r for r in caplog.records if "escalation rate" in r.message]) == 1


def test_metrics_export_to_prometheus() -> None:
    registry = CollectorRegistry()
    metrics = RoutingMetrics(registry=registry, window=4, min_requests=2)
    metrics.record_spend("small", 0.5)
    metrics.record_request(tier="small", escalated=False, downgraded=True)
    metrics.record_request(tier="medium", escalated=True, downgraded=False)
    value = registry.get_sample_value
    assert value("tierwise_client_spend_usd_total", {"tier": "small"}) == 0.5
    assert value("tierwise_client_requests_total", {"tier": "medium"}) == 1
    assert value("tierwise_client_escalations_total") == 1
    assert value("tierwise_client_budget_downgrades_total") == 1
    assert value("tierwise_client_escalation_rate") == 0.5
    assert value("tierwise_client_escalation_alerting") == 1


@pytest.mark.parametrize("make", [subset_checker, schema_checker])
def test_schema_checking(make: Any) -> None:
    check = make(SCHEMA)
    assert check({"city": "Paris", "population": 3}) is None
    for bad in (
        {"city": "Paris"},
        {"city": "Paris", "population": -1},
        {"city": 1, "population": 3},
        {"city": "Paris", "population": 3, "mayor": "x"},
        ["Paris"],
    ):
        assert check(bad) is not None, bad
    items = make({"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2})
    assert items(["a", "b"]) is None and items(["a", "c"]) and items(["a", "b", "a"])
    pattern = make({"type": "string", "pattern": "^[A-Z]{3}$", "minLength": 3})
    assert pattern("ABC") is None and pattern("AB") and pattern("abc")
    assert make({"type": ["integer", "null"]})(None) is None
    assert make({"type": "integer"})(True) is not None


def test_json_validator_accepts_a_fenced_block() -> None:
    validator = JsonSchemaValidator(SCHEMA)
    assert validator.check('```json\n{"city": "Rome", "population": 1}\n```') is None
    assert "not valid JSON" in (validator.check("{city: Rome}") or "")
