"""Neighbour success rates: the training-side lookup and the exported graph agree exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from router_model.calls import read_calls
from router_model.errors import ConfigError
from router_model.manifest import MODEL_FILE
from training import neighbours
from training.neighbours import DEFAULT_K, PRIOR_WEIGHT, build_memory, rate_logits


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two tight families of requests: the first always succeeds on tier 0, the second never."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, 384))
    family = np.repeat([0, 1], 30)
    vectors = _unit(centres[family] + 0.05 * rng.normal(size=(60, 384)))
    success = np.column_stack([family == 0, np.ones(60)]).astype(np.float64)
    return vectors, success


def test_rates_follow_the_family_and_shrink_to_the_prior() -> None:
    vectors, success = _clusters()
    memory, own = build_memory(vectors, success, k=10)
    rates = memory.rates(vectors, own_rows=own)
    prior = 0.5
    expected_hit = (10 + PRIOR_WEIGHT * prior) / (10 + PRIOR_WEIGHT)
    np.testing.assert_allclose(rates[:30, 0], expected_hit, rtol=1e-6)
    np.testing.assert_allclose(rates[30:, 0], PRIOR_WEIGHT * prior / (10 + PRIOR_WEIGHT), rtol=1e-6)
    assert np.isfinite(rate_logits(rates)).all()


def test_leave_out_does_not_count_the_request_itself() -> None:
    vectors, success = _clusters()
    success[0, 0] = 0.0  # one failure among the first family's successes
    memory, own = build_memory(vectors, success, k=1)
    inside = memory.rates(vectors[:1])[0, 0]
    left_out = memory.rates(vectors[:1], own_rows=own[:1])[0, 0]
    assert inside < 0.5 < left_out  # alone it finds itself; left out, a sibling


def test_unlabelled_tiers_do_not_vote() -> None:
    vectors, success = _clusters()
    success[:, 1] = np.nan
    success[::2, 1] = 0.0
    memory, _ = build_memory(vectors, success, k=10)
    seen = memory.labelled[:, 1].sum()
    assert seen == 30 and memory.successes[:, 1].sum() == 0.0
    assert memory.rates(vectors)[:, 1].max() < 0.05 / 0.5  # only the labelled failures vote


def test_ties_go_to_the_lower_index_as_in_onnx_topk() -> None:
    vectors = _unit(np.tile(np.arange(1, 385, dtype=np.float64), (2, 1)))
    memory, _ = build_memory(vectors, np.array([[1.0], [0.0]]), k=1)
    assert memory.rates(vectors[:1])[0, 0] > 0.5  # row 0 (a success) wins the tie


def test_a_request_has_the_same_neighbours_alone_and_in_a_batch() -> None:
    vectors, success = _clusters()
    memory, _ = build_memory(vectors, success, k=5)
    rng = np.random.default_rng(1)
    queries = _unit(vectors + 0.2 * rng.normal(size=vectors.shape))
    batched = memory.rates(queries)
    alone = np.vstack([memory.rates(queries[i : i + 1]) for i in range(len(queries))])
    np.testing.assert_array_equal(batched, alone)


def test_large_memories_are_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neighbours, "MAX_MEMORY_ROWS", 40)
    vectors, success = _clusters()
    memory, own = build_memory(vectors, success, k=5)
    assert memory.size == 40
    assert (own >= 0).sum() == 40 and sorted(own[own >= 0]) == list(range(40))


def test_too_few_requests_for_k_is_refused() -> None:
    vectors, success = _clusters()
    with pytest.raises(ConfigError, match="neighbours must be in"):
        build_memory(vectors[:5], success[:5], k=5)


def test_a_blend_never_turns_a_ranking_upside_down() -> None:
    """A leave-one-out rate that falls as success rises (small training sets)
    must not get a negative weight: new requests would be ranked backwards."""
    from training.classifier import _fit_blend

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    margins = labels + rng.normal(size=400)
    agreeing = _fit_blend(margins, labels + rng.normal(size=400), labels, None)
    assert agreeing[0] > 0 and agreeing[1] > 0
    inverted = _fit_blend(margins, -labels + rng.normal(size=400), labels, None)
    np.testing.assert_array_equal(inverted, [1.0, 0.0, 0.0])  # the margin alone
    useless_margin = _fit_blend(-margins, labels + rng.normal(size=400), labels, None)
    assert useless_margin[0] == 0.0 and useless_margin[1] > 0


def test_exported_lookup_ranks_exactly_as_training(
    logreg_router_dir: Path, mmlu_calls: Path
) -> None:
    """The graph's neighbour rates, run on real embeddings, equal the memory's bit for bit."""
    import joblib

    from router_model import Router
    from training.embedder import EMBEDDING, Embedder, embedder_files
    from training.embedding_cache import EmbeddingCache
    from training.features import feature_matrix
    from training.onnx_export import _neighbour_nodes

    memory = joblib.load(logreg_router_dir / "pipeline.joblib").classifier.memory_
    assert memory is not None and memory.k == DEFAULT_K
    requests = list({c.request_id: c.request_text() for c in read_calls(mmlu_calls)}.values())
    embedder = Embedder(embedder_files(), Router.load(logreg_router_dir).manifest.truncation)
    cache = EmbeddingCache.for_embedder(embedder)
    features, _ = feature_matrix(requests[:80], embedder, cache, progress=False)
    embeddings = np.ascontiguousarray(features[:, :384])
    inits: list[onnx.TensorProto] = []
    graph = helper.make_graph(
        _neighbour_nodes(memory, inits),
        "lookup",
        [helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch", 384])],
        [helper.make_tensor_value_info("nb_rate", TensorProto.FLOAT, ["batch", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (graph_rates,) = session.run(["nb_rate"], {EMBEDDING: embeddings.astype(np.float32)})
    np.testing.assert_array_equal(graph_rates, memory.rates(embeddings).astype(np.float32))


def test_manifest_and_graph_say_whether_neighbours_are_used(
    logreg_router_dir: Path, gbt_router_dir: Path
) -> None:
    for directory, k in ((logreg_router_dir, DEFAULT_K), (gbt_router_dir, 0)):
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["classifier"]["neighbours"] == k
        ops = {node.op_type for node in onnx.load(str(directory / MODEL_FILE)).graph.node}
        assert ("MatMulInteger" in ops) == (k > 0)
    manifest = json.loads((logreg_router_dir / "manifest.json").read_text())
    assert (
        manifest["classifier"]["neighbour_memory"] == manifest["training_data"]["requests_fitted"]
    )
