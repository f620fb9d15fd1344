"""A local model registry: every trained router kept, one of them served.

Layout of a registry directory::

    versions/<router_version>/   artifact directories, never modified after add
    versions.jsonl               one line per added version: the SHA-256 of its
                                 manifest.json pinned at add time, plus summary
    current -> versions/<v>      symlink the server follows (serving.source)
    history.jsonl                one line per promote / rollback / reject

Why pinning: an artifact verifies its own files against its manifest, but a
manifest edited in place (other tiers, another policy) would pass that check.
The manifest hash recorded when the version was added is checked again before
the version may become ``current``, and by the server each time it loads
``current`` (``pinned_check``), so what is served is what was evaluated.

``current`` is swapped by creating a temporary symlink and renaming it over the
old one, which is atomic: a server polling the registry sees the old artifact or
the new one, never neither. Mutations take an exclusive ``flock`` so that a cron
retrain and an operator's rollback cannot interleave their writes.

This module imports no training code: servers and operators use it too.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from router_model.artifact import sha256_file
from router_model.errors import ArtifactError, ConfigError
from router_model.manifest import MANIFEST_FILE
from router_model.router import Router
from serving.source import CURRENT

VERSIONS_DIR = "versions"
VERSIONS_FILE = "versions.jsonl"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
Action = Literal["promote", "rollback", "reject"]


@dataclass(frozen=True)
class VersionInfo:
    """One registered artifact, as pinned in ``versions.jsonl``."""

    version: str
    manifest_sha256: str
    created_at: str
    added_at: str
    cost_at_95: float | None


@dataclass(frozen=True)
class Event:
    """One line of ``history.jsonl``."""

    time: str
    action: Action
    version: str
    previous: str | None
    reason: str
    metrics: Mapping[str, Any]


class Registry:
    """A registry directory; created on first write, readable while a server follows it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- reading -------------------------------------------------------------

    def versions(self) -> list[VersionInfo]:
        """Registered versions, oldest first."""
        return [VersionInfo(**line) for line in _read_jsonl(self.path / VERSIONS_FILE)]

    def current(self) -> str | None:
        """The version ``current`` points at, or None when nothing was promoted."""
        pointer = self.path / CURRENT
        if pointer.is_symlink():
            return Path(os.readlink(pointer)).name
        if pointer.is_file():
            return Path(pointer.read_text(encoding="utf-8").strip()).name or None
        return None

    def history(self) -> list[Event]:
        return [
            Event(**{**line, "metrics": line.get("metrics") or {}})
            for line in _read_jsonl(self.path / HISTORY_FILE)
        ]

    def artifact_dir(self, version: str) -> Path:
        return self.path / VERSIONS_DIR / version

    def load(self, version: str) -> Router:
        """Load a registered version after checking its pinned manifest hash."""
        self._verify_pin(version)
        return Router.load(self.artifact_dir(version))

    # -- writing -------------------------------------------------------------

    def add(self, artifact_dir: str | Path) -> str:
        """Copy a loadable artifact into ``versions/`` and pin its manifest; returns its version.

        Adding the same artifact twice is a no-op; a different artifact under an
        existing version name is refused rather than silently replacing it.
        """
        source = Path(artifact_dir)
        version = Router.load(source).version  # refuse anything that does not load
        digest = sha256_file(source / MANIFEST_FILE)
        with self._locked():
            known = {v.version: v for v in self.versions()}
            if version in known:
                if known[version].manifest_sha256 == digest:
                    return version
                raise ConfigError(
                    f"registry {self.path}: version {version} is already registered "
                    "with a different manifest"
                )
            versions = self.path / VERSIONS_DIR
            versions.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=versions))
            try:
                shutil.copytree(source, staging, dirs_exist_ok=True)
                if sha256_file(staging / MANIFEST_FILE) != digest:
                    raise ArtifactError(f"{source}: manifest.json changed while it was copied")
                staging.chmod(0o755)
                staging.rename(versions / version)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            manifest = json.loads((versions / version / MANIFEST_FILE).read_text("utf-8"))
            info = VersionInfo(
                version=version,
                manifest_sha256=digest,
                created_at=str(manifest.get("created_at", "")),
                added_at=_now(),
                cost_at_95=_heldout_cost_at_95(manifest.get("metrics")),
            )
            _append_jsonl(self.path / VERSIONS_FILE, asdict(info))
        return version

    def promote(self, version: str, reason: str, metrics: Mapping[str, Any] | None = None) -> Event:
        """Verify ``version`` (pinned hash, full load) and make it ``current``."""
        with self._locked():
            self.load(version)
            previous = self.current()
            self._point_current_at(version)
            return self._record("promote", version, previous, reason, metrics)

    def rollback(self, reason: str) -> Event:
        """Return to the version that was current before the latest promotion.

        Promotions form a stack replayed from the history: a promotion pushes,
        a rollback pops. So after promoting A, B, C, two rollbacks give B then A.
        """
        with self._locked():
            stack = self._promotion_stack()
            if len(stack) < 2:
                raise ConfigError(
                    f"registry {self.path}: no earlier promoted version to roll back to"
                )
            target = stack[-2]
            self.load(target)
            previous = self.current()
            self._point_current_at(target)
            return self._record("rollback", target, previous, reason, None)

    def reject(self, version: str, reason: str, metrics: Mapping[str, Any] | None = None) -> Event:
        """Record that ``version`` was evaluated and not promoted; ``current`` is unchanged."""
        with self._locked():
            self._verify_pin(version)
            return self._record("reject", version, self.current(), reason, metrics)

    # -- internals -----------------------------------------------------------

    def pinned_check(self, directory: Path) -> None:
        """For a server following ``current``: refuse ``directory`` unless it matches its pin.

        Raises ``ArtifactError`` (never ``ConfigError``), so that a reload keeps
        the old router serving.
        """
        try:
            self._verify_pin(directory.name)
        except ConfigError as exc:
            raise ArtifactError(str(exc)) from None

    def _verify_pin(self, version: str) -> None:
        pinned = {v.version: v.manifest_sha256 for v in self.versions()}
        if version not in pinned:
            known = ", ".join(pinned) or "none"
            raise ConfigError(
                f"registry {self.path}: version {version!r} is not registered (known: {known})"
            )
        manifest = self.artifact_dir(version) / MANIFEST_FILE
        if not manifest.is_file():
            raise ArtifactError(f"{manifest}: missing from the registry")
        actual = sha256_file(manifest)
        if actual != pinned[version]:
            raise ArtifactError(
                f"{manifest}: SHA-256 {actual[:12]}… does not match the hash pinned when "
                f"version {version} was added ({pinned[version][:12]}…); refusing to serve it"
            )

    def _promotion_stack(self) -> list[str]:
        stack: list[str] = []
        for event in self.history():
            if event.action == "promote":
                stack.append(event.version)
            elif event.action == "rollback" and stack:
                stack.pop()
        return stack

    def _point_current_at(self, version: str) -> None:
        target = f"{VERSIONS_DIR}/{version}"
        temp = self.path / f".{CURRENT}.{os.getpid()}.tmp"
        if temp.is_symlink() or temp.exists():
            temp.unlink()
        os.symlink(target, temp)
        os.replace(temp, self.path / CURRENT)

    def _record(
        self,
        action: Action,
        version: str,
        previous: str | None,
        reason: str,
        metrics: Mapping[str, Any] | None,
    ) -> Event:
        event = Event(_now(), action, version, previous, reason, dict(metrics or {}))
        _append_jsonl(self.path / HISTORY_FILE, {**asdict(event), "metrics": event.metrics})
        return event

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def is_registry(path: Path) -> bool:
    """A registry with pins (``versions.jsonl``), rather than an artifact or a bare pointer."""
    return not (path / MANIFEST_FILE).is_file() and (path / VERSIONS_FILE).is_file()


def _heldout_cost_at_95(metrics: Any) -> float | None:
    """The manifest's held-out cost@95 of the cost-aware rule, when it was measured."""
    try:
        value = metrics["routers"]["cost_aware"]["cost_at_95"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{path}:{number}: must be a JSON object")
        lines.append(value)
    return lines


def _append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one line and fsync: a registry event must survive a crash right after it."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
