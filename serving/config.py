"""Settings of one server process, fixed at start-up.

Limits protect the server from requests that would tie up a scoring thread
for no benefit: the router reads at most 256 tokens of a request anyway, but
tokenising a megabyte of text still costs time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from router_model.errors import ConfigError
from serving.access import TlsFiles, TokenAuthenticator

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9464
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_PROMPT_CHARS = 1_000_000
DEFAULT_MAX_BATCH_SIZE = 1024
# About two seconds of work at this machine's short-prompt throughput: beyond
# that, a caller is better served by a quick RESOURCE_EXHAUSTED and a retry
# elsewhere than by a reply that comes later and later.
DEFAULT_MAX_QUEUED_REQUESTS = 512
DEFAULT_MAX_QUEUE_WAIT_S = 2.0
# Calls being handled at once (queued, scoring or answering); gRPC refuses the
# next with RESOURCE_EXHAUSTED before reading it.
DEFAULT_MAX_CONCURRENT_RPCS = 1024
# Two long prompts, or a few dozen short ones: enough to pay the per-call overhead once
# for many short calls, small enough that a pass of long prompts stays short and lean.
DEFAULT_MAX_COALESCE_TOKENS = 512


def default_workers() -> int:
    return os.cpu_count() or 1


def _at_least(minimum: float, **values: float) -> None:
    for name, value in values.items():
        if not value >= minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; larger requests are refused up front."""

    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queued_requests: int = DEFAULT_MAX_QUEUED_REQUESTS
    max_queue_wait_s: float = DEFAULT_MAX_QUEUE_WAIT_S
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS

    def __post_init__(self) -> None:
        _at_least(1, max_prompt_chars=self.max_prompt_chars, max_batch_size=self.max_batch_size)
        _at_least(1, max_queued_requests=self.max_queued_requests)
        _at_least(1, max_concurrent_rpcs=self.max_concurrent_rpcs)
        if not self.max_queue_wait_s > 0:
            raise ConfigError(f"max_queue_wait_s must be positive, got {self.max_queue_wait_s}")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``tierwise serve`` can be told; the defaults suit one loopback service.

    ``model`` is a router artifact directory, or a registry directory whose
    ``current`` entry (a symlink, or a file holding a name) picks the artifact.
    ``metrics_port`` 0 picks a free port; ``None`` turns the metrics endpoint off.
    ``reload_interval_s`` 0 turns hot reload off. ``drain_s`` is how long health
    reports NOT_SERVING before the server stops accepting calls, so that load
    balancers stop sending traffic first; ``grace_s`` is how long in-flight calls
    may then take to finish. ``max_coalesce_tokens`` caps the tokens of
    concurrent calls scored in one pass (0 scores every call on its own).
    ``challenger`` is a second artifact directory decided in shadow, off the
    request path, with both decisions written to the ``shadow_log`` store URL;
    ``shadow_queue`` bounds the requests waiting for it (docs/shadow-mode.md).
    ``tls`` serves TLS (mutual with a client CA) and ``tokens`` requires a bearer
    token on every call but health checks (``serving.access``).
    """

    model: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Scoring passes at once; None chooses by router (serving.scoring): one at
    # a time on every core for a router that batches, one per core for a router
    # that scores one request per run. 0 is one per core for every router.
    workers: int | None = None
    intra_op_threads: int = 0
    max_coalesce_tokens: int = DEFAULT_MAX_COALESCE_TOKENS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    limits: Limits = field(default_factory=Limits)
    metrics_port: int | None = DEFAULT_METRICS_PORT
    reload_interval_s: float = 5.0
    drain_s: float = 0.0
    grace_s: float = 10.0
    log_prompts: bool = False
    challenger: Path | None = None
    shadow_log: str | None = None
    shadow_queue: int = 1000
    tls: TlsFiles | None = None
    tokens: TokenAuthenticator | None = None

    def __post_init__(self) -> None:
        if self.challenger is not None and not self.shadow_log:
            raise ConfigError("a challenger needs a shadow log (a call-log store URL)")
        _at_least(1, shadow_queue=self.shadow_queue)
        _at_least(0, intra_op_threads=self.intra_op_threads)
        if self.workers is not None:
            _at_least(0, workers=self.workers)
        _at_least(0, max_coalesce_tokens=self.max_coalesce_tokens, port=self.port)
        _at_least(1024, max_message_bytes=self.max_message_bytes)
        _at_least(0, reload_interval_s=self.reload_interval_s, drain_s=self.drain_s)
        _at_least(0, grace_s=self.grace_s)
        if self.metrics_port is not None:
            _at_least(0, metrics_port=self.metrics_port)
        for name, port in (("port", self.port), ("metrics_port", self.metrics_port or 0)):
            if port > 65535:
                raise ConfigError(f"{name} must be at most 65535, got {port}")

    @property
    def scoring_threads(self) -> int:
        """Threads that run scoring passes: the most passes that can run at once."""
        return self.workers or default_workers()


def host_port(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed, as gRPC expects."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
