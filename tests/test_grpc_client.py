"""The Python clients against a real server: results, errors, retries, closing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_support import ServerThread, msgs, server_config

from router_model.text import Message
from serving import (
    AsyncTierwiseClient,
    ModelInfo,
    PredictInput,
    PredictResult,
    TierwiseClient,
    TierwiseRpcError,
)


@pytest.fixture(scope="module")
def server(logreg_router_dir: Path) -> Iterator[ServerThread]:
    running = ServerThread(server_config(logreg_router_dir, metrics_port=None)).load()
    yield running
    running.close()


class CountingInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Counts attempts, so retries can be checked without timing anything."""

    def __init__(self) -> None:
        self.calls = 0

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.calls += 1
        return continuation(details, request)


def counting_client(target: str, **kwargs: Any) -> tuple[TierwiseClient, CountingInterceptor]:
    counter = CountingInterceptor()
    channel = grpc.intercept_channel(grpc.insecure_channel(target), counter)
    return TierwiseClient(target, channel=channel, **kwargs), counter


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_predict_returns_a_typed_result(server: ServerThread) -> None:
    with TierwiseClient(server.target, timeout=30) as client:
        result = client.predict(
            "Integrate x*exp(x) dx.", quality_target=0.9, tags={"team": "maths"}, request_id="q1"
        )
        info = client.model_info()
    assert isinstance(result, PredictResult)
    tiers = [t.name for t in info.tiers]
    assert list(result.p_success) == tiers and list(result.expected_cost_usd) == tiers
    assert result.tier in tiers
    assert result.model == {t.name: t.model for t in info.tiers}[result.tier]
    assert result.request_id == "q1"
    assert result.router_version == info.router_version
    assert result.server_latency_ms > 0
    with pytest.raises(AttributeError):
        result.tier = "other"  # type: ignore[misc]


def test_predict_accepts_messages_as_dicts_or_message_objects(server: ServerThread) -> None:
    turns = (("user", "Plan a trip to Kyoto."), ("assistant", "Sure."), ("user", "In 3 days?"))
    with TierwiseClient(server.target, timeout=30) as client:
        from_dicts = client.predict(messages=msgs(*turns), system="Be brief.")
        from_objects = client.predict(
            messages=[Message(role, text) for role, text in turns], system="Be brief."
        )
    assert from_dicts.p_success == pytest.approx(from_objects.p_success)


def test_predict_batch_keeps_order(server: ServerThread) -> None:
    inputs = [
        PredictInput(prompt="Spell 'cat'.", request_id="a"),
        PredictInput(messages=msgs(("user", "Explain monads.")), request_id="b", rule="threshold"),
        PredictInput(prompt="Hi", max_cost_usd=1e-12, request_id="c"),
    ]
    with TierwiseClient(server.target, timeout=30) as client:
        results = client.predict_batch(inputs)
    assert [r.request_id for r in results] == ["a", "b", "c"]
    assert results[1].rule in ("threshold", "threshold_fallback")
    assert results[2].rule == "over_ceiling"


def test_model_info_is_typed(server: ServerThread, logreg_router_dir: Path) -> None:
    with TierwiseClient(server.target, timeout=30) as client:
        info = client.model_info()
    assert isinstance(info, ModelInfo)
    assert info.default_rule == "cost_aware" and 0 < info.default_quality_target <= 1
    assert info.created_at and info.embedder
    assert all(t.input_usd_per_mtok > 0 for t in info.tiers)
    assert isinstance(info.metrics, dict) and info.metrics


def test_invalid_input_raises_at_once_naming_the_field(server: ServerThread) -> None:
    client, counter = counting_client(server.target, timeout=30, retries=3)
    with client, pytest.raises(TierwiseRpcError) as caught:
        client.predict("a", quality_target=float("nan"))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "quality_target"
    assert counter.calls == 1


def test_unavailable_is_retried_then_raised(server: ServerThread) -> None:
    client, counter = counting_client(
        f"127.0.0.1:{unused_port()}", timeout=5, retries=2, backoff_s=0.001
    )
    with client, pytest.raises(TierwiseRpcError) as caught:
        client.predict("a")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert counter.calls == 3


def test_deadline_exceeded_is_not_retried(server: ServerThread) -> None:
    """A one-word call once finished inside a timeout of a microsecond (gRPC's
    timers are coarser than that), so the call here is one that the router
    needs many milliseconds for: it reads 256 tokens of the prompt."""
    client, counter = counting_client(server.target, timeout=1e-3, retries=3)
    with client, pytest.raises(TierwiseRpcError) as caught:
        client.predict("why " * 2000)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert counter.calls == 1


def test_leaving_the_with_block_closes_the_channel(server: ServerThread) -> None:
    with TierwiseClient(server.target, timeout=30) as client:
        client.predict("ping")
    with pytest.raises(ValueError, match="closed channel"):
        client.predict("ping")


def test_async_client_mirrors_the_blocking_one(server: ServerThread) -> None:
    async def scenario() -> tuple[PredictResult, list[PredictResult], ModelInfo, TierwiseRpcError]:
        async with AsyncTierwiseClient(server.target, timeout=30) as client:
            one, many, info = await asyncio.gather(
                client.predict("What is a prime number?", request_id="x"),
                client.predict_batch([PredictInput(prompt=p) for p in ("a", "b")]),
                client.model_info(),
            )
            with pytest.raises(TierwiseRpcError) as caught:
                await client.predict(messages=msgs(("narrator", "once upon a time")))
            return one, many, info, caught.value

    one, many, info, error = asyncio.run(scenario())
    assert one.request_id == "x" and one.router_version == info.router_version
    assert len(many) == 2
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.field == "messages[0]"
