"""The decision policy: from P(success) and expected cost per tier to one tier.

Two rules share the same inputs:

* ``cost_aware`` (default): the tier maximising ``P(success) − λ·cost/ref``,
  where λ is looked up from the requested quality target in a table fitted on
  held-out data. It trades a small loss of probability against a large saving
  where a cheaper tier is almost as likely to succeed, which a threshold cannot.
  Below zero λ buys quality instead of saving: the top tier's score gains −λ,
  and ``ALWAYS_TOP`` sends every request to the top tier. That end of the
  range is how a quality target the calibration data cannot certify at a
  saving is still met, and how a router's cost–quality curve always reaches
  the top tier's quality, however weak its probabilities.
* ``threshold``: the cheapest tier with ``P(success) ≥ q``; when none reaches q,
  the most likely tier (reported as ``threshold_fallback``).

The cost-aware rule weighs each cheaper tier by its gap to the top tier,
``P_top − P_t``, and a gap between two separately fitted probabilities is
noisier than either: each tier's errors add up, so the predicted gaps spread
wider than the real ones and the rule sends too many requests to a cheaper
tier that looked almost as good. The policy therefore carries a
recalibration of each gap, fitted on held-out predictions
(``decision_scores``); the probabilities reported stay the calibrated ones.

A cost ceiling removes tiers whose expected cost exceeds it; when it changes
the decision the rule reported is ``cost_ceiling``, and when no tier fits, the
cheapest tier is chosen and ``over_ceiling`` is reported.

Everything here is vectorised over requests so that batch scoring, training
sweeps and evaluation run through the same code as a single decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from router_model.manifest import PolicyConfig

COST_AWARE = "cost_aware"
THRESHOLD = "threshold"
THRESHOLD_FALLBACK = "threshold_fallback"
COST_CEILING = "cost_ceiling"
OVER_CEILING = "over_ceiling"
RULES = (COST_AWARE, THRESHOLD)
# λ at or below this sends every request to the top tier (within a cost ceiling).
ALWAYS_TOP = -1.0
# The top tier's score bonus at ALWAYS_TOP: beyond any gap between decision scores,
# and finite, so that a top tier removed by a cost ceiling (−inf) stays removed.
_ALWAYS_TOP_BONUS = 1e9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def lambda_for_target(policy: PolicyConfig, quality_target: float) -> float:
    """λ of the cheapest fitted setting whose quality reached ``quality_target``.

    Targets between table entries take the next higher entry (the conservative
    side); a target above the table means "best quality", λ = 0.
    """
    for target, lam in policy.lambda_table:
        if target >= quality_target - 1e-12:
            return lam
    return 0.0


def guaranteed_for_target(policy: PolicyConfig, quality_target: float) -> bool:
    """Whether the λ used for ``quality_target`` carries the manifest's quality guarantee.

    The lookup is the one ``lambda_for_target`` makes: the next higher table
    entry, whose guarantee (expected quality ≥ that entry's fraction of the top
    tier) implies the lower target's. ``ALWAYS_TOP`` meets every target by
    construction, certified or not.
    """
    if lambda_for_target(policy, quality_target) <= ALWAYS_TOP:
        return True
    if policy.guarantee is None:
        return False
    guaranteed = set(policy.guarantee.guaranteed_targets)
    for target, _ in policy.lambda_table:
        if target >= quality_target - 1e-12:
            return target in guaranteed
    return False


def decision_scores(p_success: FloatArray, policy: PolicyConfig) -> FloatArray:
    """What the cost-aware rule weighs: ``P_top − (a_t + b_t·(P_top − P_t))`` per tier.

    The top tier keeps its P(success); without a gap calibration every tier does.
    """
    return apply_gap_calibration(p_success, policy.gap_calibration)


def apply_gap_calibration(
    p_success: FloatArray, gap_calibration: Sequence[tuple[float, float]]
) -> FloatArray:
    """``decision_scores`` for an (intercept, slope) pair per tier but the top."""
    if not gap_calibration:
        return p_success
    intercept, slope = np.asarray(gap_calibration, dtype=np.float64).T
    top = p_success[:, -1:]
    scores = np.array(p_success, dtype=np.float64, copy=True)
    scores[:, :-1] = top - (intercept + slope * (top - p_success[:, :-1]))
    return scores


def cost_aware_choices(
    p_success: FloatArray, cost_norm: FloatArray, lambdas: Sequence[float] | FloatArray
) -> IntArray:
    """[K, N] tier indices, one row per λ; ties go to the cheaper tier.

    λ ≥ 0 weighs cost; λ < 0 ignores it and adds −λ to the top tier's score
    (``ALWAYS_TOP`` or below: a bonus no score gap can match).
    """
    lam = np.asarray(lambdas, dtype=np.float64).reshape(-1, 1, 1)
    scores = p_success[None, :, :] - np.maximum(lam, 0.0) * cost_norm[None, :, :]
    bonus = np.where(lam <= ALWAYS_TOP, _ALWAYS_TOP_BONUS, np.maximum(-lam, 0.0))
    scores[:, :, -1] += bonus[:, :, 0]
    return np.asarray(np.argmax(scores, axis=2), dtype=np.int64)


def threshold_choices(
    p_success: FloatArray, threshold: float
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Cheapest tier with P ≥ threshold, else the most likely; and the fallback mask."""
    passing = p_success >= threshold
    any_pass = passing.any(axis=1)
    cheapest_passing = np.argmax(passing, axis=1)
    most_likely = np.argmax(p_success, axis=1)
    chosen = np.asarray(np.where(any_pass, cheapest_passing, most_likely), dtype=np.int64)
    return chosen, np.asarray(~any_pass, dtype=np.bool_)


def decide(
    p_success: FloatArray,
    expected_cost_usd: FloatArray,
    policy: PolicyConfig,
    *,
    rule: str | None = None,
    quality_target: float | None = None,
    max_cost_usd: float | None = None,
) -> tuple[IntArray, list[str]]:
    """Chosen tier index and the rule that fired, for each of N requests."""
    rule = rule or policy.default_rule
    target = _check_target(quality_target, policy.default_quality_target)
    allowed = _allowed_by_ceiling(expected_cost_usd, max_cost_usd)
    if rule == COST_AWARE:
        lam = lambda_for_target(policy, target)
        cost_norm = expected_cost_usd / policy.reference_cost_usd
        scores = decision_scores(p_success, policy)
        free = cost_aware_choices(scores, cost_norm, [lam])[0]
        chosen = cost_aware_choices(np.where(allowed, scores, -np.inf), cost_norm, [lam])[0]
        names = np.full(len(chosen), COST_AWARE, dtype=object)
    elif rule == THRESHOLD:
        free, _ = threshold_choices(p_success, target)
        chosen, fallback = threshold_choices(np.where(allowed, p_success, -np.inf), target)
        names = np.where(fallback, THRESHOLD_FALLBACK, THRESHOLD).astype(object)
    else:
        raise InvalidInputError(f"unknown rule {rule!r}; choose one of {list(RULES)}", "rule")
    names[chosen != free] = COST_CEILING
    nothing_fits = ~allowed.any(axis=1)
    if nothing_fits.any():
        chosen = np.where(nothing_fits, np.argmin(expected_cost_usd, axis=1), chosen)
        names[nothing_fits] = OVER_CEILING
    return chosen.astype(np.int64), [str(n) for n in names]


def _check_target(quality_target: float | None, default: float) -> float:
    if quality_target is None:
        return default
    if not math.isfinite(quality_target) or not 0.0 < quality_target <= 1.0:
        raise InvalidInputError(
            f"must be a number in (0, 1], got {quality_target!r}", "quality_target"
        )
    return float(quality_target)


def _allowed_by_ceiling(
    expected_cost: FloatArray, max_cost_usd: float | None
) -> npt.NDArray[np.bool_]:
    if max_cost_usd is None:
        return np.ones(expected_cost.shape, dtype=np.bool_)
    if not math.isfinite(max_cost_usd) or max_cost_usd <= 0:
        raise InvalidInputError(f"must be a positive number, got {max_cost_usd!r}", "max_cost_usd")
    return np.asarray(expected_cost <= max_cost_usd)
