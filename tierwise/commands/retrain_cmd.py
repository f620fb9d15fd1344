"""``tierwise retrain``: the weekly cycle — train a challenger, compare, promote or keep.

Exit codes: 0 when the challenger was promoted or the current router was kept
(a rejection is a normal outcome for a cron job); ``EXIT_REJECTED`` (4) for a
rejection when ``--fail-on-reject`` is given; 2 for an unusable store, window,
tiers file or training data; 3 when the training dependencies are missing.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from router_model.errors import InvalidInputError
from serving.calllog.store import STORE_URL_ENV

EXIT_REJECTED = 4


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "retrain", help="train a challenger on the call log and promote it if no worse"
    )
    parser.add_argument(
        "--store",
        default=os.environ.get(STORE_URL_ENV),
        help=f"call-log URL (sqlite:///... or postgresql://...; default ${STORE_URL_ENV})",
    )
    parser.add_argument("--registry", type=Path, required=True, help="registry directory")
    parser.add_argument("--tiers", type=Path, required=True, help="tiers TOML file")
    parser.add_argument("--window-days", type=float, default=28.0, help="days of calls to use")
    parser.add_argument(
        "--eval-days", type=float, default=7.0, help="newest days held out for the comparison"
    )
    parser.add_argument("--now", help="end of the window, ISO 8601 with offset (default: now)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="allowed cost@95 increase (or Brier/log-loss without fully graded requests)",
    )
    parser.add_argument("--ece-tolerance", type=float, default=0.01, help="allowed ECE increase")
    parser.add_argument(
        "--report", type=Path, help="report directory (default REGISTRY/reports/<time>)"
    )
    parser.add_argument(
        "--fail-on-reject", action="store_true", help=f"exit {EXIT_REJECTED} when not promoted"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from training.retrain import RetrainConfig, retrain
    from training.train import TrainConfig

    if not args.store:
        raise InvalidInputError(f"give --store or set {STORE_URL_ENV}", "store")
    result = retrain(
        RetrainConfig(
            store_url=args.store,
            registry=args.registry,
            tiers=args.tiers,
            now=_parse_now(args.now),
            window_days=args.window_days,
            eval_days=args.eval_days,
            tolerance=args.tolerance,
            ece_tolerance=args.ece_tolerance,
            report_dir=args.report,
            train=TrainConfig(progress=not args.no_progress),
        )
    )
    print(
        json.dumps(
            {
                "decision": result.decision,
                "challenger": result.challenger.version,
                "current": result.current.version if result.current else None,
                "reasons": list(result.reasons),
                "report": str(result.report_dir),
            },
            indent=2,
        )
    )
    return EXIT_REJECTED if args.fail_on_reject and not result.promoted else 0


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"not an ISO 8601 time: {text!r}", "now") from None
    if moment.tzinfo is None:
        raise InvalidInputError(f"needs a UTC offset, e.g. {text}Z", "now")
    return moment
