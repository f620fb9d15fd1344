"""The training-side figures of ``scripts/bench.py``: embedding throughput, the
int8 embedder against fp32, and training the default router cold and warm.

Kept apart from the serving figures so each file reads as one concern; see
``bench.py``'s docstring for what each figure means and its target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_figures import Figure, median
from bench_grpc import REPO, log, timed

TRAIN_CALLS = ("mmlu_pro", "llmrouter", "routellm", "mt_bench")
TRAIN_TIERS = REPO / "training" / "tiers" / "claude_prior.toml"


def mmlu_prompts(calls_dir: Path, n: int) -> list[str]:
    """The first ``n`` distinct MMLU-Pro prompts (one file row per model and question)."""
    from router_model.calls import iter_calls

    path = calls_dir / "mmlu_pro.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: import the bundled calls (scripts/quickstart.sh)")
    seen: dict[str, None] = {}
    for call in iter_calls(path):
        seen.setdefault(call.request_text().text, None)
        if len(seen) >= n:
            break
    if len(seen) < n:
        log(f"only {len(seen)} distinct MMLU-Pro prompts in {path}")
    return list(seen)


def run_embedding(args: argparse.Namespace, figs: dict[str, Figure]) -> None:
    from router_model.router import Router
    from router_model.text import flatten
    from router_model.tokenize import TruncationRule
    from training.embedder import TOKENS_PER_RUN, Embedder, embedder_files

    prompts = mmlu_prompts(args.calls_dir, args.embed_prompts)
    fp32 = Embedder(embedder_files("fp32"), TruncationRule())
    int8 = Embedder(embedder_files("int8"), TruncationRule())
    for embedder in (fp32, int8):
        embedder.embed(prompts[:32], progress=False)  # warm up the session
    router = Router.load(args.model, intra_op_threads=args.reference_threads)
    texts = [flatten(p) for p in prompts]
    runs: dict[str, list[float]] = {"fp32": [], "int8": [], "graph": []}
    for r in range(args.repeats):
        runs["fp32"].append(len(prompts) / timed(lambda: fp32.embed(prompts, progress=False)))
        runs["int8"].append(len(prompts) / timed(lambda: int8.embed(prompts, progress=False)))
        runs["graph"].append(len(prompts) / timed(lambda: router.score(texts, batch_size=32)))
        log(
            f"embedding run {r + 1}/{args.repeats}: fp32 {runs['fp32'][-1]:.0f} prompts/s, "
            f"int8 {runs['int8'][-1]:.0f} prompts/s (router graph in-process "
            f"{runs['graph'][-1]:.0f} prompts/s), {len(prompts)} prompts"
        )
    fig = figs["embed_rps"]
    fig.runs = [round(v, 1) for v in runs["fp32"]]
    fig.value, fig.reference = median(runs["fp32"]), median(runs["graph"])
    fig.reference_name = "Router.score (embedder + head) in-process, same prompts, batch 32"
    fig.note = (
        f"{len(prompts)} distinct MMLU-Pro prompts, runs of at most {fp32.batch_size} prompts "
        f"and {TOKENS_PER_RUN} padded tokens; int8 one prompt per run on "
        f"{int8.parallel_runs} single-threaded sessions"
    )
    int8_fig, speedup = figs["int8_embed_rps"], figs["int8_speedup"]
    int8_fig.runs = [round(v, 1) for v in runs["int8"]]
    int8_fig.value, int8_fig.reference = median(runs["int8"]), fig.value
    int8_fig.reference_name = "the fp32 training embedder, same prompts"
    speedup.runs = [round(a / b, 3) for a, b in zip(runs["int8"], runs["fp32"], strict=True)]
    speedup.value = median(speedup.runs)
    vectors = fp32.embed(prompts, progress=False), int8.embed(prompts, progress=False)
    cosine = (vectors[0] * vectors[1]).sum(axis=1)
    figs["int8_cosine"].value = float(cosine.min())
    figs["int8_cosine"].note = f"mean {cosine.mean():.4f} over {len(prompts)} MMLU-Pro prompts"


def int8_cost_delta(args: argparse.Namespace, figs: dict[str, Figure]) -> None:
    """cost@95 of the int8 router's held-out metrics minus the fp32 router's."""
    if args.int8_model is None:
        return
    costs = [held_out_cost95(model) for model in (args.model, args.int8_model)]
    fig = figs["int8_cost95_delta"]
    if None in costs:
        fig.note = "not measured: a manifest has no held-out cost@95"
        return
    fp32, int8 = costs
    assert fp32 is not None and int8 is not None
    fig.value, fig.reference = int8 - fp32, fp32
    fig.reference_name = "cost@95 of --model (fp32) on its held-out requests"
    fig.note = f"int8 router {int8:.3f}, fp32 router {fp32:.3f} (held-out, same split)"


def held_out_cost95(model: Path) -> float | None:
    from router_model.artifact import read_manifest
    from serving.source import resolve

    metrics = read_manifest(resolve(model)).metrics
    value = metrics.get("routers", {}).get("cost_aware", {}).get("cost_at_95")
    return None if value is None else float(value)


def train_once(args: argparse.Namespace, cache: Path, out: Path) -> float:
    command = [sys.executable, "-m", "tierwise.cli", "train"]
    for name in TRAIN_CALLS:
        command += ["--calls", str(args.calls_dir / f"{name}.jsonl")]
    command += ["--tiers", str(TRAIN_TIERS), "--out", str(out), "--no-progress"]
    env = {**os.environ, "TIERWISE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=args.train_timeout
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"tierwise train failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return elapsed


def run_training(args: argparse.Namespace, figs: dict[str, Figure]) -> None:
    root = Path(tempfile.mkdtemp(prefix="tierwise-bench-train-"))
    try:
        cache = root / "cache"
        cache.mkdir()
        log(f"training the default router with an empty cache in {cache} (slow)")
        cold = train_once(args, cache, root / "cold")
        log(f"cold-cache training: {cold:.0f} s; training again with the cache warm")
        warm = train_once(args, cache, root / "warm")
        log(f"warm-cache training: {warm:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figs["train_cold_s"].value, figs["train_warm_s"].value = cold, warm
    figs["train_cold_s"].note = "embedder export + embedding of every request + fit"
