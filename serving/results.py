"""The client's own types: what a caller sends and gets back, free of protobuf.

Results are frozen dataclasses so that they can be passed around and logged
without anyone mutating a decision after the fact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from router_model.errors import TierwiseError
from router_model.text import Message
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving.errors import FIELD_METADATA_KEY

MessageLike = Message | Mapping[str, str]


@dataclass(frozen=True)
class PredictInput:
    """One request to route: ``prompt`` or ``messages``, and optional controls."""

    prompt: str | None = None
    messages: Sequence[MessageLike] = ()
    system: str | None = None
    quality_target: float | None = None
    max_cost_usd: float | None = None
    rule: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = None

    def to_proto(self) -> pb.PredictRequest:
        msg = pb.PredictRequest(messages=[_message(m) for m in self.messages], tags=dict(self.tags))
        for name in ("prompt", "system", "quality_target", "max_cost_usd", "rule", "request_id"):
            value = getattr(self, name)
            if value is not None:
                setattr(msg, name, value)
        return msg


@dataclass(frozen=True)
class PredictResult:
    """The chosen tier, with P(success) and expected cost of every tier (ladder order)."""

    tier: str
    model: str
    rule: str
    p_success: Mapping[str, float]
    expected_cost_usd: Mapping[str, float]
    router_version: str
    server_latency_ms: float
    request_id: str | None = None

    @classmethod
    def from_proto(cls, msg: pb.PredictResponse) -> PredictResult:
        return cls(
            tier=msg.tier,
            model=msg.model,
            rule=msg.rule,
            p_success={s.tier: s.p_success for s in msg.scores},
            expected_cost_usd={s.tier: s.expected_cost_usd for s in msg.scores},
            router_version=msg.router_version,
            server_latency_ms=msg.server_latency_ms,
            request_id=msg.request_id or None,
        )


@dataclass(frozen=True)
class TierInfo:
    name: str
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """The router a server is serving: its tiers, default policy and held-out metrics."""

    router_version: str
    created_at: str
    tiers: tuple[TierInfo, ...]
    default_rule: str
    default_quality_target: float
    rules: tuple[str, ...]
    metrics: Mapping[str, Any]
    embedder: str

    @classmethod
    def from_proto(cls, msg: pb.GetModelInfoResponse) -> ModelInfo:
        return cls(
            router_version=msg.router_version,
            created_at=msg.created_at,
            tiers=tuple(
                TierInfo(
                    name=t.name,
                    model=t.model,
                    input_usd_per_mtok=t.input_usd_per_mtok,
                    output_usd_per_mtok=t.output_usd_per_mtok,
                    aliases=tuple(t.aliases),
                )
                for t in msg.tiers
            ),
            default_rule=msg.default_policy.default_rule,
            default_quality_target=msg.default_policy.default_quality_target,
            rules=tuple(msg.default_policy.rules),
            metrics=_plain(msg.metrics),
            embedder=msg.embedder,
        )


class TierwiseRpcError(TierwiseError):
    """A call that failed; ``field`` names the offending request field for INVALID_ARGUMENT."""

    def __init__(self, code: grpc.StatusCode, details: str, field: str | None = None) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.field = field

    @classmethod
    def from_rpc_error(cls, error: Any) -> TierwiseRpcError:
        """Build from a ``grpc.RpcError`` (sync) or ``grpc.aio.AioRpcError``."""
        metadata = error.trailing_metadata() or ()
        found = [str(value) for key, value in metadata if key == FIELD_METADATA_KEY]
        return cls(error.code(), error.details() or "", found[0] if found else None)


def _message(message: MessageLike) -> pb.Message:
    if isinstance(message, Message):
        return pb.Message(role=message.role, content=message.content)
    return pb.Message(role=message["role"], content=message["content"])


def _plain(value: Any) -> Any:
    """A ``google.protobuf.Struct`` as plain dicts, lists and scalars (numbers are floats)."""
    if hasattr(value, "fields"):  # Struct
        return {key: _plain(value[key]) for key in value.keys()}  # noqa: SIM118
    if hasattr(value, "values"):  # ListValue
        return [_plain(item) for item in value]
    return value
