"""scripts/soak_grpc.py: the verdict rules, and a short steady load against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from grpc_support import server_config, serving_on
from script_support import load_script

soak = load_script("soak_grpc")


def _window(start: float, p99: float, errors: int = 0, rss: float | None = 200.0) -> object:
    return soak.Window(start, calls=100, errors=errors, latencies_ms=[p99] * 100, rss_mb=rss)


def test_the_verdict_names_what_failed() -> None:
    steady = [_window(0, 10.0), _window(30, 11.0, rss=205.0)]
    assert soak.judge(steady, 1.5, 10.0).ok
    verdict = soak.judge([_window(0, 10.0), _window(30, 30.0, errors=2, rss=260.0)], 1.5, 10.0)
    assert not verdict.ok
    assert verdict.reasons == [
        "2 calls failed",
        "p99 grew from 10.0 ms to 30.0 ms",
        "memory grew by 60.0 MB",
    ]


def test_a_short_steady_load_answers_every_call(logreg_router_dir: Path) -> None:
    with serving_on(server_config(logreg_router_dir)) as thread:
        prompts = soak.bench_grpc.short_prompts(16)
        windows = asyncio.run(soak.steady_load(thread.target, prompts, 20.0, 3.0, 1.0))
    assert len(windows) >= 2
    assert sum(w.errors for w in windows) == 0
    assert sum(w.calls for w in windows) == sum(len(w.latencies_ms) for w in windows) > 0
    assert all(
        row["p99_ms"] >= row["p50_ms"] > 0 for row in (w.summary() for w in windows if w.calls)
    )
