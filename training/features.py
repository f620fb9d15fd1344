"""The feature matrix a classifier is fitted on: embedding then scalar features.

It is the same concatenation the ONNX head performs, in the same float32
precision, so that fitted weights apply unchanged inside the graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router_model.features import scalar_features
from router_model.text import RequestText
from training.embedder import Embedder
from training.embedding_cache import EmbeddingCache


def feature_matrix(
    requests: Sequence[RequestText],
    embedder: Embedder,
    cache: EmbeddingCache,
    progress: bool = True,
) -> tuple[npt.NDArray[np.float32], int]:
    """[N, dim + n_scalar] float32 features, and how many texts were newly embedded."""
    embeddings, computed = cache.embed(embedder, [r.text for r in requests], progress=progress)
    return np.hstack([embeddings, scalar_features(requests)]).astype(np.float32), computed
