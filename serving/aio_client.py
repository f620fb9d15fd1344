"""The asyncio twin of ``TierwiseClient``, for services built on asyncio.

Create it inside the running event loop (a ``grpc.aio`` channel belongs to
the loop it is first used on) and close it with ``await client.close()`` or
``async with``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from serving._proto.tierwise.v1 import router_pb2 as pb
from serving._proto.tierwise.v1 import router_pb2_grpc
from serving._retry import Backoff, retryable
from serving.access import bearer_metadata
from serving.client import DEFAULT_TIMEOUT_S
from serving.results import (
    MessageLike,
    ModelInfo,
    PredictInput,
    PredictResult,
    TierwiseRpcError,
)

Response = TypeVar("Response")


class AsyncTierwiseClient:
    """Non-blocking client with the same methods, timeouts and retries as ``TierwiseClient``."""

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
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._backoff = Backoff(retries=retries, base_s=backoff_s)
        self._metadata = bearer_metadata(token)
        self._channel = (
            grpc.aio.insecure_channel(target, options)
            if credentials is None
            else grpc.aio.secure_channel(target, credentials, options)
        )
        self._stub = router_pb2_grpc.RouterStub(self._channel)

    async def predict(
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
        response: pb.PredictResponse = await self._call(
            self._stub.Predict, request.to_proto(), timeout
        )
        return PredictResult.from_proto(response)

    async def predict_batch(
        self, requests: Iterable[PredictInput], *, timeout: float | None = None
    ) -> list[PredictResult]:
        batch = pb.PredictBatchRequest(requests=[r.to_proto() for r in requests])
        response: pb.PredictBatchResponse = await self._call(
            self._stub.PredictBatch, batch, timeout
        )
        return [PredictResult.from_proto(r) for r in response.responses]

    async def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        response: pb.GetModelInfoResponse = await self._call(
            self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout
        )
        return ModelInfo.from_proto(response)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncTierwiseClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self, method: Callable[..., Awaitable[Response]], request: Any, timeout: float | None
    ) -> Response:
        delays = self._backoff.delays()
        while True:
            try:
                return await method(
                    request,
                    timeout=self.timeout if timeout is None else timeout,
                    metadata=self._metadata,
                )
            except grpc.aio.AioRpcError as error:
                delay = next(delays, None) if retryable(error.code()) else None
                if delay is None:
                    raise TierwiseRpcError.from_rpc_error(error) from None
                await asyncio.sleep(delay)
