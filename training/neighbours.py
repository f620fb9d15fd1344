"""Neighbour success rates: how often the tiers succeeded on the most similar
training requests, computed exactly as the exported graph computes them.

Requests come in families (the same task template with different data), and
a family's success on a tier is often better told by its members than by a
linear boundary through the whole embedding space. The router therefore
keeps its training requests' embeddings and labels, finds each new request's
``k`` nearest ones by cosine similarity and reads each tier's smoothed success
rate among them: ``(successes + α·prior) / (labelled + α)``.

The memory is stored as 7-bit integer codes with one scale per row, and each
query is rounded to 8 bits with one scale per row, so the exported graph can
rank neighbours with onnxruntime's ``MatMulInteger`` (uint8 × int8). 7 bits
keep every pair of products below the int16 saturation of the AVX2 kernel
(255·63·2 < 2¹⁵), and the integer sums are exact in float32 (< 2²⁴): this
module and the graph rank neighbours identically, and one request's
neighbours do not depend on what else shares its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_model.errors import ConfigError

DEFAULT_K = 40
# Pseudo-requests at the tier's base rate: keeps a family of two from reading
# as certain success or failure, and keeps every rate's logit finite.
PRIOR_WEIGHT = 2.0
# The memory grows with the call log; beyond this many requests a uniform
# sample is kept, which bounds the artifact's size and the server's memory.
MAX_MEMORY_ROWS = 50_000
_BATCH = 512
MEMORY_LEVELS = 63  # 7-bit memory codes
QUERY_LEVELS = 127  # 8-bit queries, stored as uint8 around a zero point of 128
QUERY_ZERO = 128
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class NeighbourMemory:
    """Training requests as int8 codes, with their per-tier success labels."""

    codes: npt.NDArray[np.int8]  # [N, D]
    scales: npt.NDArray[np.float32]  # [N]
    successes: npt.NDArray[np.float32]  # [N, T]; 0 where the tier is unlabelled
    labelled: npt.NDArray[np.float32]  # [N, T]; 1 where the tier is labelled
    prior: npt.NDArray[np.float32]  # [T] base rate per tier
    k: int

    @property
    def size(self) -> int:
        return int(self.codes.shape[0])

    def rates(
        self,
        embeddings: npt.NDArray[np.float32],
        own_rows: npt.NDArray[np.int64] | None = None,
    ) -> FloatArray:
        """[N, T] smoothed success rate among each query's k nearest requests.

        ``own_rows[i]`` is the memory row that query i itself is (−1 if none);
        that row does not count as its neighbour, which gives training the
        out-of-fold view a new request will have.
        """
        queries = np.asarray(embeddings, dtype=np.float32)
        out = np.empty((queries.shape[0], self.successes.shape[1]), dtype=np.float64)
        codes_t = self.codes.T.astype(np.float32)
        for start in range(0, queries.shape[0], _BATCH):
            block = queries[start : start + _BATCH]
            similarity = (_quantized_query(block) @ codes_t) * self.scales
            if own_rows is not None:
                own = own_rows[start : start + _BATCH]
                inside = np.flatnonzero(own >= 0)
                similarity[inside, own[inside]] = -np.inf
            nearest = _top_k(similarity, self.k)
            hits = self.successes[nearest].sum(axis=1, dtype=np.float32)
            seen = self.labelled[nearest].sum(axis=1, dtype=np.float32)
            weight = np.float32(PRIOR_WEIGHT)
            out[start : start + _BATCH] = (hits + weight * self.prior) / (seen + weight)
        return out


def build_memory(
    embeddings: npt.NDArray[np.float32],
    success: FloatArray,
    k: int = DEFAULT_K,
    seed: int = 0,
) -> tuple[NeighbourMemory, npt.NDArray[np.int64]]:
    """Memory of the training requests, and which of them it kept.

    ``success`` is [N, T] 0/1 with NaN where a tier is unlabelled. The second
    value maps each request to its memory row (−1 for one left out of a memory
    that had to be sampled), ready for ``rates(own_rows=...)``.
    """
    labels = np.asarray(success, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[0] != len(embeddings):
        raise ConfigError(f"success labels {labels.shape} do not match {len(embeddings)} rows")
    rows = np.arange(len(embeddings))
    if len(rows) > MAX_MEMORY_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_MEMORY_ROWS, replace=False))
    if not 1 <= k < len(rows):
        raise ConfigError(f"neighbours must be in [1, {len(rows) - 1}] for {len(rows)} requests")
    vectors = np.asarray(embeddings, dtype=np.float32)[rows]
    scales = row_scales(vectors, MEMORY_LEVELS)
    codes = np.clip(np.rint(vectors / scales), -MEMORY_LEVELS, MEMORY_LEVELS).astype(np.int8)
    known = ~np.isnan(labels[rows])
    hits = np.where(known, labels[rows], 0.0)
    prior = hits.sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    own_rows = np.full(len(embeddings), -1, dtype=np.int64)
    own_rows[rows] = np.arange(len(rows))
    memory = NeighbourMemory(
        codes=codes,
        scales=scales[:, 0],
        successes=hits.astype(np.float32),
        labelled=known.astype(np.float32),
        prior=np.clip(prior, 0.01, 0.99).astype(np.float32),
        k=k,
    )
    return memory, own_rows


def rate_logits(rates: FloatArray) -> FloatArray:
    """log(r / (1 − r)); the prior keeps every rate strictly inside (0, 1)."""
    return np.asarray(np.log(rates) - np.log1p(-rates))


def row_scales(vectors: npt.NDArray[np.float32], levels: int) -> npt.NDArray[np.float32]:
    """[N, 1] max |x| / levels per row, in float32 as the graph computes it."""
    peak = np.abs(vectors).max(axis=1, keepdims=True)
    return np.asarray(np.maximum(peak, np.float32(1e-12)) / np.float32(levels), dtype=np.float32)


def _quantized_query(block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each query rounded to ±127 levels of its own scale (half to even), as exact floats.

    The ranking of one query's neighbours does not depend on its scale, so the
    scale is left out of the similarity.
    """
    levels = np.rint(block / row_scales(block, QUERY_LEVELS))
    return np.asarray(np.clip(levels, -QUERY_LEVELS, QUERY_LEVELS), dtype=np.float32)


def _top_k(similarity: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Indices of the k largest per row; ties go to the lower index, as ONNX TopK does."""
    kth = np.partition(similarity, -k, axis=1)[:, -k][:, None]
    nearest = np.empty((similarity.shape[0], k), dtype=np.int64)
    for row, (values, threshold) in enumerate(zip(similarity, kth, strict=True)):
        candidates = np.flatnonzero(values >= threshold)
        order = np.lexsort((candidates, -values[candidates]))
        nearest[row] = candidates[order[:k]]
    return nearest
