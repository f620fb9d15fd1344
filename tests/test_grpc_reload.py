"""Hot reload: a new artifact is swapped in, a broken one is refused, and
traffic running all the while sees no failed call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_support import (
    ServerThread,
    copy_artifact,
    point_current,
    server_config,
    wait_until,
)

from serving import TierwiseClient

SUCCESS = {"result": "success"}
FAILURE = {"result": "failure"}


class Traffic:
    """Threads calling Predict in a loop, recording versions seen and any failure."""

    def __init__(self, target: str, threads: int = 4) -> None:
        self.versions: list[str] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(target, i)) for i in range(threads)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def latest(self) -> str | None:
        return self.versions[-1] if self.versions else None

    def _run(self, target: str, index: int) -> None:
        with TierwiseClient(target, timeout=30, retries=0) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    result = client.predict(f"Question {index}-{n}: what is {n} squared?")
                    self.versions.append(result.router_version)
                except BaseException as exc:  # every failure counts, whatever its type
                    self.failures.append(exc)


@pytest.fixture
def registry(logreg_router_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    copy_artifact(logreg_router_dir, root / "v1", router_version="v1")
    copy_artifact(logreg_router_dir, root / "v2", router_version="v2")
    broken = copy_artifact(logreg_router_dir, root / "broken", router_version="broken")
    model = broken / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    point_current(root, "v1")
    return root


@pytest.fixture
def registry_server(registry: Path) -> Iterator[ServerThread]:
    running = ServerThread(server_config(registry, reload_interval_s=0.1)).load()
    yield running
    running.close()


def test_reload_swaps_versions_under_traffic_without_a_failed_call(
    registry: Path, registry_server: ServerThread
) -> None:
    server = registry_server
    with Traffic(server.target) as traffic:
        wait_until(lambda: traffic.latest() == "v1", "traffic on v1")
        point_current(registry, "v2")
        wait_until(lambda: traffic.latest() == "v2", "traffic on v2")
        point_current(registry, "broken")
        wait_until(lambda: server.metric("tierwise_router_reloads_total", FAILURE) == 1, "refusal")
        seen = len(traffic.versions)
        wait_until(lambda: len(traffic.versions) > seen + 8, "more traffic after the refusal")
    assert traffic.failures == []
    assert set(traffic.versions) == {"v1", "v2"}
    first_v2 = traffic.versions.index("v2")
    assert "v1" not in traffic.versions[first_v2 + 8 :]  # only calls in flight at the swap
    assert server.metric("tierwise_router_reloads_total", SUCCESS) == 1
    assert server.server.model.router.version == "v2"
    assert (
        server.metric(
            "tierwise_router_info",
            {"router_version": "v2", "created_at": _created(registry / "v2")},
        )
        == 1.0
    )


def test_a_broken_artifact_is_tried_once_per_change(
    registry: Path, registry_server: ServerThread
) -> None:
    server = registry_server
    point_current(registry, "broken")
    wait_until(lambda: server.metric("tierwise_router_reloads_total", FAILURE) == 1, "refusal")
    (registry / "current").unlink()  # no pointer at all: refused too, once
    wait_until(lambda: server.metric("tierwise_router_reloads_total", FAILURE) == 2, "refusal")
    point_current(registry, "v2")
    wait_until(lambda: server.metric("tierwise_router_reloads_total", SUCCESS) == 1, "reload")
    assert server.metric("tierwise_router_reloads_total", FAILURE) == 2
    assert server.server.model.router.version == "v2"


def test_reload_of_an_artifact_directory_edited_in_place(
    logreg_router_dir: Path, tmp_path: Path
) -> None:
    artifact = copy_artifact(logreg_router_dir, tmp_path / "model", router_version="old")
    running = ServerThread(server_config(artifact, reload_interval_s=0.1)).load()
    try:
        manifest = artifact / "manifest.json"
        data = json.loads(manifest.read_text())
        data["router_version"] = "new"
        staging = artifact / "manifest.json.tmp"
        staging.write_text(json.dumps(data))
        staging.replace(manifest)
        wait_until(lambda: running.server.model.router.version == "new", "the new version")
        with TierwiseClient(running.target, timeout=30) as client:
            assert client.predict("hello").router_version == "new"
    finally:
        running.close()


def test_a_current_file_may_name_the_artifact(registry: Path) -> None:
    (registry / "current").unlink()
    (registry / "current").write_text("v2\n")
    running = ServerThread(server_config(registry)).load()
    try:
        with TierwiseClient(running.target, timeout=30) as client:
            assert client.model_info().router_version == "v2"
    finally:
        running.close()


def _created(artifact: Path) -> str:
    return str(json.loads((artifact / "manifest.json").read_text())["created_at"])
