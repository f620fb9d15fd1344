"""Where the served artifact lives, and how to tell that it changed.

``--model`` names either an artifact directory (it holds ``manifest.json``) or a
registry directory whose ``current`` entry picks the artifact: a symlink to it,
or a text file holding its path relative to the registry. Swapping the symlink
with ``rename`` is atomic, so the server never sees a half-written artifact.

A change is noticed by the size and modification time of every file of the
artifact, together with the directory it resolves to. Statting a handful of
files every few seconds costs nothing, and unlike the manifest alone it also
notices a model file copied in after its manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from router_model.errors import ArtifactError
from router_model.manifest import MANIFEST_FILE

CURRENT = "current"


@dataclass(frozen=True)
class Snapshot:
    """The artifact directory ``--model`` points at, and a stamp of its files."""

    directory: Path
    stamp: tuple[tuple[str, int, int], ...]


def resolve(model: Path) -> Path:
    """The artifact directory that ``model`` designates right now."""
    if (model / MANIFEST_FILE).is_file():
        return model
    pointer = model / CURRENT
    if pointer.is_dir():
        return pointer.resolve()
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if not name:
            raise ArtifactError(f"{pointer}: is empty; it should name an artifact directory")
        return (model / name).resolve()
    if pointer.is_symlink():
        raise ArtifactError(f"{pointer}: points at {os.readlink(pointer)}, which does not exist")
    raise ArtifactError(
        f"{model}: not a router artifact (no {MANIFEST_FILE}) "
        f"and not a registry (no '{CURRENT}' entry)"
    )


def snapshot(model: Path) -> Snapshot:
    """Resolve ``model`` and stamp its files; raises ``ArtifactError`` when it is unusable."""
    directory = resolve(model)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        stamp = tuple(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()
        )
    except OSError as exc:
        raise ArtifactError(f"{directory}: cannot be read ({exc.strerror})") from None
    return Snapshot(directory=directory, stamp=stamp)
