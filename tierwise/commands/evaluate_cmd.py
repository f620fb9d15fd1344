"""``tierwise evaluate``: judge a router on held-out graded calls, with every baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("evaluate", help="write a metrics + plots report on held-out calls")
    parser.add_argument("--model", type=Path, required=True, help="router artifact directory")
    parser.add_argument(
        "--calls",
        type=Path,
        action="append",
        required=True,
        help="held-out graded-call JSONL (repeatable)",
    )
    parser.add_argument("--report", type=Path, required=True, help="report directory to write")
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from router_model.router import Router
    from training.dataset import build_table
    from training.report import write_report
    from training.train import load_calls

    router = Router.load(args.model)
    table = build_table(load_calls(args.calls), router.ladder)
    metrics = write_report(router, table, args.report)
    headline = {
        "report": str(args.report),
        "requests_judged": metrics["requests_judged"],
        **{
            name: {k: v for k, v in summary.items() if k != "frontier"}
            for name, summary in (
                ("cost_aware", metrics["routers"]["cost_aware"]),
                ("hull", metrics["baselines"]["hull"]),
            )
        },
    }
    print(json.dumps(headline, indent=2))
    return 0
