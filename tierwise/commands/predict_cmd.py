"""``tierwise predict``: decide a tier for every request of a JSONL file.

The whole input is parsed before anything is scored, so a malformed line stops
the run with its line number and no partial output file is left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from router_model.router import DecisionRequest

BATCH = 256


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("predict", help="choose a tier for each request in a JSONL file")
    parser.add_argument("--model", type=Path, required=True, help="router artifact directory")
    parser.add_argument(
        "--input",
        type=Path,
        required=True,
        help="JSONL: prompt or messages, optional request_id, quality_target, max_cost_usd, rule",
    )
    parser.add_argument("--output", type=Path, required=True, help="decisions JSONL to write")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def read_requests(path: Path) -> list[DecisionRequest]:
    from router_model.jsonl import read_records
    from router_model.requests import parse_request

    return read_records(path, parse_request, "requests")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from router_model.router import Router

    requests = read_requests(args.input)
    router = Router.load(args.model)
    staging = args.output.with_name(args.output.name + ".partial")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            staging.open("w", encoding="utf-8") as out,
            tqdm(total=len(requests), desc="routing", unit="req", disable=args.no_progress) as bar,
        ):
            for batch in _batches(requests):
                for decision in router.decide(batch):
                    out.write(json.dumps(decision.to_json(), ensure_ascii=False) + "\n")
                bar.update(len(batch))
        staging.replace(args.output)
    finally:
        staging.unlink(missing_ok=True)
    print(f"wrote {len(requests)} decisions to {args.output}", file=sys.stderr)
    return 0


def _batches(requests: list[DecisionRequest]) -> Iterator[list[DecisionRequest]]:
    for start in range(0, len(requests), BATCH):
        yield requests[start : start + BATCH]
