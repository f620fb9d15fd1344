"""``tierwise evaluate``: judge a router on held-out graded calls, with every baseline.

With ``--tiers`` the held-out calls come from another data set with its own
price ladder: the table is built with that ladder and the router's tiers are
mapped onto it by price rank (``training.evaluation.transfer``), so the same
report judges a router out of distribution. ``--train-calls`` adds the
k-nearest-neighbour router over the training calls, the learned baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router_model.tiers import TierLadder
    from training.evaluation.knn_router import KnnRouter


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
    parser.add_argument(
        "--tiers",
        type=Path,
        default=None,
        help="ladder of the held-out calls when it differs from the router's (another data "
        "set): its tiers take the router's outputs by price rank and its prices",
    )
    parser.add_argument(
        "--train-calls",
        type=Path,
        action="append",
        default=None,
        help="graded calls the router was trained on (repeatable): adds the k-nearest-"
        "neighbour router fitted on them as a baseline",
    )
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from router_model.router import Router
    from router_model.tiers import load_tiers
    from training.dataset import build_table, tiers_better_than_top
    from training.report import Scoring, router_outputs, write_report
    from training.train import load_calls

    router = Router.load(args.model)
    scoring: Scoring
    if args.tiers is None:
        ladder, scoring = router.ladder, router_outputs
    else:
        from training.evaluation.transfer import transfer_scoring

        ladder = load_tiers(args.tiers)
        scoring = transfer_scoring(ladder)
    table = build_table(load_calls(args.calls), ladder)
    if warning := tiers_better_than_top(table, ladder):
        print(f"warning: {warning}", file=sys.stderr)
    knn = _knn_router(args.train_calls, ladder) if args.train_calls else None
    metrics = write_report(router, table, args.report, scoring=scoring, knn=knn)
    print(json.dumps(headline(metrics, args.report), indent=2))
    return 0


def _knn_router(train_calls: list[Path], ladder: TierLadder) -> KnnRouter | None:
    """The kNN baseline over the training calls, or None (with a warning) when they cannot
    train one: a call log grades each request on one tier, and the kNN router votes with
    requests graded on every tier. The rest of the report does not need it."""
    from training.evaluation.knn_router import NoVotersError, knn_router_from_calls
    from training.train import load_calls

    try:
        return knn_router_from_calls(load_calls(train_calls), ladder)
    except NoVotersError as exc:
        print(f"warning: no kNN router baseline in the report: {exc}", file=sys.stderr)
        return None


def headline(metrics: dict[str, Any], report: Path) -> dict[str, Any]:
    """The few numbers worth printing; the report holds the rest."""
    out: dict[str, Any] = {"report": str(report), "requests_judged": metrics["requests_judged"]}
    for name, summary in (
        ("cost_aware", metrics["routers"]["cost_aware"]),
        ("hull", metrics["baselines"]["hull"]),
    ):
        out[name] = {k: v for k, v in summary.items() if k != "frontier"}
    if "transfer" in metrics:
        out["transfer"] = {m["eval_tier"]: m["router_tier"] for m in metrics["transfer"]["mapping"]}
    return out
