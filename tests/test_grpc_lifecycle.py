"""Readiness and shutdown: health follows the model, and shutdown drains calls.

In process for the health transitions; as a real ``tierwise serve`` child
(SIGTERM, and in an environment with only the ``serve`` extra) for the parts
that depend on the process's signal handling and installed packages.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_support import (
    NOT_SERVING,
    SERVING,
    ServeProcess,
    ServerThread,
    health_status,
    server_config,
    wait_until,
)

from serving import PredictInput, TierwiseClient, TierwiseRpcError

TIERWISE = Path(sys.executable).parent / "tierwise"
LONG_PROMPT = " ".join(
    f"Clause {i}: the lessee shall maintain the premises in good repair." for i in range(40)
)


def test_health_follows_loading_and_shutdown(logreg_router_dir: Path) -> None:
    running = ServerThread(server_config(logreg_router_dir, drain_s=30.0))
    stopping = None
    try:
        assert health_status(running.target) == NOT_SERVING
        assert health_status(running.target, "tierwise.v1.Router") == NOT_SERVING
        with TierwiseClient(running.target, timeout=30, retries=0) as client:
            with pytest.raises(TierwiseRpcError) as caught:
                client.predict("too early")
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
            running.load()
            assert health_status(running.target) == SERVING
            assert client.predict("now").tier
        assert running.metric("tierwise_router_ready") == 1.0
        stopping = running.submit(running.server.stop(5.0))
        wait_until(lambda: health_status(running.target) == NOT_SERVING, "NOT_SERVING")
        assert health_status(running.target, "tierwise.v1.Router") == NOT_SERVING
        assert running.metric("tierwise_router_ready") == 0.0
    finally:
        if stopping is not None:
            stopping.cancel()
        running.close(grace_s=0.0)


def test_sigterm_lets_in_flight_calls_finish(logreg_router_dir: Path, tmp_path: Path) -> None:
    server = ServeProcess(
        TIERWISE,
        logreg_router_dir,
        tmp_path / "serve.log",
        *("--workers", "2", "--drain", "1", "--grace", "60", "--reload-interval", "0"),
    ).wait_serving()
    results: list[Any] = []
    batch = [PredictInput(prompt=f"{LONG_PROMPT} ({i})") for i in range(6)]

    def call() -> None:
        with TierwiseClient(server.target, timeout=60, retries=0) as client:
            try:
                results.append(client.predict_batch(batch))
            except Exception as exc:
                results.append(exc)

    callers = [threading.Thread(target=call) for _ in range(3)]
    try:
        for thread in callers:
            thread.start()
        wait_until(
            lambda: "tierwise_grpc_server_in_flight 3.0" in server.metrics_text(),
            "three calls in flight",
        )
        server.proc.terminate()
        wait_until(lambda: _health_or_gone(server.target) == NOT_SERVING, "NOT_SERVING")
        for thread in callers:
            thread.join(120)
        code = server.proc.wait(120)
    finally:
        server.stop()
    assert [type(r) for r in results] == [list, list, list], results
    assert all(len(r) == len(batch) for r in results)
    assert code == 0
    messages = [r["msg"] for r in server.records()]
    assert messages.index("shutting down") < messages.index("stopped")


def _health_or_gone(target: str) -> int:
    try:
        return health_status(target)
    except grpc.RpcError:
        return -1


def test_serves_in_an_environment_with_only_the_serve_extra(
    serve_only_python: Path, logreg_router_dir: Path, tmp_path: Path
) -> None:
    tierwise = serve_only_python.parent / "tierwise"
    server = ServeProcess(tierwise, logreg_router_dir, tmp_path / "serve.log").wait_serving()
    try:
        with TierwiseClient(server.target, timeout=60) as client:
            result = client.predict("What is the boiling point of water at sea level?")
        assert result.tier in result.p_success
        assert "tierwise_decisions_total" in server.metrics_text()
    finally:
        code = server.stop()
    assert code == 0


def test_an_unusable_model_directory_stops_the_server_with_a_clear_error(
    tmp_path: Path,
) -> None:
    server = ServeProcess(TIERWISE, tmp_path, tmp_path / "serve.log", "--no-metrics")
    code = server.proc.wait(120)
    server.stop()
    assert code == 2
    assert "not a router artifact" in server.log.read_text()
