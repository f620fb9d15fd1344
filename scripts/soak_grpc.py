"""Soak a tierwise server on loopback at a steady share of its maximum throughput.

    python scripts/soak_grpc.py --model models/default [--seconds 300] [--load 0.8]
    python scripts/soak_grpc.py --target 127.0.0.1:50051 --rate 150 --seconds 300

First the maximum: short prompts at concurrency 32 for ``--probe-seconds``
(skipped when ``--rate`` is given). Then an open-loop load at ``--load`` times
that rate: calls are issued on a fixed schedule, whatever the answers do, so a
server that falls behind shows growing latency instead of a slower client.
Every ``--window`` seconds it records calls, errors, p50 and p99 latency and
the server's resident memory (when it started the server). It passes when
there were no errors, the last window's p99 is within ``--p99-drift`` times
the first's, and memory grew by at most ``--rss-drift-mb``. The table goes to
stdout and every window to ``--out`` as JSON. The exit status is 1 on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_grpc  # a sibling script: prompts, percentiles, server start, RSS


@dataclass
class Window:
    """One stretch of the soak."""

    start_s: float
    calls: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: float | None = None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "start_s": round(self.start_s, 1),
            "calls": self.calls,
            "errors": self.errors,
            "p50_ms": round(bench_grpc.percentile(self.latencies_ms, 0.50), 2),
            "p99_ms": round(bench_grpc.percentile(self.latencies_ms, 0.99), 2),
            "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
        }


@dataclass
class Verdict:
    ok: bool
    reasons: list[str]


def judge(windows: list[Window], p99_drift: float, rss_drift_mb: float) -> Verdict:
    """Zero errors, p99 stable, memory flat; says which failed."""
    reasons = []
    errors = sum(w.errors for w in windows)
    if errors:
        reasons.append(f"{errors} calls failed")
    full = [w for w in windows if w.latencies_ms]
    if len(full) >= 2:
        first = bench_grpc.percentile(full[0].latencies_ms, 0.99)
        last = bench_grpc.percentile(full[-1].latencies_ms, 0.99)
        if last > p99_drift * first:
            reasons.append(f"p99 grew from {first:.1f} ms to {last:.1f} ms")
    rss = [w.rss_mb for w in windows if w.rss_mb is not None]
    if len(rss) >= 2 and rss[-1] - rss[0] > rss_drift_mb:
        reasons.append(f"memory grew by {rss[-1] - rss[0]:.1f} MB")
    return Verdict(not reasons, reasons)


async def steady_load(
    target: str,
    prompts: list[str],
    rate: float,
    seconds: float,
    window_s: float,
    pid: int | None = None,
) -> list[Window]:
    """Issue ``rate`` calls/s for ``seconds`` on a fixed schedule; one ``Window`` per stretch."""
    from serving import AsyncTierwiseClient

    start = time.perf_counter()
    windows = [Window(0.0)]
    pending: set[asyncio.Task[None]] = set()
    async with AsyncTierwiseClient(target, timeout=30, retries=0) as client:
        await client.predict(prompts[0])

        async def one(prompt: str, window: Window) -> None:
            t0 = time.perf_counter()
            try:
                await client.predict(prompt)
                window.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
            except Exception:  # every failure counts, whatever its kind
                window.errors += 1

        issued = 0
        while (now := time.perf_counter() - start) < seconds:
            if now - windows[-1].start_s >= window_s:
                windows[-1].rss_mb = bench_grpc.rss_mb(pid)
                windows.append(Window(now))
            due = int(now * rate) + 1
            while issued < due:
                windows[-1].calls += 1
                task = asyncio.create_task(one(prompts[issued % len(prompts)], windows[-1]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                issued += 1
            await asyncio.sleep(max(0.0, issued / rate - (time.perf_counter() - start)))
        await asyncio.gather(*pending)
    windows[-1].rss_mb = bench_grpc.rss_mb(pid)
    return windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench_grpc.add_target_arguments(parser)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--load", type=float, default=0.8, help="share of the measured maximum")
    parser.add_argument("--rate", type=float, help="calls/s to hold; skips measuring the maximum")
    parser.add_argument("--probe-seconds", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per reported window")
    parser.add_argument("--p99-drift", type=float, default=1.5)
    parser.add_argument("--rss-drift-mb", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("build/soak.json"))
    bench_grpc.add_server_arguments(parser)
    args = parser.parse_args(argv)
    prompts = bench_grpc.short_prompts(512)
    proc = None
    if args.model is not None:
        proc, target = bench_grpc.start_server(args.model, args)
    else:
        target = args.target
    bench_grpc.check_loopback(target)
    try:
        rate = args.rate
        if rate is None:
            maximum = max_rate(target, prompts, args.probe_seconds)
            rate = args.load * maximum
            print(f"[soak] maximum {maximum:.0f} calls/s; holding {rate:.0f}", file=sys.stderr)
        pid = None if proc is None else proc.pid
        windows = asyncio.run(steady_load(target, prompts, rate, args.seconds, args.window, pid))
    finally:
        if proc is not None:
            bench_grpc.stop_server(proc)
    verdict = judge(windows, args.p99_drift, args.rss_drift_mb)
    rows = [w.summary() for w in windows]
    print(f"rate {rate:.0f} calls/s for {args.seconds:.0f} s on {target}")
    print("start_s | calls | errors | p50_ms | p99_ms | rss_mb")
    for row in rows:
        print(
            " | ".join(
                str(row[k]) for k in ("start_s", "calls", "errors", "p50_ms", "p99_ms", "rss_mb")
            )
        )
    print("PASS" if verdict.ok else "FAIL: " + "; ".join(verdict.reasons))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"rate": rate, "seconds": args.seconds, "windows": rows, "verdict": asdict(verdict)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if verdict.ok else 1


def max_rate(target: str, prompts: list[str], seconds: float) -> float:
    """Calls/s at concurrency 32 for ``seconds``: the maximum the soak takes a share of."""
    lat, _, _, elapsed = asyncio.run(bench_grpc.drive(target, prompts, 32, 10**9, seconds))
    return len(lat) / elapsed


if __name__ == "__main__":
    raise SystemExit(main())
