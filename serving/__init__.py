"""What runs next to live traffic: the gRPC server and its Python clients.

The names below are the public API of the server and clients; modules whose
names start with an underscore, and the server's internals, may change
without notice. Subpackages hold the other parts that run next to traffic.
Names are imported on first use, so that importing ``serving`` for one part
(say, the client) does not load the others.

    from serving import TierwiseClient

    with TierwiseClient("127.0.0.1:50051") as client:
        result = client.predict("Prove that sqrt(2) is irrational.")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.aio_client import AsyncTierwiseClient
    from serving.client import TierwiseClient
    from serving.config import Limits, ServerConfig
    from serving.results import ModelInfo, PredictInput, PredictResult, TierInfo, TierwiseRpcError
    from serving.server import TierwiseServer, serve

_EXPORTS = {
    "AsyncTierwiseClient": "serving.aio_client",
    "Limits": "serving.config",
    "ModelInfo": "serving.results",
    "PredictInput": "serving.results",
    "PredictResult": "serving.results",
    "ServerConfig": "serving.config",
    "TierInfo": "serving.results",
    "TierwiseClient": "serving.client",
    "TierwiseRpcError": "serving.results",
    "TierwiseServer": "serving.server",
    "serve": "serving.server",
}

__all__ = [
    "AsyncTierwiseClient",
    "Limits",
    "ModelInfo",
    "PredictInput",
    "PredictResult",
    "ServerConfig",
    "TierInfo",
    "TierwiseClient",
    "TierwiseRpcError",
    "TierwiseServer",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
