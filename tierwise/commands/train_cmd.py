"""``tierwise train``: fit a router on graded calls and write its artifact."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router_model.manifest import PolicyConfig


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("train", help="train a router artifact from graded calls")
    parser.add_argument(
        "--calls",
        type=Path,
        action="append",
        required=True,
        help="graded-call JSONL (repeat for several files)",
    )
    parser.add_argument("--tiers", type=Path, required=True, help="tiers TOML file")
    parser.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    parser.add_argument("--classifier", choices=("logreg", "gbt"), default="logreg")
    parser.add_argument(
        "--calibration",
        choices=("auto", "isotonic", "sigmoid"),
        default="auto",
        help="auto: isotonic for a tier with at least 1,000 labelled requests, "
        "sigmoid (Platt) below",
    )
    parser.add_argument(
        "--held-out-fraction",
        type=float,
        default=0.2,
        help="requests held out for the manifest's metrics (newest when "
        "timestamps vary, else a stable hash of request_id)",
    )
    parser.add_argument(
        "--quality-target",
        type=float,
        default=0.95,
        help="default fraction of the top tier's quality to aim for",
    )
    parser.add_argument(
        "--guarantee-confidence",
        type=_confidence,
        default=0.9,
        help="probability that each guaranteed quality target holds on new traffic "
        "(the manifest records which targets are guaranteed; docs/quality-guarantee.md)",
    )
    parser.add_argument(
        "--embedder-precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="int8: an encoder 1.7-2.2x faster (short to 256-token prompts) with a quarter "
        "of the weights, embeddings within 0.99 cosine of fp32 (docs/performance.md)",
    )
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation (logreg)")
    parser.add_argument(
        "--neighbours",
        type=_non_negative,
        default=40,
        help="blend each tier's margin with the success rate of the k most similar "
        "training requests (kept in the artifact, int8); 0 turns it off",
    )
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--head-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run(args: argparse.Namespace) -> int:
    from training.train import TrainConfig, train_router

    config = TrainConfig(
        classifier=args.classifier,
        calibration=args.calibration,
        held_out_fraction=args.held_out_fraction,
        seed=args.seed,
        max_tokens=args.max_tokens,
        head_tokens=args.head_tokens,
        quality_target=args.quality_target,
        guarantee_confidence=args.guarantee_confidence,
        C=args.C,
        neighbours=args.neighbours,
        embedder_precision=args.embedder_precision,
        progress=not args.no_progress,
    )
    result = train_router(args.calls, args.tiers, args.out, config)
    summary = {
        "artifact": str(args.out),
        "router_version": result.router.version,
        "requests": result.n_requests,
        "newly_embedded": result.n_newly_embedded,
        "held_out": _headline(result.metrics),
    }
    print(json.dumps(summary, indent=2))
    for warning in (
        below_hull_warning(result.metrics),
        all_to_top_warning(result.router.manifest.policy),
    ):
        if warning:
            print(f"tierwise train: warning: {warning}", file=sys.stderr)
    return 0


def all_to_top_warning(policy: PolicyConfig) -> str | None:
    """Say so when the default quality target sends every request to the top tier.

    That is the fallback for a target the calibration requests could not
    certify at a saving: the promise holds, but the router saves nothing at
    that target until more graded calls come in or a lower target is asked for.
    """
    from router_model.policy import ALWAYS_TOP, lambda_for_target

    target = policy.default_quality_target
    if policy.guarantee is None or lambda_for_target(policy, target) > ALWAYS_TOP:
        return None
    saving = [t for t, lam in policy.lambda_table if lam > ALWAYS_TOP and t <= target]
    lower = (
        f"; the highest target that saves is {max(saving):.2f} (--quality-target, or a "
        "request's quality_target)"
        if saving
        else ""
    )
    return (
        f"the default quality target {target:.2f} could not be certified at a saving on "
        f"{policy.guarantee.calibration_requests} calibration requests, so it sends every "
        f"request to the top tier{lower}. More graded calls usually help; see "
        "docs/quality-guarantee.md."
    )


def below_hull_warning(metrics: dict[str, Any]) -> str | None:
    """Say so when the held-out calls route better by splitting traffic at random.

    The convex hull of the tiers (each request sent to a tier drawn at a fixed
    mix) needs no model at all; a router below it on held-out calls is not
    worth serving yet, which happens on a few hundred graded calls of a task
    whose success the prompt barely predicts.
    """
    if "routers" not in metrics:
        return None
    router, hull = metrics["routers"]["cost_aware"]["apgr"], metrics["baselines"]["hull"]["apgr"]
    if router is None or hull is None or router >= hull:
        return None
    return (
        f"on its {metrics['requests_judged']} held-out requests the router's APGR "
        f"({router:.3f}) is below the convex hull of the tiers ({hull:.3f}), i.e. below "
        "sending each request to a tier drawn at a fixed mix. More graded calls usually "
        "help; see the learning curves in docs/routing-quality.md."
    )


def _confidence(text: str) -> float:
    """A probability strictly between 0 and 1, checked before any training work."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    if "routers" not in metrics:
        return metrics
    aware = metrics["routers"]["cost_aware"]
    hull = metrics["baselines"]["hull"]
    return {
        "requests_judged": metrics["requests_judged"],
        "cost_at_95": aware["cost_at_95"],
        "hull_cost_at_95": hull["cost_at_95"],
        "cost_at_90": aware["cost_at_90"],
        "hull_cost_at_90": hull["cost_at_90"],
        "apgr": aware["apgr"],
        "ece": {t: c["ece"] for t, c in metrics["calibration"].items()},
    }
