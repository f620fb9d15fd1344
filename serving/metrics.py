"""Prometheus metrics of one server, exposed on their own HTTP port.

Each server owns a registry rather than using the process-global one, so that
several servers in one process (tests, embedding) never collide. Label values
are bounded: methods, status codes, tier names and rule names, never request
ids or tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import start_http_server as _start_http_server

from router_model.router import Decision

# Seconds; a short prompt is scored in about 10 ms, a long one in about 150 ms on one core.
LATENCY_BUCKETS = (*(m * 10.0**e for e in range(-4, 1) for m in (1.0, 2.5, 5.0)), 10.0)
COST_BUCKETS = tuple(m * 10.0**e for e in range(-7, 1) for m in (1.0, 2.5, 5.0))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The server's counters, gauges and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        rpc = ("grpc_service", "grpc_method")
        self.started = Counter("tierwise_grpc_server_started", "Calls received.", rpc, registry=r)
        self.handled = Counter(
            "tierwise_grpc_server_handled",
            "Calls completed, by status code.",
            (*rpc, "grpc_code"),
            registry=r,
        )
        self.errors = Counter(
            "tierwise_grpc_server_errors",
            "Calls that ended with a status other than OK.",
            (*rpc, "grpc_code"),
            registry=r,
        )
        self.latency = Histogram(
            "tierwise_grpc_server_handling_seconds",
            "Time from receipt of a call to its answer.",
            rpc,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "tierwise_grpc_server_in_flight", "Calls being handled right now.", registry=r
        )
        self.decisions = Counter(
            "tierwise_decisions",
            "Decisions made, by chosen tier and rule.",
            ("tier", "rule"),
            registry=r,
        )
        self.chosen_cost = Histogram(
            "tierwise_chosen_expected_cost_usd",
            "Expected cost of the chosen tier's call; _sum/_count is the mean.",
            buckets=COST_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "tierwise_scoring_batch_size",
            "Requests scored together in one pass of the model.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.passes = Counter(
            "tierwise_scoring_passes",
            "Scoring passes, by the cores each ran on: all (the main session) or one "
            "(a single-threaded session beside other passes).",
            ("threads",),
            registry=r,
        )
        self.router = Info("tierwise_router", "The router being served.", registry=r)
        self.ready = Gauge("tierwise_router_ready", "1 once a router is loaded.", registry=r)
        self.reloads = Counter(
            "tierwise_router_reloads", "Hot reload attempts, by result.", ("result",), registry=r
        )
        self.shed = Counter(
            "tierwise_requests_shed",
            "Requests refused with RESOURCE_EXHAUSTED, by reason (queue_full, queue_wait).",
            ("reason",),
            registry=r,
        )
        self.queued = Gauge(
            "tierwise_scoring_queued_requests", "Requests waiting for a scoring worker.", registry=r
        )
        self._http: tuple[WSGIServer, Thread] | None = None

    def observe_decisions(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            self.decisions.labels(decision.tier, decision.rule).inc()
            self.chosen_cost.observe(decision.expected_cost_usd[decision.tier])

    def observe_router(self, version: str, created_at: str) -> None:
        self.router.info({"router_version": version, "created_at": created_at})
        self.ready.set(1)

    def start_http(self, host: str, port: int) -> int:
        """Serve ``/metrics`` in a daemon thread; returns the bound port (``port`` may be 0)."""
        server, thread = _start_http_server(port, addr=host, registry=self.registry)
        self._http = (server, thread)
        return int(server.server_port)

    def stop_http(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join()
            self._http = None
