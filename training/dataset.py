"""From graded calls to a request-level table: one row per request, one column per tier.

Several calls with the same ``request_id`` are the same request answered by
several models; this is where they are joined. Every call must map onto a tier
of the ladder, and every tier needs graded calls, or training stops with an
error naming the call (file and line) or the tier. Several graded calls of one
request on one tier (retries, or several models mapped onto the tier) keep
their mean grade and the share of them that succeeded: P(success) is a
per-call probability, so three passes in five are a label of 0.6, not a pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_model.calls import GradedCall
from router_model.errors import ConfigError, DataFileError, InvalidInputError
from router_model.features import estimate_tokens
from router_model.text import RequestText
from router_model.tiers import Tier, TierLadder
from serving.shadow.records import is_shadow

FloatArray = npt.NDArray[np.float64]
MAX_WEIGHT = 50.0


@dataclass(frozen=True)
class RequestTable:
    """Aligned per-request arrays; NaN marks a tier with no (graded) call."""

    request_ids: tuple[str, ...]
    requests: tuple[RequestText, ...]
    timestamps: FloatArray
    grades: FloatArray
    successes: FloatArray  # share of a cell's graded calls with grade >= pass_grade
    costs: FloatArray
    output_tokens: FloatArray
    sources: tuple[str, ...]
    weights: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.request_ids)

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.requests]

    def subset(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> RequestTable:
        index = np.asarray(rows, dtype=np.int64)
        return RequestTable(
            request_ids=tuple(self.request_ids[i] for i in index),
            requests=tuple(self.requests[i] for i in index),
            timestamps=self.timestamps[index],
            grades=self.grades[index],
            successes=self.successes[index],
            costs=self.costs[index],
            output_tokens=self.output_tokens[index],
            sources=tuple(self.sources[i] for i in index),
            weights=None if self.weights is None else self.weights[index],
        )

    def fully_graded(self) -> npt.NDArray[np.bool_]:
        """Rows where every tier has a graded call and a cost: usable for evaluation."""
        return np.asarray(~np.isnan(self.grades).any(axis=1) & ~np.isnan(self.costs).any(axis=1))


@dataclass
class _Row:
    request: RequestText
    origin: str
    timestamp: float
    source: str
    grades: list[list[float]]
    weights: list[list[float]]
    usage: list[list[_Usage]]
    output_tokens: list[list[float]]


@dataclass(frozen=True)
class _Usage:
    """What one call cost, or the tokens to price it with when it recorded no cost."""

    cost_usd: float | None
    input_tokens: int
    output_tokens: int | None

    def output_length(self, tier: Tier) -> float | None:
        """Output tokens as recorded, else as implied by the recorded cost.

        Sources that publish a cost per call but no token counts are common;
        without the implied length the output-length model would learn
        nothing from them and every request would be priced at its input.
        """
        if self.output_tokens is not None:
            return float(self.output_tokens)
        if self.cost_usd is None:
            return None
        return tier.output_tokens_for(self.cost_usd, self.input_tokens)


def build_table(calls: Iterable[GradedCall], ladder: TierLadder) -> RequestTable:
    """Join calls by request; raises on unmapped tiers, conflicting texts and empty tiers."""
    n_tiers = len(ladder)
    rows: dict[str, _Row] = {}
    for call in calls:
        if is_shadow(call):  # a decision that was never answered carries no label
            continue
        column = _tier_column(call, ladder)
        row = rows.get(call.request_id)
        if row is None:
            row = rows[call.request_id] = _new_row(call, n_tiers)
        elif call.request_text().text != row.request.text:
            raise _call_error(
                call, f"request_id '{call.request_id}' has a different prompt than at {row.origin}"
            )
        row.timestamp = min(row.timestamp, call.timestamp.timestamp())
        if call.grade is not None:
            row.grades[column].append(call.grade)
            row.weights[column].append(propensity_weight(call))
        input_tokens = call.input_tokens or estimate_tokens(row.request.text)
        usage = _Usage(call.cost_usd, input_tokens, call.output_tokens)
        output = usage.output_length(ladder.tiers[column])
        if output is not None:
            row.output_tokens[column].append(output)
        row.usage[column].append(usage)
    if not rows:
        raise InvalidInputError("no calls to train on", "calls")
    table = _to_arrays(rows, ladder)
    _require_graded_tiers(table, ladder)
    return table


def propensity_weight(call: GradedCall) -> float:
    """1 / P(this tier was chosen), from the logged decision; 1 when none was logged.

    Only the first attempt of a routed request carries a propensity: later
    attempts were chosen by escalation, which depends on the answer, not on
    the router. Weights are capped at ``MAX_WEIGHT`` so that one rarely
    explored call cannot dominate a tier.
    """
    decision = call.extra.get("decision")
    propensity = decision.get("propensity") if isinstance(decision, dict) else None
    if not isinstance(propensity, int | float) or isinstance(propensity, bool) or propensity <= 0:
        return 1.0
    return float(min(1.0 / propensity, MAX_WEIGHT))


def data_fingerprint(calls: Iterable[GradedCall]) -> str:
    """SHA-256 of the calls' canonical JSON: identifies the training data in the manifest."""
    digest = hashlib.sha256()
    for call in calls:
        digest.update(json.dumps(call.to_json(), sort_keys=True).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _tier_column(call: GradedCall, ladder: TierLadder) -> int:
    if call.tier is not None:
        if call.tier not in ladder.names:
            raise _call_error(
                call, f"tier '{call.tier}' is not in the tiers file (tiers: {list(ladder.names)})"
            )
        return ladder.index(call.tier)
    tier = ladder.tier_for_model(call.model)
    if tier is None:
        raise _call_error(
            call,
            f"model '{call.model}' maps to no tier; add it to a tier's `models` list "
            "in the tiers file",
        )
    return ladder.index(tier.name)


def _call_error(call: GradedCall, message: str) -> InvalidInputError:
    if call.origin:
        path, _, line = call.origin.rpartition(":")
        return DataFileError(path, int(line), message)
    return InvalidInputError(f"request '{call.request_id}': {message}")


def _new_row(call: GradedCall, n_tiers: int) -> _Row:
    return _Row(
        request=call.request_text(),
        origin=call.origin or f"request '{call.request_id}'",
        timestamp=call.timestamp.timestamp(),
        source=call.tags.get("source", ""),
        grades=[[] for _ in range(n_tiers)],
        weights=[[] for _ in range(n_tiers)],
        usage=[[] for _ in range(n_tiers)],
        output_tokens=[[] for _ in range(n_tiers)],
    )


def _mean_or_nan(values: list[float]) -> float:
    # Most cells hold one call; np.mean on a one-element list costs microseconds each.
    if len(values) == 1:
        return float(values[0])
    return float(np.mean(values)) if values else float("nan")


def _to_arrays(rows: dict[str, _Row], ladder: TierLadder) -> RequestTable:
    n_tiers = len(ladder)

    def matrix(cells: list[list[list[float]]]) -> FloatArray:
        return np.array(
            [[_mean_or_nan(cell) for cell in row] for row in cells], dtype=np.float64
        ).reshape(len(rows), n_tiers)

    output_tokens = matrix([r.output_tokens for r in rows.values()])
    typical = _median_per_tier(output_tokens)
    costs = matrix(
        [
            [
                [_price(u, tier, typical[t]) for u in r.usage[t]]
                for t, tier in enumerate(ladder.tiers)
            ]
            for r in rows.values()
        ]
    )
    return RequestTable(
        request_ids=tuple(rows),
        requests=tuple(r.request for r in rows.values()),
        timestamps=np.array([r.timestamp for r in rows.values()], dtype=np.float64),
        grades=matrix([r.grades for r in rows.values()]),
        successes=matrix(
            [
                [[float(g >= ladder.pass_grade) for g in cell] for cell in r.grades]
                for r in rows.values()
            ]
        ),
        weights=matrix([r.weights for r in rows.values()]),
        costs=costs,
        output_tokens=output_tokens,
        sources=tuple(r.source for r in rows.values()),
    )


def _price(usage: _Usage, tier: Tier, typical_output: float) -> float:
    """The recorded cost, else tokens × prices; a call without output tokens is
    priced at its tier's typical (median) output length in the data."""
    if usage.cost_usd is not None:
        return usage.cost_usd
    output = usage.output_tokens if usage.output_tokens is not None else typical_output
    return tier.cost_usd(usage.input_tokens, output)


def _require_graded_tiers(table: RequestTable, ladder: TierLadder) -> None:
    counts = (~np.isnan(table.grades)).sum(axis=0)
    empty = [name for name, n in zip(ladder.names, counts, strict=True) if n == 0]
    if empty:
        raise ConfigError(
            f"tier(s) {empty} have no graded calls in the data, so a router can neither "
            "learn them nor be judged on them. Add graded calls for them or remove them "
            "from the tiers file; to judge a router on data graded on another ladder, "
            "give that ladder to `tierwise evaluate --tiers`."
        )


def tiers_better_than_top(table: RequestTable, ladder: TierLadder) -> str | None:
    """A warning naming the cheaper tiers that clearly grade higher than the top tier.

    Quality targets and cost@X are fractions of the top tier's quality, so a
    ladder whose dearest rung is not its best (prices alone do not order
    quality) aims at the wrong reference. Each tier is compared with the top
    on the requests graded on both; "clearly" is a mean lead above two
    standard errors.
    """
    top = len(ladder) - 1
    leads = []
    for t in range(top):
        both = ~np.isnan(table.grades[:, t]) & ~np.isnan(table.grades[:, top])
        if both.sum() < 2:
            continue
        diff = table.grades[both, t] - table.grades[both, top]
        mean, error = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(both.sum()))
        if mean > 2.0 * error and mean > 0.0:
            leads.append(f"'{ladder.names[t]}' by {mean:.3f} over {int(both.sum())} requests")
    if not leads:
        return None
    return (
        f"cheaper tiers grade higher than the top tier '{ladder.names[top]}': "
        f"{', '.join(leads)}. Quality targets and cost@X are fractions of the top tier's "
        "quality; consider dropping or reordering the top tier in the tiers file"
    )


def typical_output_tokens(table: RequestTable) -> FloatArray:
    """Median output tokens per tier over the data (0 where the data has none)."""
    return _median_per_tier(table.output_tokens)


def _median_per_tier(output_tokens: FloatArray) -> FloatArray:
    medians = np.zeros(output_tokens.shape[1])
    for t in range(len(medians)):
        known = output_tokens[:, t][~np.isnan(output_tokens[:, t])]
        medians[t] = float(np.median(known)) if known.size else 0.0
    return medians
