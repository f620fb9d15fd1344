"""Writes a router artifact directory: model.onnx, tokenizer.json, manifest.json.

Files are written into a staging folder beside the target and the folder is
renamed into place, so a reader (a server watching the directory) never sees a
half-written artifact. The joblib pipeline is saved for inspection only and is
listed in the manifest so that it is covered by the same tamper checks; the
serving path never loads it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx

from router_model.artifact import digest_file
from router_model.manifest import MANIFEST_FILE, MODEL_FILE, SCHEMA_VERSION, TOKENIZER_FILE
from router_model.router import Router

PIPELINE_FILE = "pipeline.joblib"
_VERSIONED_PACKAGES = (
    "tierwise",
    "onnxruntime",
    "onnx",
    "tokenizers",
    "torch",
    "scikit-learn",
    "lightgbm",
    "numpy",
    "sentence-transformers",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_artifact(
    out_dir: Path,
    model: onnx.ModelProto,
    tokenizer_path: Path,
    manifest_fields: Mapping[str, Any],
    pipeline: object,
    evaluate: Callable[[Router], Mapping[str, Any]] | None = None,
) -> Router:
    """Write, verify by loading, evaluate, then publish; returns the loaded router.

    ``evaluate`` scores the staged artifact itself (the exact ONNX path that will
    serve), and its result is recorded as the manifest's ``metrics``.
    """
    import joblib

    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)
    try:
        onnx.save_model(model, str(staging / MODEL_FILE))
        shutil.copyfile(tokenizer_path, staging / TOKENIZER_FILE)
        joblib.dump(pipeline, staging / PIPELINE_FILE)
        files = {
            name: digest_file(staging / name).to_dict()
            for name in (MODEL_FILE, TOKENIZER_FILE, PIPELINE_FILE)
        }
        created = datetime.now(UTC)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            **manifest_fields,
            "files": files,
            "versions": package_versions(),
        }
        manifest.setdefault(
            "router_version", f"{created:%Y%m%d-%H%M%S}-{files[MODEL_FILE]['sha256'][:8]}"
        )
        _write_manifest(staging, manifest)
        staged = Router.load(staging)  # refuse to publish anything that does not load
        if evaluate is not None:
            manifest["metrics"] = dict(evaluate(staged))
            _write_manifest(staging, manifest)
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Router.load(out_dir)


def _write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def _publish(staging: Path, out_dir: Path) -> None:
    """Swap the staging folder into place; an existing artifact is replaced whole."""
    if out_dir.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        retired.rmdir()
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out_dir)
