"""Train-on-one, evaluate-on-another: every trained router judged on every data set.

    python scripts/transfer_matrix.py \
      --set mmlu_pro=models/mmlu_pro,build/split/mmlu_pro/test.jsonl,training/tiers/mmlu_pro.toml \
      --set routellm=models/routellm,build/split/routellm/test.jsonl,training/tiers/routellm.toml \
      --out build/transfer.json [--reports build/transfer] [--max-requests 500]

Each ``--set NAME=MODEL_DIR,CALLS,TIERS`` names a router already trained on
that set, the set's held-out calls and its ladder; this script trains
nothing. Every (train set → eval set) pair goes through the same library
steps as ``tierwise evaluate --tiers``: the eval set's table is built with
its own ladder, the router's tiers are mapped onto it by price rank, and the
report metrics are computed (written per pair with ``--reports``). The
diagonal (a router on its own set) is the in-distribution reference that
``gain retained`` divides by. Writes a JSON matrix and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from training.dataset import RequestTable

GAIN_KEYS = ("cost_at_90", "cost_at_95", "apgr")


@dataclass(frozen=True)
class DataSet:
    """One data set: its trained router, held-out calls and price ladder."""

    name: str
    model: Path
    calls: Path
    tiers: Path

    def to_dict(self) -> dict[str, str]:
        return {"model": str(self.model), "calls": str(self.calls), "tiers": str(self.tiers)}


def parse_set(text: str) -> DataSet:
    """``NAME=MODEL_DIR,CALLS,TIERS`` as a DataSet; argparse reports a bad one."""
    name, sep, rest = text.partition("=")
    parts = rest.split(",")
    if not sep or not name or len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL_DIR,CALLS,TIERS, got {text!r}")
    return DataSet(name, *(Path(p) for p in parts))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Judge every trained router on every data set's held-out calls "
        "(train on one set, evaluate on another, each with its own ladder).",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        type=parse_set,
        action="append",
        required=True,
        metavar="NAME=MODEL_DIR,CALLS,TIERS",
        help="a data set: trained router dir, held-out call file, tiers file (repeat)",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON matrix to write")
    parser.add_argument("--reports", type=Path, help="also write a full report per pair here")
    parser.add_argument(
        "--max-requests",
        type=int,
        help="judge at most this many requests per set, evenly spaced through the file",
    )
    return parser


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_table(data: DataSet, max_requests: int | None) -> RequestTable:
    """The set's judged requests priced with its own ladder, optionally thinned."""
    from router_model.tiers import load_tiers
    from training.dataset import build_table
    from training.report import judged_subset
    from training.train import load_calls

    judged = judged_subset(build_table(load_calls([data.calls]), load_tiers(data.tiers)))
    if max_requests is None or len(judged) <= max_requests:
        return judged
    rows = np.unique(np.linspace(0, len(judged) - 1, max_requests).round().astype(np.int64))
    return judged.subset(rows)


def run_pairs(args: argparse.Namespace) -> dict[tuple[str, str], dict[str, Any]]:
    """Metrics of every (train, eval) pair, through ``evaluate --tiers``'s library steps."""
    from router_model.router import Router
    from router_model.tiers import load_tiers
    from training.evaluation.transfer import transfer_scoring
    from training.report import evaluate, write_report

    sets: list[DataSet] = args.sets
    routers = {s.name: Router.load(s.model) for s in sets}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    total, done = len(sets) ** 2, 0
    for target in sets:
        table = load_table(target, args.max_requests)
        scoring = transfer_scoring(load_tiers(target.tiers))
        for source in sets:
            done += 1
            progress(f"[{done}/{total}] {source.name} -> {target.name}: {len(table)} requests")
            start = time.monotonic()
            router = routers[source.name]
            if args.reports is not None:
                out = args.reports / f"{source.name}__on__{target.name}"
                metrics = write_report(router, table, out, scoring=scoring)
            else:
                metrics = evaluate(router, table, scoring=scoring).metrics
            results[(source.name, target.name)] = metrics
            progress(f"    done in {time.monotonic() - start:.1f}s")
    return results


def matrix(sets: list[DataSet], results: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    from training.evaluation.transfer import transfer_summary

    pairs = [
        {
            "train": a.name,
            "eval": b.name,
            **transfer_summary(results[a.name, b.name], results[a.name, a.name]),
        }
        for a in sets
        for b in sets
    ]
    return {"sets": {s.name: s.to_dict() for s in sets}, "metrics": list(GAIN_KEYS), "pairs": pairs}


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(result: dict[str, Any]) -> str:
    """The matrix as a markdown table, one row per (train → eval) pair."""
    lines = [
        "| train → eval | judged | cost@90 router / hull | cost@95 router / hull "
        "| APGR router / hull | retained @90 | retained @95 | retained APGR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in result["pairs"]:
        router, hull, kept = pair["router"], pair["hull"], pair["gain_retained"]
        cells = [f"{_fmt(router[k])} / {_fmt(hull[k])}" for k in GAIN_KEYS]
        cells += [_fmt(kept[k]) for k in GAIN_KEYS]
        lines.append(
            f"| {pair['train']} → {pair['eval']} | {pair['requests_judged']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [s.name for s in args.sets]
    if len(set(names)) != len(names):
        build_parser().error(f"set names must be unique, got {names}")
    if args.max_requests is not None and args.max_requests < 1:
        build_parser().error("--max-requests must be at least 1")
    result = matrix(args.sets, run_pairs(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    progress(f"wrote {args.out}")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
