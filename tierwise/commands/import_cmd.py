"""``tierwise import``: convert a public graded data set into graded-call JSONL."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router_model.calls import GradedCall


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("import", help="convert a graded data set into graded calls")
    parser.add_argument(
        "--format",
        required=True,
        choices=("mmlu-pro-wide", "llmrouter", "routellm", "mt-bench"),
        help="layout of SRC",
    )
    parser.add_argument("src", type=Path, help="data file (mt-bench: the folder of its two files)")
    parser.add_argument("--out", type=Path, required=True, help="graded-call JSONL to write")
    parser.add_argument("--tiers-out", type=Path, help="also write the data set's tiers file here")
    parser.add_argument(
        "--all-models",
        action="store_true",
        help="emit every model, not only the ladder's (--tiers-out still writes the ladder, "
        "which names only its own models)",
    )
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from router_model.calls import dump_calls
    from training.importers import import_calls, ladder_model_names, ladder_toml

    models: set[str] = set()
    calls = _noting_models(import_calls(args.format, args.src, all_models=args.all_models), models)
    staging = args.out.with_name(args.out.name + ".partial")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with staging.open("w", encoding="utf-8") as handle:
            count = dump_calls(handle, calls)
        staging.replace(args.out)
    finally:
        staging.unlink(missing_ok=True)
    print(f"wrote {count} calls to {args.out}", file=sys.stderr)
    if args.tiers_out:
        args.tiers_out.write_text(ladder_toml(args.format), encoding="utf-8")
        if unmapped := sorted(models - set(ladder_model_names(args.format))):
            print(
                f"note: {args.tiers_out} maps only the ladder's models; before training on "
                f"{args.out}, add each of these to a tier's `models` list: {', '.join(unmapped)}",
                file=sys.stderr,
            )
    return 0


def _noting_models(calls: Iterator[GradedCall], models: set[str]) -> Iterator[GradedCall]:
    """Pass ``calls`` through, adding each call's model to ``models``."""
    for call in calls:
        models.add(call.model)
        yield call
