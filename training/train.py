"""Training a router end to end: calls → table → features → classifier → artifact.

The data is split by request into a fitted part and a held-out test part; the
classifier calibrates itself on out-of-fold predictions inside the fitted part,
the policy's λ table is fitted on those same out-of-fold predictions, and the
held-out part is touched once, for the metrics recorded in the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.calls import GradedCall, read_calls
from router_model.errors import ConfigError
from router_model.features import FEATURE_NAMES, estimate_tokens
from router_model.manifest import PolicyConfig
from router_model.router import Router
from router_model.tiers import TierLadder, load_tiers
from router_model.tokenize import TruncationRule
from training.artifact_writer import write_artifact
from training.classifier import TierSuccessClassifier
from training.dataset import RequestTable, build_table, data_fingerprint
from training.embedder import EMBEDDER_ID, EMBEDDING_DIM, Embedder, embedder_files
from training.embedding_cache import EmbeddingCache
from training.features import feature_matrix
from training.onnx_export import build_model
from training.output_length import OutputLengthModel, fit_output_length
from training.policy_fit import fit_policy
from training.report import heldout_metrics
from training.split import split_requests

log = logging.getLogger(__name__)
MIN_POLICY_ROWS = 20
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; recorded in the manifest."""

    classifier: str = "logreg"
    calibration: str = "isotonic"
    held_out_fraction: float = 0.2
    seed: int = 0
    max_tokens: int = 256
    head_tokens: int = 128
    quality_target: float = 0.95
    C: float = 1.0
    progress: bool = True


@dataclass(frozen=True)
class TrainResult:
    router: Router
    metrics: dict[str, Any]
    n_requests: int
    n_newly_embedded: int


@dataclass
class FittedPipeline:
    """What training fitted, saved with joblib beside the artifact for inspection."""

    classifier: TierSuccessClassifier
    output_length: OutputLengthModel
    feature_names: tuple[str, ...]
    config: TrainConfig

    def predict_proba(self, X: npt.NDArray[np.float32]) -> FloatArray:
        return self.classifier.predict_proba(X)


def load_calls(paths: Sequence[Path]) -> list[GradedCall]:
    calls: list[GradedCall] = []
    for path in paths:
        calls.extend(read_calls(path))
    return calls


def train_router(
    call_paths: Sequence[Path], tiers_path: Path, out_dir: Path, config: TrainConfig
) -> TrainResult:
    """Train on graded-call files and write the artifact to ``out_dir``."""
    ladder = load_tiers(tiers_path)
    calls = load_calls(call_paths)
    table = build_table(calls, ladder)
    fingerprint = data_fingerprint(calls)
    return train_on_table(table, ladder, out_dir, config, fingerprint, len(calls))


def train_on_table(
    table: RequestTable,
    ladder: TierLadder,
    out_dir: Path,
    config: TrainConfig,
    data_sha256: str = "",
    n_calls: int = 0,
) -> TrainResult:
    rule = TruncationRule(max_tokens=config.max_tokens, head_tokens=config.head_tokens)
    embedder = Embedder(embedder_files(), rule)
    cache = EmbeddingCache.for_embedder(embedder)
    X, computed = feature_matrix(table.requests, embedder, cache, progress=config.progress)
    log.info("features for %d requests (%d newly embedded)", len(table), computed)
    fit_rows, test_rows = split_requests(
        table.request_ids, table.timestamps, config.held_out_fraction, config.seed
    )
    pipeline = _fit(X[fit_rows], table.subset(fit_rows), ladder, config)
    policy = _fit_policy(pipeline, X[fit_rows], table.subset(fit_rows), ladder, config)
    model = build_model(
        embedder.files.onnx_path, pipeline.classifier, pipeline.output_length, len(FEATURE_NAMES)
    )
    manifest = _manifest_fields(
        ladder, rule, embedder, config, policy, table, fit_rows, data_sha256, n_calls
    )
    test = table.subset(test_rows)
    router = write_artifact(
        out_dir,
        model,
        embedder.files.tokenizer_path,
        manifest,
        pipeline,
        evaluate=(lambda r: heldout_metrics(r, test)) if len(test) else None,
    )
    return TrainResult(
        router=router,
        metrics=dict(router.manifest.metrics),
        n_requests=len(table),
        n_newly_embedded=computed,
    )


def _fit(
    X: npt.NDArray[np.float32], table: RequestTable, ladder: TierLadder, config: TrainConfig
) -> FittedPipeline:
    success = np.where(np.isnan(table.grades), np.nan, table.grades >= ladder.pass_grade)
    classifier = TierSuccessClassifier(
        kind=config.classifier,
        calibration=config.calibration,
        C=config.C,
        random_state=config.seed,
        progress=config.progress,
    ).fit(X, success.astype(np.float64), ladder.names)
    lengths = fit_output_length(X, table.output_tokens)
    return FittedPipeline(
        classifier, lengths, (*(f"emb{i}" for i in range(EMBEDDING_DIM)), *FEATURE_NAMES), config
    )


def _fit_policy(
    pipeline: FittedPipeline,
    X: npt.NDArray[np.float32],
    table: RequestTable,
    ladder: TierLadder,
    config: TrainConfig,
) -> PolicyConfig:
    """λ per quality target from the out-of-fold probabilities of fully graded requests."""
    rows = table.fully_graded() & ~np.isnan(pipeline.classifier.oof_proba_).any(axis=1)
    if rows.sum() < MIN_POLICY_ROWS:
        raise ConfigError(
            f"only {int(rows.sum())} training requests are graded on every tier; fitting the "
            f"policy needs at least {MIN_POLICY_ROWS}"
        )
    input_tokens = np.array([estimate_tokens(r.text) for r in table.requests])[rows]
    expected = ladder.expected_costs(input_tokens, pipeline.output_length.predict(X[rows]))
    return fit_policy(
        pipeline.classifier.oof_proba_[rows],
        expected,
        table.grades[rows],
        table.costs[rows],
        default_quality_target=config.quality_target,
    )


def _manifest_fields(
    ladder: TierLadder,
    rule: TruncationRule,
    embedder: Embedder,
    config: TrainConfig,
    policy: PolicyConfig,
    table: RequestTable,
    fit_rows: npt.NDArray[np.int64],
    data_sha256: str,
    n_calls: int,
) -> dict[str, Any]:
    return {
        **ladder.to_dict(),
        "embedder": {
            "id": EMBEDDER_ID,
            "revision": embedder.files.revision,
            "dim": EMBEDDING_DIM,
            "pooling": "mean",
            "normalized": True,
        },
        "truncation": rule.to_dict(),
        "features": {
            "inputs": ["input_ids", "attention_mask", "scalar_features"],
            "scalar": list(FEATURE_NAMES),
            "outputs": ["p_success", "output_tokens"],
        },
        "classifier": {"kind": config.classifier, "calibration": config.calibration},
        "policy": policy.to_dict(),
        "training": asdict(config),
        "training_data": {
            "sha256": data_sha256,
            "calls": n_calls,
            "requests": len(table),
            "requests_fitted": len(fit_rows),
            "requests_held_out": int(len(table) - len(fit_rows)),
            "sources": sorted({s for s in table.sources if s}),
        },
    }
