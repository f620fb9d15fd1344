"""Shadow mode in the server and in a client: decisions are logged, never applied."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from fake_anthropic import FakeAnthropic, user
from grpc_support import ServerThread, server_config
from prometheus_client import CollectorRegistry

from router_model.artifact import read_manifest
from router_model.router import Decision, DecisionRequest, Router
from router_model.text import flatten
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving._proto.tierwise.v1 import router_pb2_grpc
from serving.anthropic_client.deciders import InProcessDecider
from serving.anthropic_client.logging_calls import MemorySink
from serving.calllog import CallLogWriter, open_store
from serving.shadow import is_shadow, parse_shadow
from serving.shadow.client_side import ShadowRouter
from serving.shadow.server_side import ShadowScorer
from tierwise.cli import main

PROMPTS = (
    "What is the capital of France?",
    "Prove that the square root of 2 is irrational, step by step.",
    "def add(a, b):\n    return a + b\n\nWhat does this function return for (2, 3)?",
)


def test_server_answers_with_current_and_logs_both_decisions(
    logreg_router_dir: Path, gbt_router_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'shadow.db'}"
    config = server_config(logreg_router_dir, challenger=gbt_router_dir, shadow_log=url)
    server = ServerThread(config).load()
    current_version = read_manifest(logreg_router_dir).router_version
    challenger_version = read_manifest(gbt_router_dir).router_version
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            for i, prompt in enumerate(PROMPTS):
                reply = stub.Predict(pb.PredictRequest(prompt=prompt, request_id=f"r{i}"))
                assert reply.router_version == current_version
            batch = stub.PredictBatch(
                pb.PredictBatchRequest(
                    requests=[
                        pb.PredictRequest(prompt=p, request_id=f"b{i}")
                        for i, p in enumerate(PROMPTS)
                    ]
                )
            )
            assert batch.router_version == current_version
        shadow = server.server.shadow
        assert shadow is not None and shadow.flush(30)
        assert server.metric("tierwise_shadow_records_total", {"router": "challenger"}) == 6
        assert server.metric("tierwise_shadow_dropped_total") == 0
    finally:
        server.close()
    store = open_store(url, create=False)
    try:
        records = list(store.iter_calls())
    finally:
        store.close()
    assert len(records) == 12 and all(is_shadow(r) for r in records)
    assert all(r.prompt == "" and r.grade is None for r in records)
    decisions = [parse_shadow(r) for r in records]
    by_request: dict[str, dict[str, str]] = {}
    for d in decisions:
        by_request.setdefault(d.request_id, {})[d.router] = d.router_version
    expected = {"current": current_version, "challenger": challenger_version}
    assert by_request == {rid: expected for rid in ("r0", "r1", "r2", "b0", "b1", "b2")}
    code = next(d for d in decisions if d.request_id == "r2")
    assert code.input is not None and code.input.has_code
    assert code.input.chars == len(PROMPTS[2])


def test_full_shadow_queue_drops_and_counts(
    logreg_router_dir: Path, gbt_router_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = Router.load(logreg_router_dir)
    requests = [
        DecisionRequest(flatten(prompt=p), request_id=f"q{i}") for i, p in enumerate(PROMPTS)
    ]
    decisions = current.decide(requests)
    store = open_store(f"sqlite:///{tmp_path / 'drop.db'}")
    registry = CollectorRegistry()
    writer = CallLogWriter(store)
    scorer = ShadowScorer(gbt_router_dir, writer, registry, max_queue=1)
    dropped = "tierwise_shadow_dropped_total"
    try:
        assert not scorer.offer(requests[:1], decisions[:1])  # not loaded yet
        challenger = scorer.load()
        gate, entered = threading.Event(), threading.Event()
        decide = challenger.decide

        def held(batch: Sequence[DecisionRequest]) -> list[Decision]:
            entered.set()
            gate.wait(30)
            return decide(batch)

        monkeypatch.setattr(challenger, "decide", held)
        assert scorer.offer(requests[:1], decisions[:1])
        assert entered.wait(30)  # the thread holds the first request
        assert scorer.offer(requests[1:2], decisions[1:2])  # fills the queue
        assert not scorer.offer(requests[2:], decisions[2:])
        assert registry.get_sample_value(dropped) == 2
        gate.set()
        assert scorer.flush(30)
        assert writer.written == 4
    finally:
        gate.set()
        scorer.close()
        store.close()


def test_challenger_needs_a_shadow_log(logreg_router_dir: Path, gbt_router_dir: Path) -> None:
    argv = ["serve", "--model", str(logreg_router_dir), "--challenger", str(gbt_router_dir)]
    assert main(argv) == 2


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(answer=lambda model, body: f"answer from {model}").start()
    yield server
    server.stop()


def test_client_shadow_sends_usual_model_and_logs_decision(
    logreg_router_dir: Path, fake_api: FakeAnthropic
) -> None:
    router = Router.load(logreg_router_dir)
    sink = MemorySink()
    with ShadowRouter(InProcessDecider(router), sink) as shadow:
        client = shadow.wrap(fake_api.client())
        reply = client.messages.create(
            model="their-usual-model",
            max_tokens=64,
            messages=user(PROMPTS[1]),
            system="Be brief.",
            shadow_request_id="req-1",
        )
        rid = shadow.observe(messages=user(PROMPTS[0]), tags={"endpoint": "faq"})
        assert shadow.flush(30)
    assert reply.content[0].text == "answer from their-usual-model"
    sent = fake_api.message_calls()[-1].body
    assert sent["model"] == "their-usual-model" and "shadow_request_id" not in sent
    assert sent["system"] == "Be brief."
    assert shadow.logged == 2 and shadow.failed == 0 and shadow.dropped == 0
    records = {parse_shadow(c).request_id: c for c in sink.calls}
    assert set(records) == {"req-1", rid}
    first = parse_shadow(records["req-1"])
    assert first.router_version == router.version and first.tier in router.ladder.names
    assert records["req-1"].model == router.ladder.by_name(first.tier).model
    assert records[rid].tags["endpoint"] == "faq"
    assert all(PROMPTS[0] not in str(c.to_json()) for c in sink.calls)


def test_client_shadow_never_raises_on_bad_input(logreg_router_dir: Path) -> None:
    sink = MemorySink()
    with ShadowRouter(InProcessDecider(Router.load(logreg_router_dir)), sink) as shadow:
        shadow.observe(messages=[{"role": "robot", "content": "hi"}])
        assert shadow.flush(30)
    assert shadow.failed == 1 and not sink.calls
