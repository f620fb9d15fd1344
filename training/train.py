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
from router_model.errors import InvalidInputError
from router_model.features import FEATURE_NAMES, estimate_tokens
from router_model.manifest import PolicyConfig
from router_model.router import Router
from router_model.tiers import TierLadder, load_tiers
from router_model.tokenize import TruncationRule
from training.artifact_writer import write_artifact
from training.classifier import TierSuccessClassifier
from training.dataset import RequestTable, build_table, data_fingerprint, tiers_better_than_top
from training.embedder import EMBEDDER_ID, EMBEDDING_DIM, Embedder, embedder_files
from training.embedding_cache import EmbeddingCache
from training.features import feature_matrix
from training.neighbours import DEFAULT_K
from training.onnx_export import build_model
from training.output_length import OutputLengthModel, fit_output_length
from training.policy_fit import fit_gap_calibration, fit_policy
from training.report import RouterOutputs, heldout_metrics
from training.split import split_requests

log = logging.getLogger(__name__)
MIN_POLICY_ROWS = 20
# Held-out requests scored through the exported graph to hold it to the pipeline.
# fp32 graphs agree to about 1e-6. An int8 encoder may round one activation
# differently when it runs on a different number of threads, which moves P by up
# to about 0.002. A wrong graph or wrong features move it by 0.05 or more.
ARTIFACT_CHECK_ROWS = 16
ARTIFACT_TOLERANCE = 0.01
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; recorded in the manifest."""

    classifier: str = "logreg"
    calibration: str = "auto"
    held_out_fraction: float = 0.2
    seed: int = 0
    max_tokens: int = 256
    head_tokens: int = 128
    quality_target: float = 0.95
    # Probability that each guaranteed quality target holds on new traffic.
    guarantee_confidence: float = 0.9
    C: float = 1.0
    # k nearest training requests blended into each tier's margin; 0 turns it off.
    neighbours: int = DEFAULT_K
    embedder_precision: str = "fp32"
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
    if warning := tiers_better_than_top(table, ladder):
        log.warning(warning)
    rule = TruncationRule(max_tokens=config.max_tokens, head_tokens=config.head_tokens)
    embedder = Embedder(embedder_files(config.embedder_precision), rule)
    cache = EmbeddingCache.for_embedder(embedder)
    X, computed = feature_matrix(table.requests, embedder, cache, progress=config.progress)
    log.info("features for %d requests (%d newly embedded)", len(table), computed)
    fit_rows, test_rows = split_requests(
        table.request_ids, table.timestamps, config.held_out_fraction, config.seed
    )
    pipeline = _fit(X[fit_rows], table.subset(fit_rows), ladder, config)
    policy, policy_source = _fit_policy(
        pipeline, X[fit_rows], table.subset(fit_rows), ladder, config
    )
    model = build_model(
        embedder.files.onnx_path, pipeline.classifier, pipeline.output_length, len(FEATURE_NAMES)
    )
    manifest = _manifest_fields(
        pipeline.classifier,
        ladder,
        rule,
        embedder,
        config,
        policy,
        policy_source,
        table,
        fit_rows,
        data_sha256,
        n_calls,
    )
    test = table.subset(test_rows)
    router = write_artifact(
        out_dir,
        model,
        embedder.files.tokenizer_path,
        manifest,
        pipeline,
        evaluate=(lambda r: _heldout_or_reason(r, test, pipeline, X[test_rows]))
        if len(test)
        else None,
    )
    return TrainResult(
        router=router,
        metrics=dict(router.manifest.metrics),
        n_requests=len(table),
        n_newly_embedded=computed,
    )


def _heldout_or_reason(
    router: Router, test: RequestTable, pipeline: FittedPipeline, X: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Held-out metrics, or why there are none (too few requests graded on every tier).

    The held-out requests are scored by the fitted pipeline on their cached
    features rather than by running the artifact's encoder over them again,
    which would double the embedding time of a warm retrain. The artifact is
    held to the pipeline's outputs on a sample first, so the metrics are those
    of the graph that will serve.
    """
    check_artifact_agrees(router, test, pipeline, X)
    try:
        return heldout_metrics(
            router, test, scoring=lambda r, t: _fitted_outputs(r, t, pipeline, X)
        )
    except InvalidInputError as exc:
        log.warning("no held-out metrics: %s", exc)
        return {"skipped": str(exc)}


def _fitted_outputs(
    router: Router, test: RequestTable, pipeline: FittedPipeline, X: npt.NDArray[np.float32]
) -> RouterOutputs:
    p_success = np.clip(pipeline.predict_proba(X), 0.0, 1.0)
    costs = _expected_costs(pipeline, X, test, router.ladder)
    return RouterOutputs(router.ladder, p_success, costs, router.manifest.policy)


def _expected_costs(
    pipeline: FittedPipeline, X: npt.NDArray[np.float32], table: RequestTable, ladder: TierLadder
) -> FloatArray:
    """[N, T] USD per request and tier: known input, the pipeline's predicted output."""
    input_tokens = np.array([estimate_tokens(r.text) for r in table.requests], dtype=np.float64)
    return ladder.expected_costs(input_tokens, pipeline.output_length.predict(X))


def check_artifact_agrees(
    router: Router, test: RequestTable, pipeline: FittedPipeline, X: npt.NDArray[np.float32]
) -> None:
    """Refuse an artifact whose graph disagrees with the fitted pipeline."""
    rows = np.arange(min(len(test), ARTIFACT_CHECK_ROWS))
    graph = router.score([test.requests[i] for i in rows]).p_success
    fitted = np.clip(pipeline.predict_proba(X[rows]), 0.0, 1.0)
    gap = float(np.abs(graph - fitted).max(initial=0.0))
    if gap > ARTIFACT_TOLERANCE:
        raise RuntimeError(
            f"the exported graph's P(success) differs from the fitted pipeline's by {gap:.2g} "
            f"(tolerance {ARTIFACT_TOLERANCE}); the artifact was not published"
        )


def _fit(
    X: npt.NDArray[np.float32], table: RequestTable, ladder: TierLadder, config: TrainConfig
) -> FittedPipeline:
    classifier = TierSuccessClassifier(
        kind=config.classifier,
        calibration=config.calibration,
        C=config.C,
        random_state=config.seed,
        progress=config.progress,
        neighbours=_neighbours_for(config.neighbours, len(table)),
        embedding_dim=EMBEDDING_DIM,
    ).fit(X, table.successes, ladder.names, sample_weight=table.weights)
    lengths = fit_output_length(X, table.output_tokens)
    return FittedPipeline(
        classifier, lengths, (*(f"emb{i}" for i in range(EMBEDDING_DIM)), *FEATURE_NAMES), config
    )


def _neighbours_for(k: int, n_requests: int) -> int:
    """``k``, or none when the training set is too small to have k neighbours."""
    if k > 0 and n_requests <= k:
        log.warning("only %d requests: training without neighbours", n_requests)
        return 0
    return k


def _fit_policy(
    pipeline: FittedPipeline,
    X: npt.NDArray[np.float32],
    table: RequestTable,
    ladder: TierLadder,
    config: TrainConfig,
) -> tuple[PolicyConfig, str]:
    """λ per quality target, and what it was fitted on.

    With enough requests graded on every tier, λ is fitted on their real
    grades and costs, routed by out-of-fold probabilities. A call log that
    grades only the tier that answered has few such requests; then λ is fitted
    on the model's own expectations (mean P(success) and expected cost of every
    request), which is weaker and carries no quality guarantee, and the
    manifest says so.
    """
    expected = _expected_costs(pipeline, X, table, ladder)
    rows = table.fully_graded() & ~np.isnan(pipeline.classifier.oof_proba_).any(axis=1)
    if rows.sum() >= MIN_POLICY_ROWS:
        oof = pipeline.classifier.oof_proba_[rows]
        policy = fit_policy(
            oof,
            expected[rows],
            table.grades[rows],
            table.costs[rows],
            default_quality_target=config.quality_target,
            confidence=config.guarantee_confidence,
            gap_calibration=fit_gap_calibration(oof, table.successes[rows]),
        )
        return policy, "held-out grades"
    log.warning(
        "only %d requests are graded on every tier; fitting the policy on predicted "
        "P(success) instead of real grades",
        int(rows.sum()),
    )
    p = pipeline.classifier.predict_proba(X)
    policy = fit_policy(
        p, expected, p, expected, default_quality_target=config.quality_target, confidence=None
    )
    return policy, "predicted P(success)"


def _manifest_fields(
    classifier: TierSuccessClassifier,
    ladder: TierLadder,
    rule: TruncationRule,
    embedder: Embedder,
    config: TrainConfig,
    policy: PolicyConfig,
    policy_source: str,
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
            "precision": config.embedder_precision,
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
        "classifier": {
            "kind": config.classifier,
            "calibration": config.calibration,
            "neighbours": 0 if classifier.memory_ is None else classifier.memory_.k,
            "neighbour_memory": 0 if classifier.memory_ is None else classifier.memory_.size,
            "calibrators": {
                tier: c.method
                for tier, c in zip(classifier.classes_, classifier.calibrators_, strict=True)
            },
        },
        "policy": {**policy.to_dict(), "fitted_on": policy_source},
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
