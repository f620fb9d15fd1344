"""Embeddings cached by text hash, so retraining never embeds the same text twice.

The cache is a folder of append-only ``.npz`` shards per embedder fingerprint
(weights, export format and truncation rule): a new run only adds a shard
holding the texts it had to embed. Shards are written to a temporary name and
renamed, so an interrupted run leaves no torn file behind.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from training.cache_dir import cache_dir
from training.embedder import Embedder


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """Maps text hashes to embeddings for one embedder fingerprint."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._load()

    @classmethod
    def for_embedder(cls, embedder: Embedder) -> EmbeddingCache:
        return cls(cache_dir() / "embeddings" / embedder.fingerprint)

    def __len__(self) -> int:
        return len(self._vectors)

    def _load(self) -> None:
        if not self.directory.is_dir():
            return
        for shard in sorted(self.directory.glob("*.npz")):
            with np.load(shard) as data:
                for key, vector in zip(data["keys"], data["vectors"], strict=True):
                    self._vectors[str(key)] = vector

    def embed(
        self, embedder: Embedder, texts: Sequence[str], progress: bool = True
    ) -> tuple[npt.NDArray[np.float32], int]:
        """Embeddings for ``texts`` and how many of them had to be computed."""
        keys = [text_key(t) for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        if missing:
            vectors = embedder.embed(list(missing.values()), progress=progress)
            new = dict(zip(missing.keys(), vectors, strict=True))
            self._write_shard(new)
            self._vectors.update(new)
        stacked = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0))
        return stacked.astype(np.float32), len(missing)

    def _write_shard(self, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        staging = self.directory / f".{name}.tmp.npz"
        np.savez(staging, keys=np.array(list(vectors)), vectors=np.stack(list(vectors.values())))
        os.replace(staging, self.directory / f"{name}.npz")
