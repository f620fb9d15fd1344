"""The one server interceptor: access, status codes, metrics and error logs.

Handlers raise the project's exceptions; this wraps each unary-unary handler
so that an exception becomes the status that ``serving.errors.to_status``
chooses, the call is counted and timed by method and code, and a server
fault is logged with its traceback while the caller sees only a generic
message. Streaming handlers (health ``Watch``, reflection) pass through,
except that with token authentication on, a call without a valid token is
refused with UNAUTHENTICATED whatever its kind (``serving.access``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from serving.access import OPEN_SERVICES, AuthenticationError, TokenAuthenticator
from serving.errors import to_status
from serving.logs import fields
from serving.metrics import Metrics

logger = logging.getLogger("tierwise.serving.rpc")

Continuation = Callable[[Any], Awaitable[Any]]


class StatusInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Maps exceptions to status codes and records every unary call in ``metrics``."""

    def __init__(self, metrics: Metrics, tokens: TokenAuthenticator | None = None) -> None:
        self._metrics = metrics
        self._tokens = tokens

    async def intercept_service(self, continuation: Continuation, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return handler
        service, _, method = str(details.method).lstrip("/").rpartition("/")
        if self._tokens is not None and service not in OPEN_SERVICES:
            try:
                self._tokens.client_of(details.invocation_metadata)
            except AuthenticationError as exc:
                if handler.unary_unary is None:
                    return _refusal(handler, exc)
                return _copy(handler, self._wrap(_raiser(exc), service, method))
        if handler.unary_unary is None:
            return handler
        return _copy(handler, self._wrap(handler.unary_unary, service, method))

    def _wrap(
        self, behavior: Callable[[Any, Any], Any], service: str, method: str
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        metrics = self._metrics

        async def call(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            metrics.started.labels(service, method).inc()
            metrics.in_flight.inc()
            try:
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                status = to_status(exc)
                code = status.code
                _log_failure(service, method, status.code, exc, status.is_server_fault)
                await context.abort(status.code, status.details, status.trailing_metadata())
            finally:
                metrics.in_flight.dec()
                seconds = time.perf_counter() - start
                metrics.latency.labels(service, method).observe(seconds)
                metrics.handled.labels(service, method, code.name).inc()
                if code != grpc.StatusCode.OK:
                    metrics.errors.labels(service, method, code.name).inc()

        return call


def _copy(handler: Any, behavior: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _raiser(exc: Exception) -> Callable[[Any, Any], Any]:
    def behavior(request: Any, context: Any) -> Any:
        raise exc

    return behavior


def _refusal(handler: Any, exc: Exception) -> Any:
    """A streaming handler of the same kind that answers with ``exc``'s status."""
    status = to_status(exc)

    async def abort(request: Any, context: Any) -> None:
        await context.abort(status.code, status.details)

    kinds = {
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    kind = next(k for k in kinds if getattr(handler, k) is not None)
    return kinds[kind](
        abort,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _log_failure(
    service: str, method: str, code: grpc.StatusCode, exc: Exception, server_fault: bool
) -> None:
    context = fields(grpc_service=service, grpc_method=method, grpc_code=code.name)
    if server_fault:
        logger.error("call failed: %s", type(exc).__name__, exc_info=exc, extra=context)
    else:
        logger.info("call refused: %s", exc, extra=context)
