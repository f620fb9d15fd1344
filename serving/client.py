"""A small typed client for the ``tierwise.v1.Router`` service.

    with TierwiseClient("127.0.0.1:50051") as client:
        result = client.predict("Summarise this contract ...", quality_target=0.9)
        call_model(result.model)

Each attempt has its own deadline (``timeout``); UNAVAILABLE is retried with
backoff (``retries`` extra attempts), every other failure raises
``TierwiseRpcError`` at once. The channel is opened when the client is built,
never at import, and closed by ``close()`` or on leaving the ``with`` block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from serving._proto.tierwise.v1 import router_pb2 as pb
from serving._proto.tierwise.v1 import router_pb2_grpc
from serving._retry import Backoff, retryable
from serving.access import bearer_metadata
from serving.results import (
    MessageLike,
    ModelInfo,
    PredictInput,
    PredictResult,
    TierwiseRpcError,
)

DEFAULT_TIMEOUT_S = 2.0
Response = TypeVar("Response")


def _open(
    target: str, options: Sequence[tuple[str, Any]], credentials: grpc.ChannelCredentials | None
) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options)
    return grpc.secure_channel(target, credentials, options)


class TierwiseClient:
    """Blocking client; safe to share between threads, as a gRPC channel is."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 2,
        backoff_s: float = 0.05,
        options: Sequence[tuple[str, Any]] = (),
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._backoff = Backoff(retries=retries, base_s=backoff_s)
        self._metadata = bearer_metadata(token)
        self._channel = channel if channel is not None else _open(target, options, credentials)
        self._stub = router_pb2_grpc.RouterStub(self._channel)

    def predict(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[MessageLike] = (),
        system: str | None = None,
        quality_target: float | None = None,
        max_cost_usd: float | None = None,
        rule: str | None = None,
        tags: Mapping[str, str] | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> PredictResult:
        """The tier to call for one request: give ``prompt`` or ``messages``."""
        request = PredictInput(
            prompt=prompt,
            messages=messages,
            system=system,
            quality_target=quality_target,
            max_cost_usd=max_cost_usd,
            rule=rule,
            tags=tags or {},
            request_id=request_id,
        )
        response: pb.PredictResponse = self._call(self._stub.Predict, request.to_proto(), timeout)
        return PredictResult.from_proto(response)

    def predict_batch(
        self, requests: Iterable[PredictInput], *, timeout: float | None = None
    ) -> list[PredictResult]:
        """One result per request, in order; one invalid request fails the whole call."""
        batch = pb.PredictBatchRequest(requests=[r.to_proto() for r in requests])
        response: pb.PredictBatchResponse = self._call(self._stub.PredictBatch, batch, timeout)
        return [PredictResult.from_proto(r) for r in response.responses]

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        response: pb.GetModelInfoResponse = self._call(
            self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout
        )
        return ModelInfo.from_proto(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TierwiseClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self, method: Callable[..., Response], request: Any, timeout: float | None
    ) -> Response:
        delays = self._backoff.delays()
        while True:
            try:
                return method(
                    request,
                    timeout=self.timeout if timeout is None else timeout,
                    metadata=self._metadata,
                )
            except grpc.RpcError as error:
                delay = next(delays, None) if retryable(error.code()) else None
                if delay is None:
                    raise TierwiseRpcError.from_rpc_error(error) from None
                time.sleep(delay)
