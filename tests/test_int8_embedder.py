"""The int8 embedder: close to fp32, smaller, and routing like the fp32 router."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from router_model import Router
from router_model.calls import read_calls
from router_model.text import RequestText
from router_model.tokenize import TruncationRule


def _mmlu_texts(calls_path: Path) -> list[str]:
    return list(dict.fromkeys(c.request_text().text for c in read_calls(calls_path)))


def test_int8_embeddings_keep_cosine_099_on_long_and_short_prompts(mmlu_calls: Path) -> None:
    from training.embedder import Embedder, embedder_files

    texts = sorted(_mmlu_texts(mmlu_calls), key=len)
    sample = texts[:40] + texts[-80:]  # the shortest and the longest questions
    fp32 = Embedder(embedder_files("fp32"), TruncationRule()).embed(sample, progress=False)
    int8 = Embedder(embedder_files("int8"), TruncationRule()).embed(sample, progress=False)
    cosine = (fp32 * int8).sum(axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() >= 0.99, f"min cosine {cosine.min():.4f}"
    assert cosine.mean() >= 0.993
    assert not np.allclose(fp32, int8, atol=1e-4), "the int8 graph should differ from fp32"


def test_parallel_sessions_embed_each_text_as_one_session_does(mmlu_calls: Path) -> None:
    from training.embedder import Embedder, embedder_files

    files, rule = embedder_files("int8"), TruncationRule()
    texts = _mmlu_texts(mmlu_calls)[:60]  # unsorted: the runs go out of their input order
    alone = Embedder(files, rule, parallel_runs=1).embed(texts, progress=False)
    spread = Embedder(files, rule, parallel_runs=3).embed(texts, progress=False)
    assert np.array_equal(spread, alone)
    assert np.unique(alone.round(4), axis=0).shape[0] == len(texts)  # no row copied or missed


def test_int8_graph_quantizes_every_product_with_the_cls_row_apart() -> None:
    from training.embedder import embedder_files
    from training.embedder_quantize import CLS_ROW_MATMULS, FIRST_ROW_SUFFIX, OTHER_ROWS_SUFFIX

    fp32_path, int8_path = embedder_files("fp32").onnx_path, embedder_files("int8").onnx_path
    nodes = onnx.load(str(int8_path)).graph.node
    assert not [n.name for n in nodes if n.op_type == "MatMul"], "a product was left in fp32"
    integer = {n.name for n in nodes if n.op_type == "MatMulInteger"}
    for name in CLS_ROW_MATMULS:
        assert {name + FIRST_ROW_SUFFIX + "_quant", name + OTHER_ROWS_SUFFIX + "_quant"} <= integer
    assert len(integer) == 18 + len(CLS_ROW_MATMULS)  # every dense layer, eight of them twice
    assert len([n for n in nodes if n.op_type == "QAttention"]) == 6
    assert int8_path.stat().st_size < 0.3 * fp32_path.stat().st_size


def _base_margins(directory: Path, requests: list[RequestText]) -> np.ndarray:
    """The linear head's margins on the router's own embedder: what int8 changes first."""
    import joblib

    from training.embedder import Embedder, embedder_files
    from training.embedding_cache import EmbeddingCache
    from training.features import feature_matrix

    router = Router.load(directory)
    embedder = Embedder(
        embedder_files(router.manifest.embedder_precision), router.manifest.truncation
    )
    cache = EmbeddingCache.for_embedder(embedder)
    X, _ = feature_matrix(requests, embedder, cache, progress=False)
    return np.asarray(joblib.load(directory / "pipeline.joblib").classifier.base_margins(X))


def test_int8_router_records_its_precision_and_routes_like_fp32(
    int8_router_dir: Path, logreg_router_dir: Path, mmlu_calls: Path
) -> None:
    int8, fp32 = Router.load(int8_router_dir), Router.load(logreg_router_dir)
    assert int8.manifest.raw["embedder"]["precision"] == "int8"
    assert "-int8-" in int8.manifest.raw["embedder"]["revision"]
    assert fp32.manifest.raw["embedder"]["precision"] == "fp32"
    requests = list({c.request_id: c.request_text() for c in read_calls(mmlu_calls)}.values())
    p8, p32 = int8.score(requests).p_success, fp32.score(requests).p_success
    assert np.abs(p8 - p32).mean() < 0.03
    # A tier without usable signal predicts its base rate; on 288 training
    # requests either embedder may find the same noise tier just above or below
    # that line, so rank agreement is asked of the tiers where both vary.
    varies = (p32.std(axis=0) > 0) & (p8.std(axis=0) > 0)
    assert varies.sum() >= 2
    m8, m32 = _base_margins(int8_router_dir, requests), _base_margins(logreg_router_dir, requests)
    for tier in np.flatnonzero(varies):
        assert np.corrcoef(m8[:, tier], m32[:, tier])[0, 1] > 0.9
        # With 288 requests in memory, 40 neighbours include near-ties that a
        # 0.997-cosine embedding reorders, so P agrees less than the margins do
        # (0.97 per tier in 5-fold cross-validation over all of MMLU-Pro).
        assert np.corrcoef(p8[:, tier], p32[:, tier])[0, 1] > 0.75


@pytest.mark.parametrize("fixture", ["logreg_router_dir", "int8_router_dir"])
def test_batched_scoring_decides_as_one_request_at_a_time(
    fixture: str, request: pytest.FixtureRequest, mmlu_calls: Path
) -> None:
    """The server coalesces concurrent calls into one pass; no call may notice."""
    from router_model.router import DecisionRequest

    router = Router.load(request.getfixturevalue(fixture))
    texts = list({c.request_id: c.request_text() for c in read_calls(mmlu_calls)}.values())[:24]
    requests = [DecisionRequest(text=t) for t in texts]
    together = router.score(texts, batch_size=32).p_success
    alone = np.vstack([router.score([t]).p_success for t in texts])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    if router.manifest.embedder_precision == "int8":
        np.testing.assert_array_equal(together, alone)
    batched = [d.tier for d in router.decide(requests)]
    assert batched == [d.tier for r in requests for d in router.decide([r])]
