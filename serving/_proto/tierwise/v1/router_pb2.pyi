from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("prompt", "messages", "system", "quality_target", "max_cost_usd", "rule", "tags", "request_id")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    QUALITY_TARGET_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    system: str
    quality_target: float
    max_cost_usd: float
    rule: str
    tags: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, prompt: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., system: _Optional[str] = ..., quality_target: _Optional[float] = ..., max_cost_usd: _Optional[float] = ..., rule: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TierScore(_message.Message):
    __slots__ = ("tier", "model", "p_success", "expected_cost_usd")
    TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    P_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    tier: str
    model: str
    p_success: float
    expected_cost_usd: float
    def __init__(self, tier: _Optional[str] = ..., model: _Optional[str] = ..., p_success: _Optional[float] = ..., expected_cost_usd: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("request_id", "tier", "model", "rule", "scores", "router_version", "server_latency_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tier: str
    model: str
    rule: str
    scores: _containers.RepeatedCompositeFieldContainer[TierScore]
    router_version: str
    server_latency_ms: float
    def __init__(self, request_id: _Optional[str] = ..., tier: _Optional[str] = ..., model: _Optional[str] = ..., rule: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[TierScore, _Mapping]]] = ..., router_version: _Optional[str] = ..., server_latency_ms: _Optional[float] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[PredictRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[PredictRequest, _Mapping]]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("responses", "router_version", "server_latency_ms")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[PredictResponse]
    router_version: str
    server_latency_ms: float
    def __init__(self, responses: _Optional[_Iterable[_Union[PredictResponse, _Mapping]]] = ..., router_version: _Optional[str] = ..., server_latency_ms: _Optional[float] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TierInfo(_message.Message):
    __slots__ = ("name", "model", "input_usd_per_mtok", "output_usd_per_mtok", "aliases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., input_usd_per_mtok: _Optional[float] = ..., output_usd_per_mtok: _Optional[float] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class PolicyInfo(_message.Message):
    __slots__ = ("default_rule", "default_quality_target", "rules")
    DEFAULT_RULE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_QUALITY_TARGET_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    default_rule: str
    default_quality_target: float
    rules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, default_rule: _Optional[str] = ..., default_quality_target: _Optional[float] = ..., rules: _Optional[_Iterable[str]] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("router_version", "created_at", "tiers", "default_policy", "metrics", "embedder")
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POLICY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    router_version: str
    created_at: str
    tiers: _containers.RepeatedCompositeFieldContainer[TierInfo]
    default_policy: PolicyInfo
    metrics: _struct_pb2.Struct
    embedder: str
    def __init__(self, router_version: _Optional[str] = ..., created_at: _Optional[str] = ..., tiers: _Optional[_Iterable[_Union[TierInfo, _Mapping]]] = ..., default_policy: _Optional[_Union[PolicyInfo, _Mapping]] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., embedder: _Optional[str] = ...) -> None: ...
