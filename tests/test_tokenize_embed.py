"""Truncation rule, exported embedder fidelity, and the embedding cache."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from router_model.errors import ConfigError
from router_model.tokenize import TruncationRule


def test_head_and_tail_are_kept() -> None:
    rule = TruncationRule(max_tokens=10, head_tokens=3)
    ids = list(range(100))
    assert rule.cut_ids(ids) == [0, 1, 2, 95, 96, 97, 98, 99]
    assert rule.cut_ids(ids[:8]) == ids[:8]
    assert TruncationRule(max_tokens=10, head_tokens=8).cut_ids(ids) == list(range(8))


def test_invalid_rule_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid truncation rule"):
        TruncationRule(max_tokens=16, head_tokens=15)


def test_long_text_is_cut_to_its_ends_before_tokenizing() -> None:
    rule = TruncationRule(max_chars=10)
    assert rule.cut_text("abcdefghijklmnopqrstuvwxyz") == "abcdevwxyz"


def test_exported_embedder_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    from training.embedder import Embedder, embedder_files, model_dir

    texts = [
        "What is the capital of France?",
        "def add(a, b):\n    return a + b  # explain this function",
        "Résumé: une question en français, avec des accents.",
    ]
    reference = SentenceTransformer(str(model_dir()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    ours = Embedder(embedder_files(), TruncationRule()).embed(texts, progress=False)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() > 0.9999


def test_encoder_stays_in_fast_kernels_once_loaded(tmp_path: Path) -> None:
    """Attention fused; residual adds and layer norms apart, in the file and once loaded."""
    import onnxruntime as ort

    from router_model.artifact import cpu_session
    from training.embedder import NUM_LAYERS, embedder_files

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    exported = embedder_files().onnx_path
    cpu_session(exported, options)
    for path in (exported, tmp_path / "loaded.onnx"):
        ops = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
        assert ops["Attention"] == NUM_LAYERS, path
        assert ops["LayerNormalization"] == 2 * NUM_LAYERS, path
        assert ops["SkipLayerNormalization"] == 0, path


def test_cache_embeds_each_text_once() -> None:
    from training.embedder import Embedder, embedder_files
    from training.embedding_cache import EmbeddingCache

    embedder = Embedder(embedder_files(), TruncationRule())
    cache = EmbeddingCache.for_embedder(embedder)
    run = uuid.uuid4().hex  # new to any cache, including a caller's TIERWISE_CACHE_DIR
    texts = [f"cache test one {run}", f"cache test two {run}", f"cache test one {run}"]
    first, computed = cache.embed(embedder, texts, progress=False)
    assert computed == 2
    reopened = EmbeddingCache.for_embedder(embedder)  # a new process reads the shards
    again, computed_again = reopened.embed(embedder, texts, progress=False)
    assert computed_again == 0
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], first[2])


def test_runs_cap_rows_and_padded_tokens_and_keep_every_text_once() -> None:
    from training.embedder import TOKENS_PER_RUN, _runs

    lengths = [5, 300, 40, 40, 2000, 12, 128, 129, 7, 64] * 7
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    runs = list(_runs(order, lengths, max_rows=8))
    assert [i for run in runs for i in run] == order
    for run in runs:
        assert len(run) <= 8
        longest = max(lengths[i] for i in run)
        assert len(run) == 1 or len(run) * longest <= TOKENS_PER_RUN
    assert [2000] in [[lengths[i] for i in run] for run in runs]  # too long to share a run
    assert len(runs) < len(lengths) / 2  # short texts still share runs
