"""The one place where the project's exceptions become gRPC status codes.

=====================  ==================  ===========================================
exception              status code         why
=====================  ==================  ===========================================
``InvalidInputError``  INVALID_ARGUMENT    the request can never succeed as sent; this
                                           includes a prompt over ``--max-prompt-chars``
                                           and a batch over ``--max-batch-size``: the
                                           caller must change the request, and a retry
                                           would fail again (RESOURCE_EXHAUSTED would
                                           invite retries meant for quotas)
``NotReadyError``      UNAVAILABLE         no router is loaded yet; retry with backoff
``AuthenticationError`` UNAUTHENTICATED   no token, or one no configured client has
``OverloadedError``    RESOURCE_EXHAUSTED  the scoring queue is full, or the call waited
                                           in it longer than ``--max-queue-wait``; retry
                                           with backoff (another replica may be free)
anything else          INTERNAL            a fault of the server; the details say only
                                           "internal error" and the traceback goes to
                                           the server's log
=====================  ==================  ===========================================

The details of INVALID_ARGUMENT name the offending field, and the field's
path (e.g. ``requests[2].quality_target``) is also sent as trailing metadata
under ``tierwise-field`` so that clients need not parse messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from router_model.errors import InvalidInputError, NotReadyError
from serving.access import AuthenticationError

FIELD_METADATA_KEY = "tierwise-field"


class OverloadedError(Exception):
    """The server sheds this call rather than let queueing delay grow without bound."""


INTERNAL_DETAILS = "internal error"


@dataclass(frozen=True)
class Status:
    """The status to answer a failed call with."""

    code: grpc.StatusCode
    details: str
    field: str | None = None

    @property
    def is_server_fault(self) -> bool:
        return bool(self.code == grpc.StatusCode.INTERNAL)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((FIELD_METADATA_KEY, self.field),) if self.field else ()


def to_status(exc: BaseException) -> Status:
    """Map an exception raised while handling a call to the status the caller sees."""
    if isinstance(exc, InvalidInputError):
        return Status(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.field)
    if isinstance(exc, NotReadyError):
        return Status(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, OverloadedError):
        return Status(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, AuthenticationError):
        return Status(grpc.StatusCode.UNAUTHENTICATED, str(exc))
    return Status(grpc.StatusCode.INTERNAL, INTERNAL_DETAILS)
