"""Benchmark ``Predict`` over loopback gRPC: latency percentiles, throughput, server memory.

    python scripts/bench_grpc.py --model MODEL_DIR [--json bench.json]
    python scripts/bench_grpc.py --target 127.0.0.1:50051 [--server-pid PID]

With ``--model`` a ``tierwise serve`` child is started on a free loopback port
and stopped at the end; with ``--target`` an already running server on this
machine is measured (give ``--server-pid`` to report its memory). Each
scenario (short or long prompts, at each concurrency) stops after
``--requests`` calls or ``--seconds`` seconds, whichever comes first. The
client runs in this process on the same machine, so on a small machine it
competes with the server for CPU: the figures are a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000  # the unit of the memory targets
TOPICS = (
    "photosynthesis",
    "binary search",
    "the French revolution",
    "compound interest",
    "TCP congestion control",
    "the Krebs cycle",
    "Bayes' theorem",
    "plate tectonics",
)


@dataclass(frozen=True)
class Scenario:
    prompts: str
    concurrency: int
    calls: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    server_p50_ms: float
    mean_prompt_tokens: float | None
    server_rss_mib: float | None


def short_prompts(n: int) -> list[str]:
    """Questions of 10–40 tokens, all distinct."""
    return [
        f"In two sentences, explain {TOPICS[i % len(TOPICS)]} to a student. (#{i})"
        for i in range(n)
    ]


def long_prompts(n: int) -> list[str]:
    """Requests of well over 256 tokens: a document followed by a question."""
    prompts = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = " ".join(
            f"Paragraph {p}: notes on {topic}, with remarks on history, method, common "
            f"mistakes and worked example number {i * 31 + p}."
            for p in range(18)
        )
        prompts.append(f"{body}\n\nUsing the notes above, write a careful summary of {topic}.")
    return prompts


def token_count(model: Path | None, prompts: list[str]) -> float | None:
    if model is None:
        return None
    from tokenizers import Tokenizer

    from serving.source import resolve

    tokenizer = Tokenizer.from_file(str(resolve(model) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return statistics.fmean(len(e.ids) for e in tokenizer.encode_batch(prompts))


def rss_mib(pid: int | None, key: str = "VmRSS") -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024.0
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    target: str, prompts: list[str], concurrency: int, max_calls: int, max_seconds: float
) -> tuple[list[float], list[float], int, float]:
    """Call Predict from ``concurrency`` tasks; client and server latencies in ms."""
    from serving import AsyncTierwiseClient

    latencies: list[float] = []
    server: list[float] = []
    errors = 0
    issued = 0
    async with AsyncTierwiseClient(target, timeout=60, retries=0) as client:
        await client.predict(prompts[0])  # connect before timing
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal issued, errors
            while issued < max_calls and time.perf_counter() < deadline:
                prompt = prompts[issued % len(prompts)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    result = await client.predict(prompt)
                except Exception:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000.0)
                server.append(result.server_latency_ms)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, server, errors, elapsed


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--target`` (a running loopback server) or ``--model`` (start one), exactly one."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="a running server on loopback, HOST:PORT")
    where.add_argument(
        "--model", type=Path, help="artifact (or registry) to serve on loopback and measure"
    )


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings ``start_server`` passes to ``tierwise serve``, defaulting to its own."""
    from serving.config import ServerConfig

    defaults = ServerConfig(model=Path("."))
    server = parser.add_argument_group("server settings (passed to tierwise serve)")
    server.add_argument(
        "--workers",
        default="auto" if defaults.workers is None else str(defaults.workers),
        help="scoring passes at once: auto, or a number (0: one per core)",
    )
    server.add_argument(
        "--intra-op-threads", type=int, default=defaults.intra_op_threads, help="0: all cores"
    )
    server.add_argument("--max-coalesce-tokens", type=int, default=defaults.max_coalesce_tokens)


def start_server(model: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    log = Path(tempfile.mkdtemp(prefix="tierwise-bench-")) / "serve.log"
    command = [
        *(sys.executable, "-m", "tierwise.cli", "serve", "--model", str(model)),
        *("--host", "127.0.0.1", "--port", "0", "--no-metrics", "--reload-interval", "0"),
        *("--workers", args.workers, "--intra-op-threads", str(args.intra_op_threads)),
        *("--max-coalesce-tokens", str(args.max_coalesce_tokens)),
    ]
    with log.open("w") as handle:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=handle, text=True, cwd=REPO
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        records = [json.loads(x) for x in log.read_text().splitlines() if x[:1] == "{"]
        if any(r.get("msg") == "serving" for r in records):
            port = next(r["port"] for r in records if r.get("msg") == "listening")
            return proc, f"127.0.0.1:{port}"
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become ready within 120 s")


def log(message: str) -> None:
    """Progress for a person watching; stdout stays for the results."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stop_server(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, so in-flight calls finish; SIGKILL if it has not exited within a minute."""
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def rss_mb(pid: int | None, key: str = "VmRSS") -> float | None:
    """Like ``rss_mib``, in MB (10^6 bytes), the unit of the performance targets."""
    mib = rss_mib(pid, key)
    return None if mib is None else mib * 1024 * 1024 / MB


def check_loopback(target: str) -> None:
    host = target.rsplit(":", 1)[0].strip("[]")
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"--target must be a loopback address, got {host}")


def run(args: argparse.Namespace) -> list[Scenario]:
    proc = None
    if args.target:
        check_loopback(args.target)
        target, pid = args.target, args.server_pid
    else:
        proc, target = start_server(args.model, args)
        pid = proc.pid
    makers = {"short": short_prompts, "long": long_prompts}
    prompt_sets = {name: makers[name](512) for name in args.prompts}
    tokens = {name: token_count(args.model, prompts) for name, prompts in prompt_sets.items()}
    scenarios = []
    try:
        for name, prompts in prompt_sets.items():
            for concurrency in args.concurrency:
                asyncio.run(drive(target, prompts, concurrency, args.warmup, 30.0))
                latencies, server, errors, elapsed = asyncio.run(
                    drive(target, prompts, concurrency, args.requests, args.seconds)
                )
                scenarios.append(
                    Scenario(
                        prompts=name,
                        concurrency=concurrency,
                        calls=len(latencies),
                        errors=errors,
                        seconds=round(elapsed, 2),
                        throughput_rps=round(len(latencies) / elapsed, 1),
                        p50_ms=round(percentile(latencies, 0.50), 2),
                        p99_ms=round(percentile(latencies, 0.99), 2),
                        server_p50_ms=round(percentile(server, 0.50), 2),
                        mean_prompt_tokens=_round(tokens[name]),
                        server_rss_mib=_round(rss_mib(pid)),
                    )
                )
                print(format_row(scenarios[-1]), file=sys.stderr)
        peak = rss_mib(pid, "VmHWM")
        if peak is not None:
            print(f"server peak RSS: {peak:.0f} MiB", file=sys.stderr)
    finally:
        if proc is not None:
            stop_server(proc)
    return scenarios


HEADER = (
    f"{'prompts':<8}{'conc':>5}{'calls':>7}{'err':>5}{'rps':>9}{'p50 ms':>9}"
    f"{'p99 ms':>9}{'srv p50':>9}{'tokens':>8}{'RSS MiB':>9}"
)


def format_row(s: Scenario) -> str:
    tokens = "-" if s.mean_prompt_tokens is None else f"{s.mean_prompt_tokens:.0f}"
    rss = "-" if s.server_rss_mib is None else f"{s.server_rss_mib:.0f}"
    return (
        f"{s.prompts:<8}{s.concurrency:>5}{s.calls:>7}{s.errors:>5}{s.throughput_rps:>9.1f}"
        f"{s.p50_ms:>9.2f}{s.p99_ms:>9.2f}{s.server_p50_ms:>9.2f}{tokens:>8}{rss:>9}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_target_arguments(parser)
    parser.add_argument("--server-pid", type=int, help="with --target: the server's pid, for RSS")
    parser.add_argument("--requests", type=int, default=2000, help="max calls per scenario")
    parser.add_argument("--seconds", type=float, default=20.0, help="max time per scenario")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per scenario")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 32]
    )
    parser.add_argument(
        "--prompts",
        type=lambda s: s.split(","),
        default=["short", "long"],
        help="prompt sets to run: short (under 64 tokens), long (over 256 tokens)",
    )
    add_server_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    scenarios = run(args)
    print(HEADER)
    for scenario in scenarios:
        print(format_row(scenario))
    if args.json:
        report: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "scenarios": [asdict(s) for s in scenarios],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
