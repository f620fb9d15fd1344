"""``manifest.json``: what a router artifact is, in one self-describing file.

The manifest names the tiers in probability-column order with their prices,
the embedder and truncation rule, the feature list, the policy's fitted
controls, the training data's fingerprint and the held-out metrics, and the
size and SHA-256 of every other file, so that a truncated or tampered file is
caught at load time rather than producing silent nonsense.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router_model.errors import ArtifactError, ConfigError
from router_model.tiers import TierLadder
from router_model.tokenize import TruncationRule

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
SCALAR_FEATURES = "scalar_features"
P_SUCCESS = "p_success"
OUTPUT_TOKENS = "output_tokens"


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class PolicyGuarantee:
    """What the λ table promises, and on how much evidence.

    For each target in ``guaranteed_targets``, the expected quality over traffic
    exchangeable with the ``calibration_requests`` is at least that fraction of
    the top tier's, with probability ``confidence`` over the calibration draw.
    Other targets in the table are best-effort (λ = 0). See
    docs/quality-guarantee.md.
    """

    method: str
    confidence: float
    calibration_requests: int
    guaranteed_targets: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "calibration_requests": self.calibration_requests,
            "guaranteed_targets": list(self.guaranteed_targets),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyGuarantee:
        confidence = float(data["confidence"])
        if not 0.0 < confidence < 1.0:
            raise ConfigError("policy.guarantee.confidence must lie in (0, 1)")
        return cls(
            method=str(data["method"]),
            confidence=confidence,
            calibration_requests=int(data["calibration_requests"]),
            guaranteed_targets=tuple(sorted(float(t) for t in data["guaranteed_targets"])),
        )


@dataclass(frozen=True)
class PolicyConfig:
    """Controls of the decision policy, fitted on held-out data at training time.

    ``lambda_table`` maps a quality target (fraction of the top tier's quality)
    to the cost weight λ fitted for it on calibration data, sorted by target.
    Costs enter the score divided by ``reference_cost_usd`` (a typical top-tier
    call), so λ is unit-free. ``guarantee`` says which targets carry a
    statistical promise; None for artifacts fitted before guarantees existed or
    fitted on predicted rather than real grades. ``gap_calibration`` holds an
    (intercept, slope) pair for each tier but the top, which recalibrates that
    tier's predicted gap to the top tier before the cost-aware rule weighs it
    (``router_model.policy.decision_scores``); empty for none.
    """

    default_quality_target: float
    reference_cost_usd: float
    lambda_table: tuple[tuple[float, float], ...]
    default_rule: str = "cost_aware"
    guarantee: PolicyGuarantee | None = None
    gap_calibration: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "default_rule": self.default_rule,
            "default_quality_target": self.default_quality_target,
            "reference_cost_usd": self.reference_cost_usd,
            "lambda_table": [list(pair) for pair in self.lambda_table],
        }
        if self.guarantee is not None:
            out["guarantee"] = self.guarantee.to_dict()
        if self.gap_calibration:
            out["gap_calibration"] = [list(pair) for pair in self.gap_calibration]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        table = tuple(sorted((float(q), float(lam)) for q, lam in data["lambda_table"]))
        if not table:
            raise ConfigError("policy.lambda_table is empty")
        reference = float(data["reference_cost_usd"])
        if reference <= 0:
            raise ConfigError("policy.reference_cost_usd must be positive")
        guarantee = data.get("guarantee")
        gaps = tuple((float(a), float(b)) for a, b in data.get("gap_calibration", ()))
        if not all(math.isfinite(a) and math.isfinite(b) for a, b in gaps):
            raise ConfigError("policy.gap_calibration must hold finite numbers")
        return cls(
            default_quality_target=float(data["default_quality_target"]),
            reference_cost_usd=reference,
            lambda_table=table,
            default_rule=str(data.get("default_rule", "cost_aware")),
            guarantee=PolicyGuarantee.from_dict(guarantee) if guarantee is not None else None,
            gap_calibration=gaps,
        )


def batch_invariant(precision: str) -> bool:
    """Whether requests scored in one batch get the outputs they would get alone.

    The int8 embedder quantizes activations with one scale per tensor, so
    within a batch each request would shift the others' embeddings; it runs
    one request at a time. fp32 runs length-sorted batches.
    """
    return precision != "int8"


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest; ``raw`` keeps every field, including free-form metrics."""

    ladder: TierLadder
    truncation: TruncationRule
    scalar_features: tuple[str, ...]
    policy: PolicyConfig
    files: Mapping[str, FileDigest]
    router_version: str
    embedder_dim: int
    embedder_precision: str = "fp32"
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> Mapping[str, Any]:
        metrics = self.raw.get("metrics", {})
        return metrics if isinstance(metrics, Mapping) else {}

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate the structure; every failure names the missing or bad key."""
        if not isinstance(data, Mapping):
            raise ArtifactError("manifest.json: must be a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"manifest.json: schema_version {version!r} is not supported "
                f"(this tierwise reads {SCHEMA_VERSION})"
            )
        try:
            ladder = TierLadder.from_dict(
                {"tiers": data["tiers"], "pass_grade": data["pass_grade"]}, "manifest.json"
            )
            policy = PolicyConfig.from_dict(data["policy"])
            gaps = len(policy.gap_calibration)
            if gaps and gaps != len(ladder) - 1:
                raise ConfigError(
                    f"policy.gap_calibration has {gaps} pairs; {len(ladder)} tiers need "
                    f"{len(ladder) - 1} (one for each tier but the top)"
                )
            return cls(
                ladder=ladder,
                truncation=TruncationRule.from_dict(data["truncation"]),
                scalar_features=tuple(str(n) for n in data["features"]["scalar"]),
                policy=policy,
                files={
                    name: FileDigest(sha256=str(d["sha256"]), bytes=int(d["bytes"]))
                    for name, d in data["files"].items()
                },
                router_version=str(data["router_version"]),
                embedder_dim=int(data["embedder"]["dim"]),
                embedder_precision=str(data["embedder"].get("precision", "fp32")),
                raw=data,
            )
        except KeyError as exc:
            raise ArtifactError(f"manifest.json: missing key {exc}") from None
        except (TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise ArtifactError(f"manifest.json: invalid content: {exc}") from None
