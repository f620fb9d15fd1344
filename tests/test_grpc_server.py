"""The gRPC server through a real loopback channel: every RPC on raw stubs,
status codes for each class of bad input, reflection, metrics and logs."""

from __future__ import annotations

import json
import logging
import math
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_support import SERVING, ServerThread, health_status, server_config, wait_until

from serving._proto.tierwise.v1 import router_pb2 as pb
from serving._proto.tierwise.v1 import router_pb2_grpc
from serving.config import Limits
from serving.errors import FIELD_METADATA_KEY
from serving.logs import JsonFormatter

MAX_PROMPT_CHARS = 2_000
MAX_BATCH = 8


@pytest.fixture(scope="module")
def server(logreg_router_dir: Path) -> Iterator[ServerThread]:
    limits = Limits(max_prompt_chars=MAX_PROMPT_CHARS, max_batch_size=MAX_BATCH)
    running = ServerThread(server_config(logreg_router_dir, limits=limits)).load()
    yield running
    running.close()


@pytest.fixture(scope="module")
def stub(server: ServerThread) -> Iterator[Any]:
    with grpc.insecure_channel(server.target) as channel:
        yield router_pb2_grpc.RouterStub(channel)


def manifest(router_dir: Path) -> dict[str, Any]:
    return dict(json.loads((router_dir / "manifest.json").read_text()))


def test_predict_answers_with_every_tier_in_ladder_order(
    stub: Any, logreg_router_dir: Path
) -> None:
    expected = manifest(logreg_router_dir)
    response = stub.Predict(
        pb.PredictRequest(prompt="What is the derivative of x**3?", request_id="r-1"), timeout=30
    )
    tiers = [t["name"] for t in expected["tiers"]]
    assert [s.tier for s in response.scores] == tiers
    assert [s.model for s in response.scores] == [t["model"] for t in expected["tiers"]]
    assert response.tier in tiers
    models = {t["name"]: t["model"] for t in expected["tiers"]}
    assert response.model == models[response.tier]
    assert all(0.0 <= s.p_success <= 1.0 and s.expected_cost_usd >= 0.0 for s in response.scores)
    assert response.request_id == "r-1"
    assert response.rule in ("cost_aware", "cost_ceiling", "over_ceiling")
    assert response.router_version == expected["router_version"]
    assert response.server_latency_ms > 0.0


def test_predict_reads_messages_system_and_controls(stub: Any) -> None:
    request = pb.PredictRequest(
        messages=[
            pb.Message(role="user", content="Write a haiku about rain."),
            pb.Message(role="assistant", content="Rain on the tin roof..."),
            pb.Message(role="user", content="Now one about snow."),
        ],
        system="You are a poet.",
        quality_target=0.8,
        rule="threshold",
        tags={"endpoint": "poetry"},
    )
    response = stub.Predict(request, timeout=30)
    assert response.rule in ("threshold", "threshold_fallback")
    assert response.request_id == ""


def test_a_tiny_cost_ceiling_is_reported(stub: Any) -> None:
    response = stub.Predict(pb.PredictRequest(prompt="Hi", max_cost_usd=1e-12), timeout=30)
    assert response.rule == "over_ceiling"
    assert response.tier == min(response.scores, key=lambda s: s.expected_cost_usd).tier


def test_predict_batch_answers_in_request_order(stub: Any) -> None:
    prompts = ["Name a colour.", "Prove Fermat's little theorem.", "2+2?", "Translate 'cat'."]
    batch = pb.PredictBatchRequest(
        requests=[pb.PredictRequest(prompt=p, request_id=f"id-{i}") for i, p in enumerate(prompts)]
    )
    response = stub.PredictBatch(batch, timeout=30)
    assert [r.request_id for r in response.responses] == [f"id-{i}" for i in range(len(prompts))]
    single = stub.Predict(batch.requests[1], timeout=30)
    assert [s.p_success for s in response.responses[1].scores] == pytest.approx(
        [s.p_success for s in single.scores]
    )
    assert response.router_version == single.router_version


def test_model_info_describes_the_loaded_router(stub: Any, logreg_router_dir: Path) -> None:
    expected = manifest(logreg_router_dir)
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    assert info.router_version == expected["router_version"]
    assert info.created_at == expected["created_at"]
    assert [(t.name, t.model, t.input_usd_per_mtok, t.output_usd_per_mtok) for t in info.tiers] == [
        (t["name"], t["model"], t["input_usd_per_mtok"], t["output_usd_per_mtok"])
        for t in expected["tiers"]
    ]
    assert info.default_policy.default_rule == expected["policy"]["default_rule"]
    assert set(info.default_policy.rules) == {"cost_aware", "threshold"}
    assert info.embedder == expected["embedder"]["id"]
    assert set(info.metrics.keys()) == set(expected["metrics"].keys())


LONG = "x" * (MAX_PROMPT_CHARS + 1)
BAD_REQUESTS = {
    "empty prompt": (pb.PredictRequest(prompt=""), "prompt"),
    "blank prompt": (pb.PredictRequest(prompt="  \n"), "prompt"),
    "no prompt or messages": (pb.PredictRequest(), "prompt"),
    "prompt and messages": (
        pb.PredictRequest(prompt="a", messages=[pb.Message(role="user", content="b")]),
        "prompt",
    ),
    "bad role": (
        pb.PredictRequest(
            messages=[
                pb.Message(role="user", content="a"),
                pb.Message(role="robot", content="b"),
            ]
        ),
        "messages[1]",
    ),
    "empty messages": (pb.PredictRequest(messages=[pb.Message(role="user")]), "messages"),
    "NaN quality_target": (
        pb.PredictRequest(prompt="a", quality_target=math.nan),
        "quality_target",
    ),
    "quality_target above 1": (pb.PredictRequest(prompt="a", quality_target=1.5), "quality_target"),
    "quality_target 0": (pb.PredictRequest(prompt="a", quality_target=0.0), "quality_target"),
    "negative max_cost_usd": (pb.PredictRequest(prompt="a", max_cost_usd=-1.0), "max_cost_usd"),
    "infinite max_cost_usd": (pb.PredictRequest(prompt="a", max_cost_usd=math.inf), "max_cost_usd"),
    "unknown rule": (pb.PredictRequest(prompt="a", rule="cheapest"), "rule"),
    "prompt too long": (pb.PredictRequest(prompt=LONG), "prompt"),
    "messages too long": (
        pb.PredictRequest(messages=[pb.Message(role="user", content=LONG)]),
        "messages",
    ),
}


def _field(error: grpc.RpcError) -> str | None:
    found = [v for k, v in error.trailing_metadata() or () if k == FIELD_METADATA_KEY]
    return found[0] if found else None


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_are_invalid_argument_naming_the_field(stub: Any, case: str) -> None:
    request, field = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"'{field}'" in caught.value.details()
    assert _field(caught.value) == field


BAD_BATCHES = {
    "empty batch": (pb.PredictBatchRequest(), "requests"),
    "batch too big": (
        pb.PredictBatchRequest(
            requests=[pb.PredictRequest(prompt="a") for _ in range(MAX_BATCH + 1)]
        ),
        "requests",
    ),
    "one bad request": (
        pb.PredictBatchRequest(
            requests=[
                pb.PredictRequest(prompt="a"),
                pb.PredictRequest(prompt="b", quality_target=2.0),
            ]
        ),
        "requests[1].quality_target",
    ),
    "one bad role": (
        pb.PredictBatchRequest(
            requests=[pb.PredictRequest(messages=[pb.Message(role="system", content="a")])]
        ),
        "requests[0].messages[0]",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batches_are_invalid_argument_naming_the_field(stub: Any, case: str) -> None:
    request, field = BAD_BATCHES[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.PredictBatch(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"'{field}'" in caught.value.details()
    assert _field(caught.value) == field


def test_an_unexpected_failure_is_internal_with_a_generic_message(
    server: ServerThread, stub: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail of the fault")

    monkeypatch.setattr(server.server.model.router, "decide", broken)
    with caplog.at_level(logging.ERROR, logger="tierwise"), pytest.raises(grpc.RpcError) as caught:
        stub.Predict(pb.PredictRequest(prompt="a"), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged and "secret detail of the fault" in JsonFormatter().format(logged[-1])


def test_health_reports_serving_for_the_server_and_the_service(server: ServerThread) -> None:
    assert health_status(server.target) == SERVING
    assert health_status(server.target, "tierwise.v1.Router") == SERVING


def test_reflection_lists_the_router_service(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=30))
    names = {s.name for s in response.list_services_response.service}
    assert {"tierwise.v1.Router", "grpc.health.v1.Health"} <= names


def test_metrics_endpoint_counts_calls_decisions_and_the_version(
    server: ServerThread, stub: Any, logreg_router_dir: Path
) -> None:
    refused = {"grpc_service": "tierwise.v1.Router", "grpc_method": "Predict"}
    refused["grpc_code"] = "INVALID_ARGUMENT"
    before = server.metric("tierwise_grpc_server_errors_total", refused)
    stub.Predict(pb.PredictRequest(prompt="Count me."), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.Predict(pb.PredictRequest(prompt=""), timeout=30)
    # The status reaches the caller before the interceptor's bookkeeping ends.
    wait_until(
        lambda: server.metric("tierwise_grpc_server_errors_total", refused) == before + 1,
        "the refused call to be counted",
    )
    url = f"http://127.0.0.1:{server.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    version = manifest(logreg_router_dir)["router_version"]
    assert 'tierwise_router_info{created_at="' in text and f'router_version="{version}"' in text
    assert 'grpc_code="INVALID_ARGUMENT",grpc_method="Predict"' in text
    assert "tierwise_decisions_total{" in text
    assert "tierwise_chosen_expected_cost_usd_sum" in text
    assert "tierwise_grpc_server_handling_seconds_bucket{" in text
    assert "tierwise_router_ready 1.0" in text


def logged_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [JsonFormatter().format(r) for r in caplog.records]


def wait_for_decision(caplog: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    """The decision line for ``request_id``, which the server writes just after answering."""
    marker = f'"request_id": "{request_id}"'
    wait_until(
        lambda: any(marker in line for line in logged_lines(caplog)),
        f"the decision line of {request_id}",
    )
    [decision] = [json.loads(line) for line in logged_lines(caplog) if marker in line]
    return dict(decision)


def test_decision_logs_hold_no_prompt_text(stub: Any, caplog: pytest.LogCaptureFixture) -> None:
    secret = "the launch code is 0000-PURPLE-ELEPHANT"
    with caplog.at_level(logging.INFO, logger="tierwise"):
        stub.Predict(pb.PredictRequest(prompt=secret, request_id="quiet"), timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.Predict(pb.PredictRequest(prompt=secret, rule="nope"), timeout=30)
        decision = wait_for_decision(caplog, "quiet")
    assert decision["prompt_chars"] == len(secret)
    assert not any("PURPLE-ELEPHANT" in line for line in logged_lines(caplog))


def test_log_prompts_puts_the_prompt_in_decision_logs(
    logreg_router_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = ServerThread(server_config(logreg_router_dir, log_prompts=True)).load()
    try:
        with (
            caplog.at_level(logging.INFO, logger="tierwise"),
            grpc.insecure_channel(running.target) as channel,
        ):
            stub = router_pb2_grpc.RouterStub(channel)
            stub.Predict(pb.PredictRequest(prompt="say PURPLE-ELEPHANT", request_id="loud"))
            decision = wait_for_decision(caplog, "loud")
    finally:
        running.close()
    assert decision["prompt"] == "say PURPLE-ELEPHANT"
