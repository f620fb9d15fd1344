"""Fitting the cost-aware rule's λ to quality targets, with a statistical guarantee.

For every λ on a grid, route the calibration requests (graded on every tier)
with ``argmax P − λ·cost/ref`` and measure the real quality and cost of the
calls chosen. A quality target X is a fraction of the top tier's quality on the
same traffic.

Picking the cheapest λ whose *measured* quality reached X (the point estimate)
misses X on new traffic about half the time, because the measurement is noisy.
Instead λ is chosen Learn-then-Test style (Angelopoulos et al., "Learn then
Test", 2021): with the per-request loss ``ℓ_i(λ) = X·g_top,i − g_chosen(λ),i``
in [−1, X], "expected quality ≥ X·top" is ``E[ℓ(λ)] ≤ 0``. For every λ the null
``E[ℓ(λ)] > 0`` gets a Hoeffding–Bentkus p-value (valid for any bounded loss,
finite n, no distributional assumption beyond exchangeability), and the λ are
tested in a fixed sequence from the most conservative (λ = 0, argmax P) to the
cheapest, stopping at the first null not rejected at level δ. Every λ before
the stop is then safe simultaneously with probability ≥ 1 − δ, so the cheapest
of them (by calibration cost) is kept. When λ = 0 itself is not rejected, the
target falls back to λ = 0 and is recorded as not guaranteed: serving cannot
express "always the top tier", the only rule that meets every target without
testing, so the manifest says plainly which targets carry a promise.

Everything is vectorised over a leading batch axis of calibration sets, so the
evaluation's resampling check runs the very same selection as training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from router_model.manifest import PolicyConfig, PolicyGuarantee
from router_model.policy import cost_aware_choices

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

LAMBDA_GRID = np.concatenate([[0.0], np.logspace(-4, 2, 241)])
QUALITY_TARGETS = np.round(np.arange(0.70, 1.0001, 0.01), 2)
GUARANTEE_METHOD = "learn-then-test/hoeffding-bentkus/fixed-sequence"
DEFAULT_CONFIDENCE = 0.9
# A measured quality that meets a target up to float rounding counts as meeting it.
_EPS = 1e-12


@dataclass(frozen=True)
class Selection:
    """λ grid indices chosen per calibration set and target, both ways.

    ``guaranteed`` [R, X] is the Learn-then-Test choice (0, i.e. λ = 0, where
    ``certified`` is False); ``point`` [R, X] the cheapest λ whose measured
    quality reached the target (0 where none did).
    """

    guaranteed: IntArray
    certified: BoolArray
    point: IntArray


def sweep(
    p_success: FloatArray,
    cost_norm: FloatArray,
    grades: FloatArray,
    costs: FloatArray,
    lambdas: FloatArray = LAMBDA_GRID,
) -> tuple[FloatArray, FloatArray]:
    """Realised (quality, cost) of the rule at every λ on fully graded requests."""
    choices = cost_aware_choices(p_success, cost_norm, lambdas)
    rows = np.arange(p_success.shape[0])
    return grades[rows, choices].mean(axis=1), costs[rows, choices].mean(axis=1)


def check_confidence(confidence: float) -> float:
    """δ = 1 − confidence; a confidence of 0 or 1 would promise nothing or be unreachable."""
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(
            f"must lie strictly between 0 and 1, got {confidence}", "confidence"
        )
    return 1.0 - confidence


def binomial_cdf(n: int, p: FloatArray) -> FloatArray:
    """[len(p), n + 1] table of P(Bin(n, p) ≤ k), computed in log space (no scipy)."""
    k = np.arange(n + 1, dtype=np.float64)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log((n - k[1:] + 1.0) / k[1:]))])
    p = np.asarray(p, dtype=np.float64).reshape(-1, 1)
    log_pmf = log_choose + k * np.log(p) + (n - k) * np.log1p(-p)
    cdf = np.exp(np.logaddexp.accumulate(log_pmf, axis=1))
    return np.asarray(np.minimum(cdf, 1.0), dtype=np.float64)


def hb_p_values(mean_risk: FloatArray, n: int, alpha: FloatArray) -> FloatArray:
    """Hoeffding–Bentkus p-values of H0: E[r] > α, for losses r in [0, 1] (Bates et al.).

    ``mean_risk`` [..., X] holds empirical means over ``n`` requests and ``alpha``
    [X] the null boundary per last-axis column. The p-value is the smaller of
    Hoeffding's ``exp(−n·h(min(r̂, α), α))`` and Bentkus's ``e·P(Bin(n, α) ≤ ⌈n·r̂⌉)``;
    both are valid for every distribution on [0, 1] with mean α, so their minimum is.
    """
    if n < 1:
        raise InvalidInputError("need at least one calibration request", "calls")
    # An undefined mean (no grades) must never reject: treat it as the worst risk.
    r = np.clip(np.nan_to_num(np.asarray(mean_risk, dtype=np.float64), nan=1.0), 0.0, 1.0)
    a = np.asarray(alpha, dtype=np.float64)
    capped = np.minimum(r, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(capped > 0, capped * np.log(capped / a), 0.0) + np.where(
            capped < 1, (1 - capped) * np.log((1 - capped) / (1 - a)), 0.0
        )
    hoeffding = np.exp(-n * kl)
    successes = np.clip(np.ceil(n * r - 1e-9), 0, n).astype(np.int64)
    table = binomial_cdf(n, a)
    columns = np.broadcast_to(np.arange(a.size), successes.shape)
    bentkus = np.e * table[columns, successes]
    return np.asarray(np.minimum(np.minimum(hoeffding, bentkus), 1.0), dtype=np.float64)


def fixed_sequence(rejected: BoolArray, axis: int = 1) -> BoolArray:
    """Which nulls a fixed-sequence test rejects: those before the first non-rejection."""
    return np.asarray(np.cumprod(rejected, axis=axis).astype(np.bool_), dtype=np.bool_)


def select_lambdas(
    quality: FloatArray,
    cost: FloatArray,
    top_quality: FloatArray,
    n: int,
    targets: FloatArray,
    delta: float,
) -> Selection:
    """Guaranteed and point-estimate λ indices for R calibration sets at once.

    ``quality`` and ``cost`` are [R, K] (mean grade and cost of the calls chosen at
    each λ of the grid, grid order = test order), ``top_quality`` [R] the top
    tier's mean grade on the same requests, ``n`` the requests per set.
    """
    x = np.asarray(targets, dtype=np.float64)
    goal = x[None, None, :] * top_quality[:, None, None]
    # ℓ ∈ [−1, X]; rescaled to [0, 1], the null E[ℓ] > 0 is E[r] > 1/(1+X).
    risk = (goal - quality[:, :, None] + 1.0) / (1.0 + x)
    safe = fixed_sequence(hb_p_values(risk, n, 1.0 / (1.0 + x)) <= delta)
    certified = safe[:, 0, :]
    guaranteed = _cheapest(safe, cost)
    reached = quality[:, :, None] >= goal - _EPS
    return Selection(
        guaranteed=np.where(certified, guaranteed, 0).astype(np.int64),
        certified=np.asarray(certified, dtype=np.bool_),
        point=np.where(reached.any(axis=1), _cheapest(reached, cost), 0).astype(np.int64),
    )


def _cheapest(allowed: BoolArray, cost: FloatArray) -> IntArray:
    """[R, X] index of the cheapest allowed λ (the first on ties), given [R, K, X] masks."""
    masked = np.where(allowed, cost[:, :, None], np.inf)
    return np.asarray(np.argmin(masked, axis=1), dtype=np.int64)


def fit_policy(
    p_success: FloatArray,
    expected_cost: FloatArray,
    grades: FloatArray,
    costs: FloatArray,
    default_quality_target: float = 0.95,
    confidence: float | None = DEFAULT_CONFIDENCE,
) -> PolicyConfig:
    """λ per quality target from calibration requests graded on every tier.

    With a ``confidence`` the table holds the Learn-then-Test choices and the
    policy records which targets are guaranteed; with None it holds point
    estimates and no guarantee (for grades that are the model's own
    predictions, where a guarantee would be about the model, not the traffic).
    """
    reference = float(np.mean(expected_cost[:, -1]))
    quality, cost = sweep(p_success, expected_cost / reference, grades, costs)
    top = np.array([float(np.mean(grades[:, -1]))])
    delta = check_confidence(confidence) if confidence is not None else 0.5
    chosen = select_lambdas(quality[None], cost[None], top, len(grades), QUALITY_TARGETS, delta)
    index = chosen.point[0] if confidence is None else chosen.guaranteed[0]
    table = tuple(
        (float(t), float(LAMBDA_GRID[i])) for t, i in zip(QUALITY_TARGETS, index, strict=True)
    )
    guarantee = None
    if confidence is not None:
        guarantee = PolicyGuarantee(
            method=GUARANTEE_METHOD,
            confidence=float(confidence),
            calibration_requests=len(grades),
            guaranteed_targets=tuple(
                float(t) for t, ok in zip(QUALITY_TARGETS, chosen.certified[0], strict=True) if ok
            ),
        )
    return PolicyConfig(
        default_quality_target=default_quality_target,
        reference_cost_usd=reference,
        lambda_table=table,
        guarantee=guarantee,
    )
