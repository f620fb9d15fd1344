"""Fitting the cost-aware rule's λ to quality targets, with a statistical guarantee.

For every λ on a grid, route the calibration requests (graded on every tier)
with ``argmax P − λ·cost/ref`` and measure the real quality and cost of the
calls chosen. A quality target X is a fraction of the top tier's quality on the
same traffic.

Picking the cheapest λ whose *measured* quality reached X (the point estimate)
misses X on new traffic about half the time, because the measurement is noisy.
Instead λ is chosen Learn-then-Test style (Angelopoulos et al., "Learn then
Test", 2021): with the per-request loss ``ℓ_i(λ) = X·g_top,i − g_chosen(λ),i``
in [−1, X], "expected quality ≥ X·top" is ``E[ℓ(λ)] ≤ 0``. Every λ gets a
finite-sample p-value for the null ``E[ℓ(λ)] > 0``, and the λ are tested in a
fixed sequence from the most conservative (λ = 0, argmax P) to the cheapest,
stopping at the first null not rejected at level δ. Every λ before the stop is
then safe simultaneously with probability ≥ 1 − δ, so the cheapest of them (by
calibration cost) is kept. When λ = 0 itself is not rejected, the target falls
back to ``ALWAYS_TOP``: every request to the top tier, the one rule that meets
every target without a test. The manifest lists the targets certified at a
saving, so it says plainly which targets save money under the promise.

The grid's negative λ (between ``ALWAYS_TOP`` and 0, the top tier favoured by
a bonus) are not in the sequence: they route nearly everything to the top
tier, so their few disagreements with it carry too little evidence to pass,
and a sequence through them would stop before reaching λ = 0. They serve the
point estimate and the cost–quality curve, which then always reaches the top
tier's quality.

Why a betting p-value by default. Hoeffding–Bentkus looks only at the mean
loss and must hold for the worst distribution with that mean, a two-point one
with maximal variance. Real losses are nothing like that: on most requests the
rule picks the top tier, or a tier that agrees with it, so ℓ sits at 0 or
X − 1 and only the few disagreements move the mean. A variance-blind bound
pays for variance that is not there, and with a few hundred requests it
certified nothing at X ≥ 0.9. The Waudby-Smith & Ramdas (2023) betting test
adapts to the observed variance and stays exact in finite samples: a gambler
who starts with wealth 1 and, before seeing each request, bets a fraction
chosen from the earlier requests only that the loss will come in under the
boundary, cannot grow rich when the null holds (the wealth is a nonnegative
supermartingale), so by Ville's inequality P(sup_t K_t ≥ 1/δ) ≤ δ and
``1 / sup_t K_t`` is a p-value. The requests are bet on in a fixed seeded
order, so a fit is reproducible; any order that does not look at the grades is
valid for i.i.d. traffic. Hoeffding–Bentkus stays available (``method``).

Everything is vectorised over a leading batch axis of calibration sets, so the
evaluation's resampling check runs the very same selection as training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from router_model.manifest import PolicyConfig, PolicyGuarantee
from router_model.policy import ALWAYS_TOP, apply_gap_calibration, cost_aware_choices

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Method = Literal["betting", "hoeffding-bentkus"]

# Ascending, so from the most conservative setting to the cheapest: always the top
# tier, the top tier favoured by a bonus of 0.9 down to 0.001, argmax P, then cost
# weights from 1e-4 to 100.
LAMBDA_GRID = np.concatenate(
    [[ALWAYS_TOP], -np.logspace(np.log10(0.9), -3, 30), [0.0], np.logspace(-4, 2, 241)]
)
ALWAYS_TOP_INDEX = 0
# The grid rows the Learn-then-Test fixed sequence tests, in order: λ = 0 onwards.
TESTED = np.flatnonzero(LAMBDA_GRID >= 0.0)
QUALITY_TARGETS = np.round(np.arange(0.70, 1.0001, 0.01), 2)
GUARANTEE_METHODS: dict[str, str] = {
    "betting": "learn-then-test/betting-wsr/fixed-sequence",
    "hoeffding-bentkus": "learn-then-test/hoeffding-bentkus/fixed-sequence",
}
DEFAULT_METHOD: Method = "betting"
DEFAULT_CONFIDENCE = 0.9
# Fewest out-of-fold requests, graded on every tier, to fit the gap calibration on.
MIN_GAP_ROWS = 200
# The order the calibration requests are bet on; fixed so training is reproducible.
ORDER_SEED = 0
# Largest bet as a fraction of the one that could lose everything on a single request.
BET_CAP = 0.5
# A measured quality that meets a target up to float rounding counts as meeting it.
_EPS = 1e-12
# Elements per batch of the betting test's [sets, λ, requests] arrays.
_CHUNK = 1 << 22
# Distinct λ rows tested per step before checking which sequences have stopped.
_BLOCK = 8


@dataclass(frozen=True)
class Selection:
    """λ grid indices chosen per calibration set and target, both ways.

    ``guaranteed`` [R, X] is the Learn-then-Test choice (the fallback row, always
    the top tier on the training grid, where ``certified`` is False);
    ``point`` [R, X] the cheapest λ whose measured quality reached the target
    (the fallback where none did).
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


def check_method(method: str) -> Method:
    if method == "betting":
        return "betting"
    if method == "hoeffding-bentkus":
        return "hoeffding-bentkus"
    raise InvalidInputError(f"must be one of {sorted(GUARANTEE_METHODS)}, got {method!r}", "method")


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


def betting_p_values(risk: FloatArray, alpha: npt.ArrayLike) -> FloatArray:
    """Betting p-values of H0: E[r] ≥ α for losses r in [0, 1], in the order given.

    ``risk`` [..., n] holds the losses in betting order along the last axis and
    ``alpha`` (broadcastable to ``risk.shape[:-1]``) the null boundary, in (0, 1).
    Before request t the gambler stakes ``b_t`` from the first t − 1 losses only
    (the aGRAPA bet of Waudby-Smith & Ramdas, 2023: the Kelly-optimal fraction
    ``(α − μ̂)/(σ̂² + (α − μ̂)²)`` for the running mean and variance, clipped to
    ``[0, BET_CAP/(1 − α)]``) and her wealth is multiplied by ``1 − b_t (r_t − α)``.
    Under H0 each factor has conditional mean ≤ 1 and stays > 0, so the wealth
    is a nonnegative supermartingale and Ville's inequality makes
    ``min(1, 1 / max_t K_t)`` a valid p-value, for any n and any distribution.
    """
    r = np.clip(np.nan_to_num(np.asarray(risk, dtype=np.float64), nan=1.0), 0.0, 1.0)
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), r.shape[:-1])[..., None]
    if r.shape[-1] < 1:
        raise InvalidInputError("need at least one calibration request", "calls")
    seen = np.arange(1, r.shape[-1] + 1, dtype=np.float64)
    # Running mean and variance after t losses, regularised by a prior point
    # (mean 1/2, variance 1/4) as in the paper, then shifted so bet t uses t − 1.
    mean = (0.5 + np.cumsum(r, axis=-1)) / (seen + 1.0)
    var = (0.25 + np.cumsum((r - mean) ** 2, axis=-1)) / (seen + 1.0)
    prior = np.ones((*r.shape[:-1], 1))
    mean = np.concatenate([0.5 * prior, mean[..., :-1]], axis=-1)
    var = np.concatenate([0.25 * prior, var[..., :-1]], axis=-1)
    edge = a - mean
    bet = np.clip(edge / (var + edge**2), 0.0, BET_CAP / (1.0 - a))
    log_wealth = np.cumsum(np.log1p(-bet * (r - a)), axis=-1)
    best = np.maximum(log_wealth.max(axis=-1), 0.0)
    return np.asarray(np.exp(-best), dtype=np.float64)


def fixed_sequence(rejected: BoolArray, axis: int = 1) -> BoolArray:
    """Which nulls a fixed-sequence test rejects: those before the first non-rejection."""
    return np.asarray(np.cumprod(rejected, axis=axis).astype(np.bool_), dtype=np.bool_)


def select_lambdas(
    chosen_grades: FloatArray,
    chosen_costs: FloatArray,
    top_grades: FloatArray,
    calibration: IntArray,
    targets: FloatArray,
    delta: float,
    method: str = DEFAULT_METHOD,
    *,
    tested: IntArray | None = None,
    fallback: int = 0,
) -> Selection:
    """Guaranteed and point-estimate λ indices for R calibration sets at once.

    ``chosen_grades`` and ``chosen_costs`` are [K, N]: the grade and cost of the
    call the rule picks for each request at each λ of the grid;
    ``top_grades`` [N] the top tier's grades. ``calibration`` [R, n] holds each
    calibration set's request indices, in the order the betting test sees
    them. ``tested`` lists the rows of the fixed sequence in test order (all
    rows, in grid order, by default); ``fallback`` is the row used where
    nothing is certified or reached (``ALWAYS_TOP_INDEX`` on the training grid).
    """
    kind = check_method(method)
    g_all = np.asarray(chosen_grades, dtype=np.float64)
    c_all = np.asarray(chosen_costs, dtype=np.float64)
    sequence = np.arange(len(g_all)) if tested is None else np.asarray(tested, dtype=np.int64)
    g = g_all[sequence]
    top = np.asarray(top_grades, dtype=np.float64)
    index = np.atleast_2d(np.asarray(calibration, dtype=np.int64))
    n = index.shape[1]
    if n < 1:
        raise InvalidInputError("need at least one calibration request", "calls")
    quality = _set_means(g_all, index)
    cost = _set_means(c_all, index)
    top_quality = _set_means(top[None, :], index)[:, 0]
    x = np.asarray(targets, dtype=np.float64)
    goal = x[None, None, :] * top_quality[:, None, None]
    # ℓ ∈ [−1, X]; rescaled to [0, 1], the null E[ℓ] > 0 is E[r] > 1/(1+X).
    alpha = 1.0 / (1.0 + x)
    if kind == "hoeffding-bentkus":
        p_values = hb_p_values((goal - quality[:, sequence, None] + 1.0) * alpha, n, alpha)
    else:
        p_values = _betting_by_lambda(g, top, index, x, delta)
    safe = fixed_sequence(p_values <= delta)
    certified = safe[:, 0, :]
    guaranteed = sequence[_cheapest(safe, cost[:, sequence])]
    reached = quality[:, :, None] >= goal - _EPS
    return Selection(
        guaranteed=np.where(certified, guaranteed, fallback).astype(np.int64),
        certified=np.asarray(certified, dtype=np.bool_),
        point=np.where(reached.any(axis=1), _cheapest(reached, cost), fallback).astype(np.int64),
    )


def _set_means(table: FloatArray, index: IntArray) -> FloatArray:
    """[R, K] means of a [K, N] table's rows over each calibration set's requests."""
    out = np.empty((index.shape[0], table.shape[0]))
    step = max(1, _CHUNK // (table.shape[0] * index.shape[1]))
    for start in range(0, index.shape[0], step):
        out[start : start + step] = table[:, index[start : start + step]].mean(axis=2).T
    return out


def _betting_by_lambda(
    chosen_grades: FloatArray,
    top_grades: FloatArray,
    index: IntArray,
    targets: FloatArray,
    delta: float,
) -> FloatArray:
    """[R, K, X] betting p-values, as far as the fixed sequence will look.

    Neighbouring λ often route every request alike, and equal rows get equal
    p-values, so each run of equal rows is tested once. The rows are tested in
    grid order, a block at a time, and a calibration set and target stop being
    tested at their first non-rejection: the fixed sequence never looks past it,
    so those entries are left at 1.
    """
    new_row = np.concatenate([[True], np.any(chosen_grades[1:] != chosen_grades[:-1], axis=1)])
    rows = chosen_grades[new_row]
    sets, n = index.shape
    p_values = np.ones((sets, rows.shape[0], targets.size))
    alive = np.ones((sets, targets.size), dtype=np.bool_)
    for first in range(0, rows.shape[0], _BLOCK):
        block = rows[first : first + _BLOCK]
        todo = np.flatnonzero(alive.any(axis=1))
        if todo.size == 0:
            break
        step = max(1, _CHUNK // (block.shape[0] * n))
        for start in range(0, todo.size, step):
            part = todo[start : start + step]
            top = top_grades[index[part]][:, None, :]
            routed = np.moveaxis(block[:, index[part]], 0, 1)
            for j in np.flatnonzero(alive[part].any(axis=0)):
                x = targets[j]
                risk = (x * top - routed + 1.0) / (1.0 + x)
                p = betting_p_values(risk, 1.0 / (1.0 + x))
                p_values[part, first : first + block.shape[0], j] = p
                alive[part, j] &= (p <= delta).all(axis=1)
    return p_values[:, np.cumsum(new_row) - 1, :]


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
    method: str = DEFAULT_METHOD,
    gap_calibration: tuple[tuple[float, float], ...] = (),
) -> PolicyConfig:
    """λ per quality target from calibration requests graded on every tier.

    With a ``confidence`` the table holds the Learn-then-Test choices and the
    policy records which targets are guaranteed; with None it holds point
    estimates and no guarantee (for grades that are the model's own
    predictions, where a guarantee would be about the model, not the traffic).
    λ is fitted for the rule as it will serve, after ``gap_calibration``.
    """
    kind = check_method(method)
    reference = float(np.mean(expected_cost[:, -1]))
    scores = apply_gap_calibration(p_success, gap_calibration)
    choices = cost_aware_choices(scores, expected_cost / reference, LAMBDA_GRID)
    rows = np.arange(len(grades))
    order = np.random.default_rng(ORDER_SEED).permutation(len(grades))[None, :]
    delta = check_confidence(confidence) if confidence is not None else 0.5
    # Without a confidence only the point estimate is used: skip the betting test.
    test = kind if confidence is not None else "hoeffding-bentkus"
    chosen = select_lambdas(
        grades[rows, choices],
        costs[rows, choices],
        grades[:, -1],
        order,
        QUALITY_TARGETS,
        delta,
        test,
        tested=TESTED,
        fallback=ALWAYS_TOP_INDEX,
    )
    index = chosen.point[0] if confidence is None else chosen.guaranteed[0]
    table = tuple(
        (float(t), float(LAMBDA_GRID[i])) for t, i in zip(QUALITY_TARGETS, index, strict=True)
    )
    guarantee = None
    if confidence is not None:
        guarantee = PolicyGuarantee(
            method=GUARANTEE_METHODS[kind],
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
        gap_calibration=gap_calibration,
    )


def fit_gap_calibration(
    p_success: FloatArray, successes: FloatArray
) -> tuple[tuple[float, float], ...]:
    """(intercept, slope) for each tier but the top, from out-of-fold predictions.

    The real gap to the top tier (``s_top − s_t``, per request) is regressed on
    the predicted one (``P_top − P_t``) by least squares. Two separately
    calibrated probabilities leave their gap over-dispersed, which the slope
    (below 1 on every bundled set) takes back. Rows missing a prediction or a
    label are skipped; with fewer than ``MIN_GAP_ROWS`` left, or on one tier,
    there is nothing to fit and the rule weighs the probabilities as they are.
    """
    rows = ~np.isnan(p_success).any(axis=1) & ~np.isnan(successes).any(axis=1)
    if p_success.shape[1] < 2 or rows.sum() < MIN_GAP_ROWS:
        return ()
    p, s = p_success[rows], successes[rows]
    pairs = []
    for t in range(p.shape[1] - 1):
        predicted, real = p[:, -1] - p[:, t], s[:, -1] - s[:, t]
        spread = float(np.var(predicted))
        if spread < 1e-12:
            pairs.append((0.0, 1.0))
            continue
        covariance = float(np.mean((predicted - predicted.mean()) * (real - real.mean())))
        slope = max(0.0, covariance / spread)
        pairs.append((float(real.mean() - slope * predicted.mean()), slope))
    return tuple(pairs)
