"""The artifact: its probabilities equal the fitted pipeline's, and damage is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from router_model import ArtifactError, Router
from router_model.artifact import STOP_SPINNING_AFTER_RUN, open_session
from router_model.calls import read_calls
from router_model.features import FEATURE_NAMES
from router_model.manifest import MODEL_FILE
from router_model.text import RequestText


def _prompts(calls_path: Path, n: int = 60) -> list[RequestText]:
    texts = {c.request_id: c.request_text() for c in read_calls(calls_path)}
    return list(texts.values())[:n]


def _pipeline_proba(directory: Path, requests: list[RequestText]) -> np.ndarray:
    """P(success) the way training computes it: cached embeddings + scalars → pipeline."""
    from training.embedder import Embedder, embedder_files
    from training.embedding_cache import EmbeddingCache
    from training.features import feature_matrix

    router = Router.load(directory)
    precision = router.manifest.raw["embedder"]["precision"]
    embedder = Embedder(embedder_files(precision), router.manifest.truncation)
    X, _ = feature_matrix(requests, embedder, EmbeddingCache.for_embedder(embedder), progress=False)
    pipeline = joblib.load(directory / "pipeline.joblib")
    return np.asarray(pipeline.predict_proba(X))


@pytest.mark.parametrize("fixture", ["logreg_router_dir", "gbt_router_dir", "int8_router_dir"])
def test_onnx_probabilities_equal_fitted_pipeline(
    fixture: str, request: pytest.FixtureRequest, mmlu_calls: Path
) -> None:
    directory: Path = request.getfixturevalue(fixture)
    requests = _prompts(mmlu_calls)
    long_prompt = RequestText(text="Explain step by step. " * 400, turns=1, has_system=False)
    requests.append(long_prompt)  # exercises head-and-tail truncation
    onnx_p = Router.load(directory).score(requests).p_success
    expected = _pipeline_proba(directory, requests)
    assert onnx_p.shape == expected.shape == (len(requests), 3)
    from training.train import ARTIFACT_TOLERANCE

    # int8 activations may round differently in the merged graph (see ARTIFACT_TOLERANCE).
    int8 = Router.load(directory).manifest.embedder_precision == "int8"
    assert np.abs(onnx_p - expected).max() <= (ARTIFACT_TOLERANCE if int8 else 1e-4)
    # A tier whose calibrator learned no signal predicts its base rate; every
    # other tier must vary across prompts.
    calibrators = joblib.load(directory / "pipeline.joblib").classifier.calibrators_
    informative = np.array([len(set(c(np.linspace(-9, 9, 19)))) > 1 for c in calibrators])
    assert informative.any()
    assert (onnx_p.std(axis=0)[informative] > 0.0).all(), "probabilities should vary"


def test_manifest_describes_the_artifact(logreg_router_dir: Path) -> None:
    manifest = json.loads((logreg_router_dir / "manifest.json").read_text())
    assert [t["name"] for t in manifest["tiers"]] == ["small", "medium", "large"]
    assert manifest["embedder"]["id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["truncation"]["head_tokens"] + manifest["truncation"]["tail_tokens"] == 254
    assert manifest["features"]["scalar"] == list(FEATURE_NAMES)
    assert manifest["training_data"]["requests"] == 360
    # 288 fitted requests per tier are too few for isotonic under "auto".
    assert manifest["classifier"]["calibration"] == "auto"
    assert manifest["classifier"]["calibrators"] == dict.fromkeys(
        ["small", "medium", "large"], "sigmoid"
    )
    assert len(manifest["training_data"]["sha256"]) == 64
    assert manifest["metrics"]["requests_judged"] > 0
    assert set(manifest["files"]) >= {"model.onnx", "tokenizer.json"}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "artifact"
    shutil.copytree(src, dst)
    return dst


def test_sessions_stop_spinning_after_a_run(logreg_router_dir: Path) -> None:
    """A server's scoring bursts must leave the cores to its event loop in between."""
    session = open_session(logreg_router_dir / MODEL_FILE, intra_op_threads=1)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry(STOP_SPINNING_AFTER_RUN) == "1"


def test_missing_file_is_refused(logreg_router_dir: Path, tmp_path: Path) -> None:
    art = _copy(logreg_router_dir, tmp_path)
    (art / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: missing"):
        Router.load(art)


def test_truncated_model_is_refused(logreg_router_dir: Path, tmp_path: Path) -> None:
    art = _copy(logreg_router_dir, tmp_path)
    data = (art / "model.onnx").read_bytes()
    (art / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"model\.onnx: size is .*truncated"):
        Router.load(art)


def test_tampered_model_is_refused(logreg_router_dir: Path, tmp_path: Path) -> None:
    art = _copy(logreg_router_dir, tmp_path)
    data = bytearray((art / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (art / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.onnx: SHA-256 does not match"):
        Router.load(art)


def test_damaged_manifest_is_refused(logreg_router_dir: Path, tmp_path: Path) -> None:
    art = _copy(logreg_router_dir, tmp_path)
    manifest = json.loads((art / "manifest.json").read_text())
    del manifest["policy"]
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="missing key 'policy'"):
        Router.load(art)
    (art / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Router.load(art)


def test_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        Router.load(tmp_path / "nope")
    with pytest.raises(ArtifactError, match=r"manifest\.json: missing"):
        Router.load(tmp_path)


def test_training_refuses_a_graph_that_disagrees_with_its_pipeline(
    logreg_router_dir: Path, mmlu_calls: Path, mmlu_tiers: Path
) -> None:
    from router_model.tiers import load_tiers
    from training.dataset import build_table
    from training.embedder import Embedder, embedder_files
    from training.embedding_cache import EmbeddingCache
    from training.features import feature_matrix
    from training.train import check_artifact_agrees

    router = Router.load(logreg_router_dir)
    table = build_table(read_calls(mmlu_calls), load_tiers(mmlu_tiers))
    table = table.subset(np.arange(40))
    embedder = Embedder(embedder_files(), router.manifest.truncation)
    cache = EmbeddingCache.for_embedder(embedder)
    X, _ = feature_matrix(table.requests, embedder, cache, progress=False)
    pipeline = joblib.load(logreg_router_dir / "pipeline.joblib")
    check_artifact_agrees(router, table, pipeline, X)  # the real features agree
    with pytest.raises(RuntimeError, match="differs from the fitted pipeline"):
        check_artifact_agrees(router, table, pipeline, X[::-1].copy())
