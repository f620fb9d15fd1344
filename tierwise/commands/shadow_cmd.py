"""``tierwise shadow-report``: what the routers in shadow would have spent and achieved.

Reads shadow decisions and graded calls from a call-log store, prints a short
summary and, with ``--report DIR``, writes ``report.json`` and PNG plots.
See docs/shadow-mode.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router_model.errors import InvalidInputError
from tierwise.commands.logs_cmd import parse_time

_STORE_HELP = "call-log URL (default: $TIERWISE_CALL_LOG or sqlite:///tierwise-calls.db)"
_TIME = "a duration before now (30m, 24h, 7d, 2w) or an RFC 3339 time or date (UTC)"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "shadow-report",
        help="compare shadow decisions with graded calls (see docs/shadow-mode.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--store", help=_STORE_HELP)
    parser.add_argument("--since", default="7d", help=f"report window start: {_TIME}")
    parser.add_argument("--until", help=f"report window end, exclusive (default now): {_TIME}")
    parser.add_argument(
        "--reference-since", help="drift reference start (default: the window before --since)"
    )
    parser.add_argument("--reference-until", help="drift reference end (default: --since)")
    parser.add_argument("--report", type=Path, help="directory for report.json and the plots")
    parser.add_argument(
        "--model", type=Path, help="router artifact directory: adds the embedding drift"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--bootstraps", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--calibration-threshold",
        type=float,
        default=0.1,
        help="flag tiers whose realised success differs from mean P(success) by more",
    )
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from serving.calllog import default_store_url, open_store
    from serving.shadow.report import load_window
    from training.shadow_report import ReportOptions, build_report, write_report

    now = datetime.now(UTC)
    since = parse_time(args.since, now, "--since")
    until = parse_time(args.until, now, "--until") if args.until else now
    if since >= until:
        raise InvalidInputError("--since must be before --until", "--since")
    ref_until = (
        parse_time(args.reference_until, now, "--reference-until")
        if args.reference_until
        else since
    )
    ref_since = (
        parse_time(args.reference_since, now, "--reference-since")
        if args.reference_since
        else ref_until - (until - since)
    )
    if ref_since >= ref_until:
        raise InvalidInputError("must be before --reference-until", "--reference-since")
    if args.bootstraps < 1:
        raise InvalidInputError("must be at least 1", "--bootstraps")
    options = ReportOptions(
        seed=args.seed,
        bootstraps=args.bootstraps,
        calibration_threshold=args.calibration_threshold,
        model_dir=args.model,
    )
    store = open_store(args.store or default_store_url(), create=False)
    try:
        window = load_window(store, since, until)
        reference = load_window(store, ref_since, ref_until)
    finally:
        store.close()
    report = build_report(window, reference, options)
    if args.report is not None:
        written = write_report(report, args.report)
        print(f"wrote {len(written)} files to {args.report}", file=sys.stderr)
    print(json.dumps(summary(report), indent=2))
    return 0


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: agreement, spend and quality means, drift flags."""
    return {
        "requests": report["requests"],
        "agreement": {k: v["mean"] for k, v in report["agreement"].items()},
        "expected_cost_usd": {
            k: v["expected_cost_usd"]["mean"] for k, v in report["spend"].items()
        },
        "grade": {k: v["grade"]["mean"] for k, v in report["quality"].items()},
        "p_success": {k: v["p_success"]["mean"] for k, v in report["quality"].items()},
        "calibration_flags": report["drift"]["calibration"]["flagged"],
    }
