"""``tierwise serve``: answer ``Predict`` over gRPC until SIGTERM or SIGINT.

Flags map one to one onto ``serving.config.ServerConfig``; the server itself
is imported only when the command runs, so the rest of the command line works
without the ``serve`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from tierwise.cli import EXIT_MISSING_EXTRA

_SERVE_ONLY = frozenset({"grpc", "grpc_health", "grpc_reflection", "google", "prometheus_client"})


def _workers(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        message = f"expected a whole number or 'auto', got {value!r}"
        raise argparse.ArgumentTypeError(message) from None


def register(sub: Any) -> argparse.ArgumentParser:
    from serving.config import (
        DEFAULT_MAX_BATCH_SIZE,
        DEFAULT_MAX_COALESCE_TOKENS,
        DEFAULT_MAX_CONCURRENT_RPCS,
        DEFAULT_MAX_MESSAGE_BYTES,
        DEFAULT_MAX_PROMPT_CHARS,
        DEFAULT_MAX_QUEUE_WAIT_S,
        DEFAULT_MAX_QUEUED_REQUESTS,
        DEFAULT_METRICS_PORT,
        DEFAULT_PORT,
    )

    parser = sub.add_parser(
        "serve",
        help="serve Predict over gRPC (see docs/serving.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="router artifact directory, or a registry directory with a 'current' entry",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        metavar="N|auto",
        help="scoring passes at once; auto (default): one at a time on every core for an fp32 "
        "router, one per core for an int8 router; 0: one per core (docs/serving.md)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="onnxruntime threads per scoring pass; 0 means all cores",
    )
    parser.add_argument(
        "--max-coalesce-tokens",
        type=int,
        default=DEFAULT_MAX_COALESCE_TOKENS,
        help="most tokens of concurrent calls scored in one pass; 0 turns coalescing off",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest gRPC message in either direction (gRPC refuses larger ones itself)",
    )
    parser.add_argument(
        "--max-prompt-chars",
        type=int,
        default=DEFAULT_MAX_PROMPT_CHARS,
        help="longer requests are refused with INVALID_ARGUMENT",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=DEFAULT_MAX_BATCH_SIZE,
        help="PredictBatch calls with more requests are refused with INVALID_ARGUMENT",
    )
    parser.add_argument(
        "--max-queued-requests",
        type=int,
        default=DEFAULT_MAX_QUEUED_REQUESTS,
        help="requests that may wait for a scoring worker; more are refused at once "
        "with RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_RPCS,
        help="calls handled at once; gRPC refuses more with RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--max-queue-wait",
        type=float,
        default=DEFAULT_MAX_QUEUE_WAIT_S,
        help="seconds a request may wait for a scoring worker before it is refused "
        "with RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help="Prometheus /metrics port; 0 picks a free port",
    )
    parser.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often to look for a new artifact; 0 turns hot reload off",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on shutdown, report NOT_SERVING this long before refusing calls",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on shutdown, time in-flight calls get to finish",
    )
    parser.add_argument(
        "--log-prompts", action="store_true", help="include prompt text in decision logs"
    )
    parser.add_argument(
        "--challenger",
        type=Path,
        help="second artifact directory decided in shadow; its decisions are logged, never served",
    )
    parser.add_argument(
        "--shadow-log",
        metavar="URL",
        help="call-log store URL for shadow decisions (needed with --challenger)",
    )
    parser.add_argument(
        "--shadow-queue",
        type=int,
        default=1000,
        help="requests waiting for the challenger; more are dropped and counted",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning"),
        help="info logs one line per decision",
    )
    access = parser.add_argument_group("access (docs/serving.md)")
    access.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve TLS")
    access.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    access.add_argument(
        "--tls-client-ca", type=Path, help="PEM CA that client certificates must chain to (mTLS)"
    )
    access.add_argument(
        "--tokens-file",
        type=Path,
        help="'name:token' lines; callers must send 'authorization: Bearer <token>' "
        "(also read from $TIERWISE_TOKENS as comma-separated pairs)",
    )
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def _access(args: argparse.Namespace) -> dict[str, Any]:
    """TLS files and token authenticator from the flags and the environment."""
    from router_model.errors import ConfigError
    from serving.access import TlsFiles, TokenAuthenticator

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS first)")
    tls = None
    if args.tls_cert is not None:
        tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca)
        tls.server_credentials()  # read the files now: a bad path fails before serving
    return {"tls": tls, "tokens": TokenAuthenticator.from_sources(args.tokens_file, os.environ)}


def run(args: argparse.Namespace) -> int:
    try:
        import asyncio

        from serving import logs
        from serving.config import Limits, ServerConfig
        from serving.server import serve
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in _SERVE_ONLY:
            print(
                f"tierwise serve: needs the serving dependencies (missing module '{exc.name}'); "
                "install them with: pip install 'tierwise[serve]'",
                file=sys.stderr,
            )
            return EXIT_MISSING_EXTRA
        raise
    config = ServerConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        workers=args.workers,
        intra_op_threads=args.intra_op_threads,
        max_coalesce_tokens=args.max_coalesce_tokens,
        max_message_bytes=args.max_message_bytes,
        limits=Limits(
            max_prompt_chars=args.max_prompt_chars,
            max_batch_size=args.max_batch_size,
            max_queued_requests=args.max_queued_requests,
            max_queue_wait_s=args.max_queue_wait,
            max_concurrent_rpcs=args.max_concurrent_rpcs,
        ),
        metrics_port=None if args.no_metrics else args.metrics_port,
        reload_interval_s=args.reload_interval,
        drain_s=args.drain,
        grace_s=args.grace,
        log_prompts=args.log_prompts,
        challenger=args.challenger,
        shadow_log=args.shadow_log,
        shadow_queue=args.shadow_queue,
        **_access(args),
    )
    logs.configure(args.log_level.upper())
    tokenize_on_calling_thread(os.environ)
    asyncio.run(serve(config))
    return 0


def tokenize_on_calling_thread(environ: MutableMapping[str, str]) -> None:
    """Keep the tokenizers library from handing each batch to a thread pool of its own.

    Its Rust threads compete with the scoring threads for the same cores: an
    int8 server at c=32 answered about 4% fewer short calls with them (ten
    alternating rounds), and the calls are tokenised in small batches that
    gain nothing from the pool. A value set by the operator is kept.
    """
    environ.setdefault("TOKENIZERS_PARALLELISM", "false")
