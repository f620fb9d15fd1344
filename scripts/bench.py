"""One benchmark of tierwise's performance targets, each next to an in-process reference.

    python scripts/bench.py --model MODEL_DIR [--repeats 3] [--out build/bench.json] [--train]

Figures (targets are for a 2-core machine without a GPU):

  1. Predict over loopback gRPC at concurrency 1: p50 and p99 of short prompts
     (under 64 tokens; targets 3 ms and 8 ms) and p50 of 256-token prompts
     (target 12 ms). Reference: the same prompts scored one at a time in this
     process with ``Router.load(MODEL).score([prompt])``.
  2. Throughput of short prompts at concurrency 32 over gRPC, and its ratio to
     the in-process reference: the same prompts scored in this process by
     ``Router.score`` in batches of 32, or for an int8 router the faster of
     that and one single-threaded pass per core side by side, as the server
     runs them (target ratio at least 0.90). The
     client shares the two cores with the server, so the ratio also pays for
     the client. The CPU ratio does not: the in-process CPU time per prompt
     over the server process's CPU time per request (from /proc); its note
     also gives the load client's own CPU time per request. The same
     again for mixed lengths (seven short prompts to one of 256 tokens, in a
     fixed shuffled order), which is where padding decides the throughput.
  3. Server resident memory (VmRSS of the server process, from /proc) once the
     model is loaded and again after all the load above (target at most 250 MB,
     MB = 10^6 bytes); the growth between the two is reported too. Reference:
     how much this process's RSS grew when it loaded the router in-process.
     The drift between the end of the first and of the last repeat shows
     whether memory keeps growing once the server has seen every batch shape
     (target at most 5 MB).
  4. Training-time embedding throughput: ``training.embedder.Embedder`` (fp32)
     over ``--embed-prompts`` distinct MMLU-Pro prompts from ``--calls-dir``,
     without the embedding cache (target at least 150 prompts/s). Reference:
     the artifact's full graph (embedder + head) over the same prompts in-process.
  5. The int8 embedder on the same prompts: its throughput, its speed-up over
     fp32, and the minimum cosine of its embeddings to the fp32 ones (target at
     least 0.99). With ``--int8-model`` (a router trained like ``--model`` but
     with ``--embedder-precision int8``), the difference of the two manifests'
     held-out cost@95 (target at most 0.01 of always-top's cost).
  6. With ``--train`` only (6 to 20 minutes on 2 cores, by CPU): wall time of
     ``tierwise train`` of the default router (the four bundled call files,
     training/tiers/claude_prior.toml) with an empty TIERWISE_CACHE_DIR in a
     temporary directory (target at most 300 s), then again with that cache warm.

The server is a ``tierwise serve`` child on 127.0.0.1 with a free port (no
metrics endpoint, no hot reload), started after the in-process references
and always stopped at the end. All traffic goes to that loopback port; each
scenario stops after its call limit or its time limit, whichever comes first.
Latencies and throughputs are medians over ``--repeats`` runs; memory and
training are measured once. The gRPC client runs in this process, on the same
cores as the server, so the gRPC figures are a floor rather than a ceiling.

Progress goes to stderr; the table to stdout; every figure (value, unit,
target, comparison, reference, ok) to ``--out`` as JSON. The exit status is 0
even when targets are missed: this measures, it does not gate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Sibling scripts, not packages.
import bench_grpc
from bench_figures import (
    Figure,
    catalogue,
    format_number,
    format_table,
    median,
    report_json,
)
from bench_grpc import log, timed
from bench_training import int8_cost_delta, run_embedding, run_training

REPO = bench_grpc.REPO
DEFAULT_MODEL = REPO / "models" / "default"
DEFAULT_CALLS = REPO / "build" / "calls"
PROMPT_POOL = 512
LONG_TOKENS = 256


def prompts_of_tokens(model: Path, prompts: list[str], tokens: int) -> list[str]:
    """Cut each prompt so that it is ``tokens`` word pieces long, [CLS] and [SEP] included."""
    from tokenizers import Tokenizer

    from serving.source import resolve

    tokenizer = Tokenizer.from_file(str(resolve(model) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    out = []
    for encoding, text in zip(
        tokenizer.encode_batch(prompts, add_special_tokens=False), prompts, strict=True
    ):
        if len(encoding.offsets) < tokens - 2:
            raise SystemExit(f"prompt too short for {tokens} tokens: {text[:60]!r}")
        out.append(text[: encoding.offsets[tokens - 3][1]])
    return out


# ---------------------------------------------------------------- in-process references


def inprocess_latency(router: Any, prompts: list[str], calls: int) -> tuple[float, float]:
    """p50, p99 in ms of scoring one prompt at a time."""
    from router_model.text import flatten

    texts = [flatten(p) for p in prompts]
    for text in texts[:10]:
        router.score([text], batch_size=1)
    latencies = []
    for i in range(calls):
        one = [texts[i % len(texts)]]
        t0 = time.perf_counter()
        router.score(one, batch_size=1)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return bench_grpc.percentile(latencies, 0.50), bench_grpc.percentile(latencies, 0.99)


def inprocess_throughput(
    router: Any, prompts: list[str], min_seconds: float
) -> tuple[float, float]:
    """Prompts/s and CPU ms per prompt of ``Router.score`` on the whole list in batches of 32.

    A router that scores one request per run (int8) is also measured as
    ``tierwise serve`` scores it under load, one single-threaded pass per core
    side by side, and the faster of the two is the reference.
    """
    from router_model.text import flatten

    texts = [flatten(p) for p in prompts]
    router.score(texts[:64])
    best = _throughput(lambda: router.score(texts, batch_size=32), len(texts), min_seconds)
    if router.one_request_per_run:
        chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:

            def side_by_side() -> None:
                list(pool.map(lambda chunk: router.score(chunk, single_threaded=True), chunks))

            side_by_side()  # opens the single-threaded sessions
            best = max(best, _throughput(side_by_side, len(texts), min_seconds))
    return best


def _throughput(score_all: Callable[[], object], n: int, min_seconds: float) -> tuple[float, float]:
    done, elapsed = 0, 0.0
    cpu = time.process_time()
    while elapsed < min_seconds or done == 0:
        elapsed += timed(score_all)
        done += n
    return done / elapsed, (time.process_time() - cpu) * 1000.0 / done


# ---------------------------------------------------------------- the benchmark


def run_inprocess(
    args: argparse.Namespace, prompts: dict[str, list[str]], figs: dict[str, Figure]
) -> dict[str, float]:
    """Reference figures, measured before the server starts so that nothing competes."""
    from router_model.router import Router

    before = bench_grpc.rss_mb(os.getpid())
    router = Router.load(args.model, intra_op_threads=args.reference_threads)
    after = bench_grpc.rss_mb(os.getpid())
    if before is not None and after is not None:
        figs["server_rss_loaded"].reference = after - before
        figs["server_rss_after"].reference = after - before
    refs: dict[str, list[float]] = {
        "short_p50": [],
        "short_p99": [],
        "long_p50": [],
        "rps": [],
        "cpu_ms": [],
        "rps_mixed": [],
    }
    for r in range(args.repeats):
        p50, p99 = inprocess_latency(router, prompts["short"], args.c1_requests)
        long_p50, _ = inprocess_latency(router, prompts["long"], args.c1_long_requests)
        rps, cpu_ms = inprocess_throughput(router, prompts["short"], args.reference_seconds)
        mixed, _ = inprocess_throughput(router, prompts["mixed"], args.reference_seconds)
        log(
            f"in-process run {r + 1}/{args.repeats}: short p50 {p50:.2f} ms p99 {p99:.2f} ms, "
            f"256-token p50 {long_p50:.2f} ms, batched {rps:.0f} prompts/s "
            f"({mixed:.0f}/s mixed lengths)"
        )
        for key, value in zip(refs, (p50, p99, long_p50, rps, cpu_ms, mixed), strict=True):
            refs[key].append(value)
    del router
    return {k: v for k, v in ((k, median(v)) for k, v in refs.items()) if v is not None}


def run_grpc(
    args: argparse.Namespace,
    prompts: dict[str, list[str]],
    figs: dict[str, Figure],
    refs: dict[str, float],
) -> None:
    log("starting tierwise serve on 127.0.0.1 (free port)")
    proc, target = bench_grpc.start_server(args.model, args)
    try:
        bench_grpc.check_loopback(target)
        log(f"server pid {proc.pid} ready at {target}")
        figs["server_rss_loaded"].value = bench_grpc.rss_mb(proc.pid)
        scenarios = (
            ("short", 1, args.c1_requests, args.c1_seconds),
            ("long", 1, args.c1_long_requests, args.c1_seconds),
            ("short", 32, args.c32_requests, args.c32_seconds),
            ("mixed", 32, args.c32_requests, args.c32_seconds),
        )
        results: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
        rss_after_repeat: list[float] = []
        server_cpu_ms: list[float] = []
        client_cpu_ms: list[float] = []
        for r in range(args.repeats):
            for name, concurrency, calls, seconds in scenarios:
                asyncio.run(bench_grpc.drive(target, prompts[name], concurrency, args.warmup, 30))
                cpu, client_cpu = bench_grpc.cpu_seconds(proc.pid), time.process_time()
                lat, server, errors, elapsed = asyncio.run(
                    bench_grpc.drive(target, prompts[name], concurrency, calls, seconds)
                )
                if (name, concurrency) == ("short", 32) and lat:
                    used = bench_grpc.cpu_seconds(proc.pid) - cpu
                    server_cpu_ms.append(used * 1000.0 / len(lat))
                    client_cpu_ms.append((time.process_time() - client_cpu) * 1000.0 / len(lat))
                p50 = bench_grpc.percentile(lat, 0.50)
                p99 = bench_grpc.percentile(lat, 0.99)
                server_ms = bench_grpc.percentile(server, 0.50)
                rps = len(lat) / elapsed
                log(
                    f"gRPC run {r + 1}/{args.repeats} {name} c={concurrency}: {len(lat)} calls "
                    f"({errors} errors) in {elapsed:.1f} s, {rps:.0f} req/s, p50 {p50:.2f} ms, "
                    f"p99 {p99:.2f} ms, server-side p50 {server_ms:.2f} ms"
                )
                results.setdefault((name, concurrency), []).append((p50, p99, server_ms, rps))
            rss = bench_grpc.rss_mb(proc.pid)
            if rss is not None:
                rss_after_repeat.append(rss)
        if len(rss_after_repeat) >= 2:
            drift = figs["server_rss_drift"]
            drift.runs = [round(v, 1) for v in rss_after_repeat]
            drift.value = rss_after_repeat[-1] - rss_after_repeat[0]
        else:
            figs["server_rss_drift"].note = "not measured: needs --repeats 2 or more"
        figs["server_rss_after"].value = bench_grpc.rss_mb(proc.pid)
        peak = bench_grpc.rss_mb(proc.pid, "VmHWM")
    finally:
        bench_grpc.stop_server(proc)
        log("server stopped")

    def fill(key: str, scenario: tuple[str, int], column: int, ref: str) -> float | None:
        runs = [row[column] for row in results[scenario]]
        figs[key].runs = [round(v, 3) for v in runs]
        figs[key].value = median(runs)
        figs[key].reference = refs.get(ref)
        return median([row[2] for row in results[scenario]])

    one = "Router.score([prompt]) in-process, one prompt per call"
    server_p50 = fill("grpc_short_c1_p50", ("short", 1), 0, "short_p50")
    figs["grpc_short_c1_p50"].note = f"server-side p50 {format_number(server_p50)} ms"
    fill("grpc_short_c1_p99", ("short", 1), 1, "short_p99")
    server_p50 = fill("grpc_256_c1_p50", ("long", 1), 0, "long_p50")
    figs["grpc_256_c1_p50"].note = f"server-side p50 {format_number(server_p50)} ms"
    for key in ("grpc_short_c1_p50", "grpc_short_c1_p99", "grpc_256_c1_p50"):
        figs[key].reference_name = one
    for name, rps_key, ratio_key, ref in (
        ("short", "grpc_short_c32_rps", "grpc_c32_ratio", "rps"),
        ("mixed", "grpc_mixed_c32_rps", "grpc_mixed_c32_ratio", "rps_mixed"),
    ):
        server_p50 = fill(rps_key, (name, 32), 3, ref)
        c32 = results[(name, 32)]
        c32_fig = figs[rps_key]
        c32_fig.reference_name = (
            "Router.score(prompts, batch_size=32) in-process, same prompts (int8: or one "
            "single-threaded pass per core side by side, whichever is faster)"
        )
        c32_p50 = median([row[0] for row in c32])
        c32_fig.note = (
            f"p50 {format_number(c32_p50)} ms, server-side p50 {format_number(server_p50)} ms"
        )
        ratio = figs[ratio_key]
        ratio.runs = [round(row[3] / refs[ref], 3) for row in c32] if ref in refs else []
        if c32_fig.value is not None and refs.get(ref):
            ratio.value = c32_fig.value / refs[ref]
        ratio.reference_name = "1.00 = the in-process batched throughput"
    cpu_ratio = figs["grpc_c32_cpu_ratio"]
    if server_cpu_ms and refs.get("cpu_ms"):
        cpu_ratio.runs = [round(refs["cpu_ms"] / v, 3) for v in server_cpu_ms]
        cpu_ratio.value = median(cpu_ratio.runs)
        cpu_ratio.note = (
            f"server {format_number(median(server_cpu_ms))} ms CPU per request, "
            f"in-process {format_number(refs['cpu_ms'])} ms per prompt; the load client "
            f"on the same cores {format_number(median(client_cpu_ms))} ms per request"
        )
    loaded, after = figs["server_rss_loaded"], figs["server_rss_after"]
    if loaded.value is not None and after.value is not None:
        figs["server_rss_growth"].value = after.value - loaded.value
    if peak is not None:
        after.note = f"peak (VmHWM) {format_number(peak)} MB"
    for f in (loaded, after):
        f.reference_name = "RSS growth of this process on Router.load (in-process)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=Path,
        help=f"router artifact to serve and score (default {DEFAULT_MODEL}, if it exists)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "build" / "bench.json",
        help="JSON file for every figure (default build/bench.json)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per latency/throughput figure; medians are reported",
    )
    parser.add_argument(
        "--calls-dir",
        type=Path,
        default=DEFAULT_CALLS,
        help="bundled graded calls (mmlu_pro.jsonl, ...; default build/calls)",
    )
    parser.add_argument(
        "--embed-prompts",
        type=int,
        default=512,
        help="distinct MMLU-Pro prompts to embed for figure 4",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="also time training the default router twice (6-20 min on 2 cores)",
    )
    parser.add_argument(
        "--train-timeout",
        type=float,
        default=1800,
        help="seconds before one training run is abandoned",
    )
    parser.add_argument(
        "--int8-model",
        type=Path,
        help="a router trained like --model with --embedder-precision int8, to compare cost@95",
    )
    group = parser.add_argument_group("traffic bounds (per scenario and repeat)")
    group.add_argument(
        "--c1-requests", type=int, default=500, help="max calls, short prompts at concurrency 1"
    )
    group.add_argument(
        "--c1-long-requests",
        type=int,
        default=200,
        help="max calls, 256-token prompts at concurrency 1",
    )
    group.add_argument(
        "--c1-seconds", type=float, default=15.0, help="max seconds per concurrency-1 scenario"
    )
    group.add_argument("--c32-requests", type=int, default=2000, help="max calls at concurrency 32")
    group.add_argument(
        "--c32-seconds", type=float, default=20.0, help="max seconds at concurrency 32"
    )
    group.add_argument("--warmup", type=int, default=20, help="untimed calls before each scenario")
    group.add_argument(
        "--reference-seconds",
        type=float,
        default=3.0,
        help="min seconds of in-process batched scoring per repeat",
    )
    group.add_argument(
        "--reference-threads",
        type=int,
        default=0,
        help="onnxruntime intra-op threads in-process (0: all cores)",
    )
    bench_grpc.add_server_arguments(parser)
    args = parser.parse_args(argv)
    positive = ("repeats", "embed_prompts", "c1_requests", "c1_long_requests", "c32_requests")
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.model is None:
        if not (DEFAULT_MODEL / "manifest.json").is_file():
            parser.error(
                f"no --model given and {DEFAULT_MODEL} holds no artifact; train one "
                "(scripts/quickstart.sh) or pass --model DIR"
            )
        args.model = DEFAULT_MODEL
    for name in ("model", "int8_model"):
        path = getattr(args, name)
        if path is not None and not path.exists():
            parser.error(f"--{name.replace('_', '-')} {path} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figs = catalogue()
    started = time.perf_counter()
    short = bench_grpc.short_prompts(PROMPT_POOL)
    long = prompts_of_tokens(args.model, bench_grpc.long_prompts(PROMPT_POOL), LONG_TOKENS)
    mixed = short[: PROMPT_POOL * 7 // 8] + long[: PROMPT_POOL // 8]
    random.Random(0).shuffle(mixed)
    prompts = {"short": short, "long": long, "mixed": mixed}
    tokens = {k: bench_grpc.token_count(args.model, v) for k, v in prompts.items()}
    log(
        f"prompts: short ≈{tokens['short']:.0f} tokens, long ≈{tokens['long']:.0f} tokens, "
        f"mixed ≈{tokens['mixed']:.0f} tokens"
    )
    log("in-process references")
    refs = run_inprocess(args, prompts, figs)
    run_grpc(args, prompts, figs, refs)
    log("training-time embedding")
    run_embedding(args, figs)
    int8_cost_delta(args, figs)
    if args.train:
        run_training(args, figs)
    else:
        for key in ("train_cold_s", "train_warm_s"):
            figs[key].note = "not measured: pass --train (6 to 20 minutes)"
    ordered = list(figs.values())
    measured_on = machine()
    print(
        f"{measured_on['cpu_model']}, {measured_on['cpus']} CPUs, "
        f"{' '.join(measured_on['kernel_flags'])}, onnxruntime {measured_on['onnxruntime']}"
    )
    print(format_table(ordered))
    meta = {
        "machine": measured_on,
        "model": str(args.model),
        "repeats": args.repeats,
        "prompt_tokens": tokens,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_json(ordered, meta), indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


# Instruction sets that decide which kernels onnxruntime picks: fp32 width, int8 dot products.
_KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")


def machine() -> dict[str, object]:
    """What the figures were measured on; they move with the CPU, not only with the code."""
    cpu_model, flags = "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu_model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel_flags": [f for f in _KERNEL_FLAGS if f in flags],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": metadata.version("onnxruntime"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
