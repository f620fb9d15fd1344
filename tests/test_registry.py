"""The model registry: versions are copied and pinned, ``current`` moves atomically,
every move is in the history, and a tampered manifest is never served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from router_model.errors import ArtifactError, ConfigError
from serving.registry import Registry
from serving.source import resolve
from tierwise.cli import main


def _variant(src: Path, dst: Path, version: str) -> Path:
    """The same trained artifact under another version name (the manifest is not a listed file)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["router_version"] = version
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dst


@pytest.fixture()
def three_artifacts(logreg_router_dir: Path, tmp_path: Path) -> list[Path]:
    return [_variant(logreg_router_dir, tmp_path / v, v) for v in ("v1", "v2", "v3")]


def test_add_promote_rollback_and_history(three_artifacts: list[Path], tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    assert registry.current() is None and registry.versions() == []
    versions = [registry.add(a) for a in three_artifacts]
    assert versions == ["v1", "v2", "v3"]
    assert registry.add(three_artifacts[0]) == "v1"  # idempotent
    assert [v.version for v in registry.versions()] == versions
    assert registry.versions()[0].cost_at_95 is not None  # held-out metric from the manifest

    for v in versions:
        registry.promote(v, f"ship {v}")
    assert registry.current() == "v3"
    current = registry.path / "current"
    assert current.is_symlink() and str(current.readlink()) == "versions/v3"
    assert resolve(registry.path) == (registry.path / "versions" / "v3").resolve()

    assert registry.rollback("bad week").version == "v2"
    assert registry.rollback("still bad").version == "v1"
    assert registry.current() == "v1"
    with pytest.raises(ConfigError, match="no earlier promoted version"):
        registry.rollback("nothing left")

    history = registry.history()
    assert [(e.action, e.version, e.previous) for e in history] == [
        ("promote", "v1", None),
        ("promote", "v2", "v1"),
        ("promote", "v3", "v2"),
        ("rollback", "v2", "v3"),
        ("rollback", "v1", "v2"),
    ]
    assert history[3].reason == "bad week"


def test_tampered_manifest_is_refused(three_artifacts: list[Path], tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    registry.add(three_artifacts[0])
    registry.add(three_artifacts[1])
    registry.promote("v1", "first")
    manifest = registry.artifact_dir("v2") / "manifest.json"
    data = json.loads(manifest.read_text())
    data["pass_grade"] = 0.1  # still a valid artifact; only the pin notices
    manifest.write_text(json.dumps(data, indent=2) + "\n")
    with pytest.raises(ArtifactError, match="does not match the hash pinned"):
        registry.promote("v2", "sneaky")
    assert registry.current() == "v1"
    assert [e.action for e in registry.history()] == ["promote"]
    with pytest.raises(ConfigError, match="not registered"):
        registry.promote("v9", "unknown")


def test_registry_commands(
    three_artifacts: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "reg")
    for artifact in three_artifacts[:2]:
        assert main(["registry", "add", "--registry", reg, str(artifact)]) == 0
    assert main(["registry", "promote", "--registry", reg, "v1"]) == 0
    assert main(["registry", "promote", "--registry", reg, "v2", "--reason", "better"]) == 0
    assert main(["registry", "rollback", "--registry", reg]) == 0
    capsys.readouterr()
    assert main(["registry", "list", "--registry", reg]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "CREATED_AT", "HELDOUT_COST@95"]
    assert lines[1].startswith("*") and "v1" in lines[1]
    assert not lines[2].startswith("*") and "v2" in lines[2]
    assert main(["registry", "promote", "--registry", reg, "nope"]) == 2
    assert "is not registered" in capsys.readouterr().err
    assert main(["registry", "add", "--registry", reg, str(tmp_path / "missing")]) == 2


def test_the_server_refuses_a_registry_version_that_no_longer_matches_its_pin(
    three_artifacts: list[Path], tmp_path: Path
) -> None:
    from serving.model import RouterModel

    registry = Registry(tmp_path / "reg")
    for artifact in three_artifacts[:2]:
        registry.add(artifact)
    registry.promote("v1", "first")
    model = RouterModel(registry.path)
    assert model.load().version == "v1"

    manifest = registry.artifact_dir("v2") / "manifest.json"
    data = json.loads(manifest.read_text())
    data["pass_grade"] = 0.1  # still a valid artifact; only the pin notices
    manifest.write_text(json.dumps(data, indent=2) + "\n")
    (registry.path / "current").unlink()  # someone repoints current by hand
    (registry.path / "current").symlink_to("versions/v2")
    outcome = model.reload_if_changed()
    assert outcome.changed and outcome.error is not None
    assert "does not match the hash pinned" in str(outcome.error)
    assert model.router.version == "v1"  # the old router keeps serving

    (registry.path / "current").unlink()
    (registry.path / "current").symlink_to("versions/v3-unregistered")
    shutil.copytree(three_artifacts[2], registry.path / "versions" / "v3-unregistered")
    outcome = model.reload_if_changed()
    assert outcome.error is not None and "not registered" in str(outcome.error)
    assert model.router.version == "v1"
