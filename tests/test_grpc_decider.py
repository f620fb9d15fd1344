"""Routed Claude calls that ask a real tierwise server (over gRPC) for the tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_anthropic import FakeAnthropic
from grpc_support import ServerThread, server_config

from router_model.router import DecisionRequest, Router
from router_model.text import Message, flatten
from serving.anthropic_client import MemorySink, RoutedAnthropic
from serving.anthropic_client.grpc_decider import GrpcDecider
from serving.client import TierwiseClient


@pytest.fixture
def server(logreg_router_dir: Path) -> Iterator[ServerThread]:
    thread = ServerThread(server_config(logreg_router_dir)).load()
    yield thread
    thread.close()


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(answer=lambda model, body: f"answer from {model}").start()
    yield server
    server.stop()


def test_routed_call_uses_the_servers_decision(
    server: ServerThread, fake: FakeAnthropic, logreg_router_dir: Path
) -> None:
    local = Router.load(logreg_router_dir)
    sink = MemorySink()
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Integrate x * exp(x) from 0 to 1."},
    ]
    with TierwiseClient(server.target) as tierwise:
        decider = GrpcDecider(tierwise)
        assert decider.ladder.names == local.ladder.names
        claude = RoutedAnthropic(decider, fake.client(), log=sink)
        reply = claude.messages.create(
            max_tokens=32, system="Be exact.", messages=conversation, quality_target=0.9
        )
    messages = tuple(Message(m["role"], m["content"]) for m in conversation)
    (expected,) = local.decide(
        [DecisionRequest(flatten(messages=messages, system="Be exact."), quality_target=0.9)]
    )
    assert reply.tier == expected.tier and reply.rule == expected.rule
    assert reply.decision is not None
    assert reply.decision.p_success == pytest.approx(dict(expected.p_success), abs=1e-6)
    assert reply.decision.router_version == local.version
    assert fake.message_calls()[-1].body["model"] == expected.model
    (logged,) = sink.calls
    assert logged.tier == expected.tier and logged.system == "Be exact."
    assert len(logged.messages) == 3
