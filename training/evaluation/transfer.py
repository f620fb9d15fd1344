"""Out-of-distribution evaluation: a router judged on calls priced by another ladder.

A router trained on data set A has one output column per tier of A's ladder.
The held-out calls of data set B were answered by B's models and are priced
by B's ladder, which may have another number of tiers. To judge the router on
B, B's ladder is mapped onto the router's tiers **by price rank**:

    B's tier j of m (0-based, cheapest first) takes the router's P(success)
    and predicted output tokens of router tier round(j·(n−1)/(m−1)) of n,
    halves rounding up.

Cheapest maps to cheapest and dearest to dearest, a two-tier ladder uses the
router's tiers 0 and n−1, and when m == n the map is the identity. Rank, not
price, is what the two ladders share: a data set's "small" model is small
relative to its own "large" one, whatever either costs.

Everything that is money comes from B. Realised costs are B's real per-call
costs (the table is built with B's ladder). Expected costs, which the
cost-aware rule trades against P(success), are B's prices times the known
input tokens and the mapped predicted output tokens. The rule's λ is
unit-free: costs enter it divided by the policy's reference cost, a typical
top-tier call at training time. Under B's prices that call costs more or
less, so the reference is rescaled by the ratio of the mean top-tier expected
cost under B's prices to that under the router's, on the judged requests.
That uses predictions only, never grades; with the router's own ladder the
ratio is 1 and the evaluation equals the in-distribution one.

``gain_retained`` condenses a transfer into one number per metric: the share
of the router's in-distribution gain over the convex hull of the tiers that
survives on the other data set.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from router_model.errors import InvalidInputError
from router_model.router import Router, Scores
from router_model.tiers import TierLadder
from training.dataset import RequestTable
from training.evaluation.curves import FloatArray
from training.report import RouterOutputs, Scoring

MAPPING_RULE = "eval tier j of m takes router tier round(j*(n-1)/(m-1)) of n, halves up"
GAIN_METRICS: tuple[str, ...] = ("cost_at_90", "cost_at_95", "cost_at_100", "apgr")


def tier_mapping(n_router: int, n_eval: int) -> tuple[int, ...]:
    """Router tier index for each eval tier, by price rank (see the module docstring).

    Integer arithmetic, so a half (e.g. the middle of three eval tiers on a
    two-tier router) rounds up the same way on every platform.
    """
    if n_router < 1:
        raise InvalidInputError(f"the router needs at least one tier, got {n_router}", "tiers")
    if n_eval < 2:
        raise InvalidInputError(
            f"the evaluation ladder needs at least two tiers to route between, got {n_eval}",
            "tiers",
        )
    span_r, span_e = n_router - 1, n_eval - 1
    return tuple((2 * j * span_r + span_e) // (2 * span_e) for j in range(n_eval))


def map_scores(scores: Scores, mapping: Sequence[int]) -> Scores:
    """The router's scores with one column per eval tier, taken from its mapped tier."""
    columns = np.asarray(mapping, dtype=np.int64)
    n_router = scores.p_success.shape[1]
    if columns.size == 0 or columns.min() < 0 or columns.max() >= n_router:
        raise InvalidInputError(f"mapping {list(mapping)} is not within {n_router} router tiers")
    return Scores(
        p_success=scores.p_success[:, columns],
        output_tokens=scores.output_tokens[:, columns],
        input_tokens=scores.input_tokens,
    )


def rescaled_reference(
    reference_cost_usd: float, router_expected: FloatArray, eval_expected: FloatArray
) -> float:
    """The policy's reference cost carried over to the eval ladder's prices.

    Scaled by mean top-tier expected cost (eval prices / router prices) on the
    same requests, so λ keeps meaning "cost in units of a typical top-tier
    call". Kept unchanged when either mean is not positive (free tiers).
    """
    router_top = float(np.mean(router_expected[:, -1]))
    eval_top = float(np.mean(eval_expected[:, -1]))
    if not (router_top > 0.0 and eval_top > 0.0):
        return reference_cost_usd
    return reference_cost_usd * eval_top / router_top


def transfer_section(
    router_ladder: TierLadder,
    eval_ladder: TierLadder,
    mapping: Sequence[int],
    reference_cost_usd: tuple[float, float],
) -> dict[str, Any]:
    """The ``transfer`` entry of metrics.json: both ladders and the map between them."""
    return {
        "router_tiers": list(router_ladder.names),
        "eval_tiers": list(eval_ladder.names),
        "rule": MAPPING_RULE,
        "mapping": [
            {"eval_tier": name, "router_tier": router_ladder.names[i], "router_index": i}
            for name, i in zip(eval_ladder.names, mapping, strict=True)
        ],
        "reference_cost_usd": {"router": reference_cost_usd[0], "eval": reference_cost_usd[1]},
    }


def mapped_gap_calibration(
    gaps: tuple[tuple[float, float], ...], mapping: Sequence[int]
) -> tuple[tuple[float, float], ...]:
    """The router tiers' gap calibration for the eval tiers they stand in for.

    A gap is to the router's top tier, so it carries over only when the eval
    ladder's top tier is the router's top tier; otherwise none is applied. An
    eval tier below the top that the router's top tier stands in for has no
    gap to recalibrate.
    """
    if not gaps or mapping[-1] != len(gaps):
        return ()
    return tuple(gaps[i] if i < len(gaps) else (0.0, 1.0) for i in mapping[:-1])


def transfer_outputs(
    router: Router, judged: RequestTable, eval_ladder: TierLadder
) -> RouterOutputs:
    """The router's outputs on ``judged`` in the columns of ``eval_ladder``, priced by it."""
    mapping = tier_mapping(len(router.ladder), len(eval_ladder))  # refuse before scoring
    scores = router.score(judged.requests)
    mapped = map_scores(scores, mapping)
    expected = eval_ladder.expected_costs(mapped.input_tokens, mapped.output_tokens)
    config = router.manifest.policy
    reference = rescaled_reference(
        config.reference_cost_usd, router.expected_costs(scores), expected
    )
    section = transfer_section(
        router.ladder, eval_ladder, mapping, (config.reference_cost_usd, reference)
    )
    return RouterOutputs(
        ladder=eval_ladder,
        p_success=mapped.p_success,
        expected_cost_usd=expected,
        policy=replace(
            config,
            reference_cost_usd=reference,
            gap_calibration=mapped_gap_calibration(config.gap_calibration, mapping),
        ),
        sections={"transfer": section},
    )


def transfer_scoring(eval_ladder: TierLadder) -> Scoring:
    """A ``scoring`` step for ``training.report.evaluate`` / ``write_report``."""
    return functools.partial(transfer_outputs, eval_ladder=eval_ladder)


def gain_over_hull(metrics: Mapping[str, Any], at: str = "cost_at_95") -> float | None:
    """How much the cost-aware router beats the convex hull of the tiers on ``at``.

    Lower is better for cost@X, so the gain is hull − router; higher is better
    for APGR, so it is router − hull. None when either never reached the target.
    """
    _check_metric(at)
    router = metrics["routers"]["cost_aware"].get(at)
    hull = metrics["baselines"]["hull"].get(at)
    if router is None or hull is None:
        return None
    return float(router - hull) if at == "apgr" else float(hull - router)


def gain_retained(
    in_dist_metrics: Mapping[str, Any],
    ood_metrics: Mapping[str, Any],
    at: str = "cost_at_95",
) -> float | None:
    """Share of the in-distribution gain over the hull that survives out of distribution.

    1 means the router beats the hull on the other data set by as much as on
    its own, 0 that it is no better than the hull there, below 0 that it is
    worse. None when there was no positive gain to keep in distribution, or a
    target was never reached, since any ratio would then mislead.
    """
    base = gain_over_hull(in_dist_metrics, at)
    kept = gain_over_hull(ood_metrics, at)
    if base is None or kept is None or base <= 0.0:
        return None
    return kept / base


def _check_metric(at: str) -> None:
    if at not in GAIN_METRICS:
        raise InvalidInputError(f"unknown metric {at!r}; choose one of {list(GAIN_METRICS)}", "at")


def transfer_summary(
    ood_metrics: Mapping[str, Any], in_dist_metrics: Mapping[str, Any]
) -> dict[str, Any]:
    """One cell of a transfer matrix: router and hull on cost@90/95 and APGR, gain retained."""
    keys = ("cost_at_90", "cost_at_95", "apgr")
    router, hull = ood_metrics["routers"]["cost_aware"], ood_metrics["baselines"]["hull"]
    section = ood_metrics.get("transfer", {})
    return {
        "requests_judged": ood_metrics["requests_judged"],
        "mapping": {m["eval_tier"]: m["router_tier"] for m in section.get("mapping", [])},
        "router": {k: router.get(k) for k in keys},
        "hull": {k: hull.get(k) for k in keys},
        "gain_retained": {k: gain_retained(in_dist_metrics, ood_metrics, k) for k in keys},
    }
