"""Loading a router artifact directory, failing fast with a precise message.

An artifact is found by convention: ``manifest.json``, ``model.onnx`` and
``tokenizer.json`` in one folder. Every file the manifest lists is checked for
presence, size and SHA-256 before anything is parsed, so a half-copied or
edited artifact is refused with the name of the file at fault.
"""

from __future__ import annotations

import hashlib
import json
import queue
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import onnxruntime as ort

from router_model.errors import ArtifactError
from router_model.manifest import (
    ATTENTION_MASK,
    INPUT_IDS,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT_TOKENS,
    P_SUCCESS,
    SCALAR_FEATURES,
    TOKENIZER_FILE,
    FileDigest,
    Manifest,
)
from router_model.tokenize import RequestTokenizer

REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE)
# onnxruntime's SkipLayerNormalization kernel takes 4x the time of the Add and
# LayerNormalization it would replace (0.22 against 0.06 ms per layer at 256
# tokens on two cores), so the exported encoder keeps them apart and sessions
# must not fuse them again when they load it (docs/performance.md).
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
REQUIRED_INPUTS = {INPUT_IDS, ATTENTION_MASK, SCALAR_FEATURES}
REQUIRED_OUTPUTS = {P_SUCCESS, OUTPUT_TOKENS}
_CHUNK = 1 << 20
STOP_SPINNING_AFTER_RUN = "session.force_spinning_stop"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_file(path: Path) -> FileDigest:
    return FileDigest(sha256=sha256_file(path), bytes=path.stat().st_size)


def read_manifest(directory: str | Path) -> Manifest:
    """Parse and validate ``manifest.json`` and verify every file it lists."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"router artifact not found: {directory} is not a directory")
    manifest_path = directory / MANIFEST_FILE
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(
            f"{manifest_path}: missing; is {directory} a router artifact?"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    manifest = Manifest.from_dict(data)
    _verify_files(directory, manifest.files)
    return manifest


def _verify_files(directory: Path, files: Mapping[str, FileDigest]) -> None:
    for name in REQUIRED_FILES:
        if name not in files:
            raise ArtifactError(f"manifest.json: does not list required file {name}")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing from the artifact")
        size = path.stat().st_size
        if size != expected.bytes:
            raise ArtifactError(
                f"{path}: size is {size} bytes, the manifest says {expected.bytes} "
                "(truncated or replaced?)"
            )
        if sha256_file(path) != expected.sha256:
            raise ArtifactError(f"{path}: SHA-256 does not match the manifest (file was modified)")


def open_session(path: Path, intra_op_threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime session on the CPU with the artifact's graph checked for its I/O.

    onnxruntime's worker threads busy-wait for work. Within a run that makes the
    hand-off between operators fast (0.5 ms of a short call's latency), but by
    default they keep spinning after the run, burning a core that a server's
    event loop needs between scoring passes; so spinning stops when a run ends
    (docs/performance-epyc.md).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(STOP_SPINNING_AFTER_RUN, "1")
    try:
        session = cpu_session(path, options)
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        raise ArtifactError(f"{path}: onnxruntime cannot load the graph ({exc})") from None
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if not inputs >= REQUIRED_INPUTS or not outputs >= REQUIRED_OUTPUTS:
        raise ArtifactError(
            f"{path}: graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}; "
            f"expected inputs {sorted(REQUIRED_INPUTS)} and outputs {sorted(REQUIRED_OUTPUTS)}"
        )
    return session


class SessionPool:
    """Sessions on one graph, each lent to one caller at a time.

    Callers that run in parallel on single-threaded sessions each need one of
    their own; a pool opens another only when every session is lent out.
    """

    def __init__(self, open_one: Callable[[], ort.InferenceSession]) -> None:
        self._open_one = open_one
        self._idle: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()

    def open(self, count: int) -> None:
        """Open ``count`` sessions now rather than when they are first lent."""
        for _ in range(count):
            self._idle.put(self._open_one())

    @contextmanager
    def lend(self) -> Iterator[ort.InferenceSession]:
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            session = self._open_one()
        try:
            yield session
        finally:
            self._idle.put(session)


def cpu_session(path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    """An onnxruntime CPU session that leaves the encoder's residual adds unfused."""
    return ort.InferenceSession(
        str(path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )


def open_tokenizer(directory: Path, manifest: Manifest) -> RequestTokenizer:
    return RequestTokenizer.from_file(directory / TOKENIZER_FILE, manifest.truncation)
