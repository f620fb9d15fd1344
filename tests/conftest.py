"""Shared fixtures: small real subsets of the bundled data and routers trained on them.

The exported embedder and the embedding cache live in one directory per test
run, so the embedder is built once per run and every router trained in the
run reuses the embeddings of the texts it shares with the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
N_QUESTIONS = 360


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh tierwise cache per run, unless TIERWISE_CACHE_DIR is set by the caller."""
    if os.environ.get("TIERWISE_CACHE_DIR"):
        yield Path(os.environ["TIERWISE_CACHE_DIR"])
        return
    path = tmp_path_factory.mktemp("tierwise-cache")
    os.environ["TIERWISE_CACHE_DIR"] = str(path)
    yield path
    os.environ.pop("TIERWISE_CACHE_DIR", None)


@pytest.fixture(scope="session")
def mmlu_tiers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.importers import ladder_toml

    path = tmp_path_factory.mktemp("tiers") / "mmlu_pro.toml"
    path.write_text(ladder_toml("mmlu-pro-wide"))
    return path


@pytest.fixture(scope="session")
def mmlu_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Graded calls of the first N_QUESTIONS MMLU-Pro questions (three tiers each)."""
    from router_model.calls import write_calls
    from training.importers import import_calls

    kept, seen = [], set()
    for call in import_calls("mmlu-pro-wide", DATA / "mmlu_pro" / "graded_wide.csv.gz"):
        if call.request_id not in seen:
            if len(seen) == N_QUESTIONS:
                break
            seen.add(call.request_id)
        kept.append(call)
    path = tmp_path_factory.mktemp("calls") / "mmlu_small.jsonl"
    write_calls(path, kept)
    return path


def _train(out: Path, calls: Path, tiers: Path, **overrides: object) -> Path:
    from training.train import TrainConfig, train_router

    config = TrainConfig(progress=False, **overrides)  # type: ignore[arg-type]
    train_router([calls], tiers, out, config)
    return out


@pytest.fixture(scope="session")
def logreg_router_dir(
    tmp_path_factory: pytest.TempPathFactory, mmlu_calls: Path, mmlu_tiers: Path
) -> Path:
    return _train(tmp_path_factory.mktemp("models") / "logreg", mmlu_calls, mmlu_tiers)


@pytest.fixture(scope="session")
def gbt_router_dir(
    tmp_path_factory: pytest.TempPathFactory, mmlu_calls: Path, mmlu_tiers: Path
) -> Path:
    return _train(
        tmp_path_factory.mktemp("models") / "gbt",
        mmlu_calls,
        mmlu_tiers,
        classifier="gbt",
        # The default fixtures calibrate with Platt ("auto" on 288 requests per
        # tier); this one keeps the isotonic head covered end to end, and the
        # head without neighbours.
        calibration="isotonic",
        neighbours=0,
    )


@pytest.fixture(scope="session")
def int8_router_dir(
    tmp_path_factory: pytest.TempPathFactory, mmlu_calls: Path, mmlu_tiers: Path
) -> Path:
    return _train(
        tmp_path_factory.mktemp("models") / "int8",
        mmlu_calls,
        mmlu_tiers,
        embedder_precision="int8",
    )


@pytest.fixture(scope="session")
def serve_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only ``tierwise[serve]``: no torch, no scikit-learn."""
    import subprocess
    import sys

    venv = tmp_path_factory.mktemp("serve-only-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{REPO}[serve]",
        ],
        check=True,
    )
    return python
