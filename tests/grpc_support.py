"""Helpers for the gRPC tests: an in-process server on its own event loop, and
a ``tierwise serve`` subprocess whose JSON logs tell its ports.

Every server listens on 127.0.0.1 with port 0, so tests never collide on a
port, and every helper stops what it started.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.config import ServerConfig
from serving.server import TierwiseServer

T = TypeVar("T")
WAIT_S = 60.0


def server_config(model: Path, **overrides: Any) -> ServerConfig:
    base = ServerConfig(model=model, port=0, metrics_port=0, workers=2, reload_interval_s=0)
    return replace(base, **overrides)


class ServerThread:
    """A ``TierwiseServer`` whose event loop runs in a background thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = TierwiseServer(config)
        self.port = self.run(self.server.start())

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT_S)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def load(self) -> ServerThread:
        self.run(self.server.load_model())
        return self

    def close(self, grace_s: float = 5.0) -> None:
        try:
            self.run(self.server.stop(grace_s, drain_s=0.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT_S)
            self.loop.close()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.server.metrics.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value


@contextmanager
def serving_on(config: ServerConfig) -> Iterator[ServerThread]:
    """A loaded in-process server for the ``with`` block, always stopped after it."""
    thread = ServerThread(config).load()
    try:
        yield thread
    finally:
        thread.close()


def health_status(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(response.status)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def wait_until(predicate: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def copy_artifact(source: Path, dest: Path, router_version: str | None = None) -> Path:
    """A copy of an artifact, optionally claiming another router version."""
    shutil.copytree(source, dest)
    if router_version is not None:
        manifest = dest / "manifest.json"
        data = json.loads(manifest.read_text())
        data["router_version"] = router_version
        manifest.write_text(json.dumps(data, indent=2))
    return dest


def point_current(registry: Path, name: str) -> None:
    """Swap ``registry/current`` to ``name`` atomically, as a deployment would."""
    staging = registry / "current.next"
    staging.unlink(missing_ok=True)
    staging.symlink_to(name)
    staging.replace(registry / "current")


class ServeProcess:
    """``tierwise serve`` as a child process; stderr (JSON logs) goes to a file."""

    def __init__(self, tierwise: Path | str, model: Path, log: Path, *flags: str) -> None:
        self.log = log
        self._log_handle = log.open("w")
        command = [str(tierwise), "serve", "--model", str(model), "--port", "0"]
        command += ["--metrics-port", "0", *flags]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._log_handle, text=True
        )
        self.port = 0
        self.metrics_port = 0

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_serving(self) -> ServeProcess:
        def serving() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()}")
            return any(r.get("msg") == "serving" for r in self.records())

        wait_until(serving, "the server to report serving")
        listening = next(r for r in self.records() if r.get("msg") == "listening")
        self.port = int(listening["port"])
        self.metrics_port = int(listening["metrics_port"])
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics_text(self) -> str:
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self, timeout_s: float = WAIT_S) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout_s)
        finally:
            self._log_handle.close()


def msgs(*pairs: tuple[str, str]) -> Sequence[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]
