"""``tierwise logs``: export the call log for training, and record user feedback.

``export`` writes the graded-call JSONL that ``tierwise train`` reads, so a
team's own logged calls feed retraining with no conversion step. The output
appears only when complete: a failed export leaves no half-written file.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from router_model.errors import InvalidInputError

_RELATIVE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_STORE_HELP = "call-log URL (default: $TIERWISE_CALL_LOG or sqlite:///tierwise-calls.db)"
_TIME_HELP = "a duration before now (30m, 24h, 7d, 2w) or an RFC 3339 time or date (UTC)"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("logs", help="export the call log or record feedback on logged calls")
    actions = parser.add_subparsers(dest="logs_command", required=True, metavar="ACTION")

    export = actions.add_parser("export", help="write logged calls as graded-call JSONL")
    export.add_argument("--store", help=_STORE_HELP)
    export.add_argument("--since", help=f"first call time, inclusive: {_TIME_HELP}")
    export.add_argument("--until", help=f"last call time, exclusive: {_TIME_HELP}")
    export.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    export.add_argument(
        "--include-shadow",
        action="store_true",
        help="also export shadow decisions (never answered; skipped by default)",
    )
    export.set_defaults(handler=run_export)

    feedback = actions.add_parser("feedback", help="grade the logged calls of one request")
    feedback.add_argument("--store", help=_STORE_HELP)
    feedback.add_argument("--request-id", required=True)
    feedback.add_argument("--grade", type=float, required=True, help="in [0, 1]")
    feedback.add_argument("--model", help="grade only the call answered by this model")
    feedback.set_defaults(handler=run_feedback)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def parse_time(value: str, now: datetime, option: str) -> datetime:
    """``7d`` means seven days before ``now``; a date alone means its midnight UTC."""
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"expected {_TIME_HELP}; got {value!r}", option) from None
    if moment.tzinfo is None:
        if len(value.strip()) != len("2025-01-01"):
            raise InvalidInputError(f"needs a UTC offset (e.g. 'Z'): {value!r}", option)
        moment = moment.replace(tzinfo=UTC)
    return moment


def run_export(args: argparse.Namespace) -> int:
    from router_model.calls import dump_calls
    from serving.calllog import default_store_url, open_store
    from serving.shadow.records import is_shadow

    now = datetime.now(UTC)
    since = parse_time(args.since, now, "--since") if args.since else None
    until = parse_time(args.until, now, "--until") if args.until else None
    if since is not None and until is not None and since >= until:
        raise InvalidInputError("--since must be before --until", "--since")
    store = open_store(args.store or default_store_url(), create=False)
    out: Path = args.out
    staging = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with staging.open("w", encoding="utf-8") as handle:
            calls = store.iter_calls(since=since, until=until)
            if not args.include_shadow:  # decisions that were never answered: not training data
                calls = (c for c in calls if not is_shadow(c))
            count = dump_calls(handle, calls)
        staging.replace(out)
    finally:
        staging.unlink(missing_ok=True)
        store.close()
    print(f"exported {count} calls to {out}", file=sys.stderr)
    return 0


def run_feedback(args: argparse.Namespace) -> int:
    from serving.calllog import apply_feedback, default_store_url, open_store

    store = open_store(args.store or default_store_url(), create=False)
    try:
        updated = apply_feedback(store, args.request_id, args.grade, model=args.model)
    finally:
        store.close()
    if updated == 0:
        which = f" answered by {args.model!r}" if args.model else ""
        raise InvalidInputError(f"no logged call with request_id {args.request_id!r}{which}")
    print(f"graded {updated} call(s) of request {args.request_id!r}", file=sys.stderr)
    return 0
