"""The gRPC server: health, reflection, the Router service, metrics and hot reload.

Start-up follows the readiness pattern of model servers: the port opens with
health NOT_SERVING, the router loads and is validated, and only then does
health report SERVING. Shutdown runs the other way: health NOT_SERVING first
(for ``drain_s``, so balancers move traffic away), then ``server.stop(grace)``
refuses new calls while those in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from router_model.errors import ConfigError
from router_model.router import Router
from serving import reloader
from serving._proto.tierwise.v1 import router_pb2, router_pb2_grpc
from serving.calllog import CallLogStore, CallLogWriter, open_store
from serving.config import ServerConfig, host_port
from serving.interceptor import StatusInterceptor
from serving.logs import fields
from serving.metrics import Metrics
from serving.model import RouterModel
from serving.scoring import Scorer
from serving.servicer import RouterServicer
from serving.shadow.server_side import ShadowScorer

logger = logging.getLogger("tierwise.serving")

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name
HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class TierwiseServer:
    """One server: ``await start()``, ``await load_model()``, later ``await stop()``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.model = RouterModel(config.model, config.intra_op_threads, config.scoring_threads)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._scorer = Scorer(
            self.model,
            config.workers,
            self.metrics,
            config.max_coalesce_tokens,
            max_queued=config.limits.max_queued_requests,
            max_wait_s=config.limits.max_queue_wait_s,
        )
        self._health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._stop_watching = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self.shadow: ShadowScorer | None = None
        self._shadow_store: CallLogStore | None = None
        if config.challenger is not None and config.shadow_log:
            self._shadow_store = open_store(config.shadow_log)
            self.shadow = ShadowScorer(
                config.challenger,
                CallLogWriter(self._shadow_store),
                self.metrics.registry,
                config.shadow_queue,
                # Off the request path: one thread, so the challenger never
                # takes cores from the router that answers.
                intra_op_threads=1,
            )

    async def start(self) -> int:
        """Open the port with health NOT_SERVING; returns the bound port."""
        config = self.config
        limit = config.max_message_bytes
        server = grpc.aio.server(
            interceptors=[StatusInterceptor(self.metrics, config.tokens)],
            maximum_concurrent_rpcs=config.limits.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        servicer = RouterServicer(
            self._scorer, config.limits, self.metrics, config.log_prompts, self.shadow
        )
        router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_NAME, reflection.SERVICE_NAME), server
        )
        await self._set_health(_NOT_SERVING)
        address = host_port(config.host, config.port)
        try:
            if config.tls is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, config.tls.server_credentials())
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address} ({exc})") from None
        await server.start()
        self._server = server
        if config.metrics_port is not None:
            try:
                self.metrics_port = self.metrics.start_http(config.host, config.metrics_port)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on port {config.metrics_port} ({exc.strerror})"
                ) from None
        logger.info(
            "listening",
            extra=fields(
                host=config.host,
                port=self.port,
                metrics_port=self.metrics_port,
                tls="mutual" if config.tls and config.tls.client_ca else bool(config.tls),
                tokens=config.tokens is not None,
            ),
        )
        return self.port

    async def load_model(self) -> Router:
        """Load and validate the router, then report SERVING and start watching for changes."""
        router = await asyncio.to_thread(self.model.load)
        self._on_swap(router)
        if self.shadow is not None and self.shadow.router is None:
            challenger = await asyncio.to_thread(self.shadow.load)
            logger.info(
                "shadowing",
                extra=fields(
                    challenger_version=challenger.version,
                    directory=str(challenger.directory),
                ),
            )
        await self._set_health(_SERVING)
        logger.info(
            "serving",
            extra=fields(router_version=router.version, directory=str(router.directory)),
        )
        if self.config.reload_interval_s > 0 and self._watcher is None:
            self._watcher = asyncio.create_task(
                reloader.watch(
                    self.model,
                    self.config.reload_interval_s,
                    self.metrics,
                    self._on_swap,
                    self._stop_watching,
                )
            )
        return router

    async def stop(self, grace_s: float | None = None, drain_s: float | None = None) -> None:
        """NOT_SERVING, wait the drain, then let in-flight calls finish within the grace.

        ``grace_s`` and ``drain_s`` default to the configured ones.
        """
        grace = self.config.grace_s if grace_s is None else grace_s
        drain = self.config.drain_s if drain_s is None else drain_s
        await self._health.enter_graceful_shutdown()
        self.metrics.ready.set(0)
        logger.info("shutting down", extra=fields(drain_s=drain, grace_s=grace))
        if drain > 0:
            await asyncio.sleep(drain)
        self._stop_watching.set()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._server is not None:
            await self._server.stop(grace)
        await asyncio.to_thread(self._scorer.close)
        if self.shadow is not None:
            await asyncio.to_thread(self.shadow.close, grace)
        if self._shadow_store is not None:
            self._shadow_store.close()
        self.metrics.stop_http()
        logger.info("stopped")

    def _on_swap(self, router: Router) -> None:
        created_at = str(router.manifest.raw.get("created_at", ""))
        self.metrics.observe_router(router.version, created_at)

    async def _set_health(self, status: int) -> None:
        for service in ("", SERVICE_NAME):
            await self._health.set(service, status)


async def serve(
    config: ServerConfig, stop_signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """Run a server until one of ``stop_signals`` arrives, then shut down gracefully.

    A router that fails to load stops the server and raises ``ArtifactError``.
    """
    server = TierwiseServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        loading = asyncio.create_task(server.load_model())
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait((loading, stopping), return_when=asyncio.FIRST_COMPLETED)
            if loading in done:
                loading.result()  # raises ArtifactError when the artifact is unusable
                await stopping
        finally:
            loading.cancel()
            stopping.cancel()
    finally:
        await server.stop()
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
