"""Heuristic routers teams use today, as baselines for a learned router.

Each heuristic maps a request's text to a difficulty score; a higher score
sends the request to a dearer tier. Scores become routing decisions by score
quantiles: with cut fractions q_1 <= ... <= q_{T-1}, a request whose score
rank (midpoint, (i + 0.5) / N) is at least q_j climbs past tier j-1, so about
a share q_1 of requests stays on the cheapest tier. Ties in the
score are broken at random with a fixed seed, so a cut inside a block of equal
scores mixes those requests at random, as a team using that score would.

For T <= 3 tiers every monotone combination of cuts on a grid of ``levels``
quantiles is tried; for more tiers a 1-D family slides equally spaced cuts
from "all cheapest" to "all top". Only the Pareto frontier is kept, and it is
chosen on the very split it is scored on: that flatters the heuristics (they
get the benefit of the doubt), so beating them is a conservative claim.

The word lists are short, hand-written and documented here; they are not
fitted to any data set.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from router_model.errors import InvalidInputError
from training.evaluation.curves import (
    Curve,
    FloatArray,
    IntArray,
    check_table,
    curve_points,
    pareto_front,
)

Scorer = Callable[[Sequence[str]], FloatArray]

_MAX_EXHAUSTIVE_TIERS = 3

# Code: fences and language keywords are strong signals, bracket density a weak one.
_FENCE = re.compile(r"```")
_CODE_WORDS = re.compile(
    r"#include\b|\b(?:def|class|return|import|lambda|function|const|void|elif|"
    r"printf|println|SELECT|INSERT|UPDATE|WHERE|JOIN)\b|=>|::|\+\+|!=|==",
)
_BRACKETS = frozenset("{}[]();=<>")
_FENCE_WEIGHT = 5.0
_DENSITY_WEIGHT = 50.0

# Task types that are usually hard for small models: one point per type present.
_HARD_TYPES: dict[str, tuple[str, ...]] = {
    "math": (
        "prove",
        "proof",
        "theorem",
        "lemma",
        "integral",
        "derivative",
        "equation",
        "calculate",
        "compute",
        "probability",
        "matrix",
        "polynomial",
        "solve",
    ),
    "reasoning": ("step by step", "explain why", "reasoning", "deduce", "infer", "puzzle"),
    "code": ("function", "code", "program", "algorithm", "implement", "python", "sql", "debug"),
    "legal": ("law", "legal", "contract", "statute", "court", "liability", "plaintiff"),
    "medical": ("diagnosis", "patient", "symptom", "clinical", "medical", "dosage", "disease"),
}
_HARD_PATTERNS = {
    kind: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    for kind, words in _HARD_TYPES.items()
}
# Short factual look-ups are what small models answer well.
_EASY_START = re.compile(
    r"^\s*(?:what|who|where|when)\s+(?:is|was|are|were|did)\b|^\s*(?:define|name)\b",
    re.IGNORECASE,
)
_EASY_MAX_WORDS = 15


def length_score(texts: Sequence[str]) -> FloatArray:
    """Characters: longer prompts are assumed harder. Token counts rank the same."""
    return np.array([len(t) for t in texts], dtype=np.float64)


def code_score(texts: Sequence[str]) -> FloatArray:
    """Code signals: 5 per fence, 1 per keyword or operator, 50 x bracket density."""
    return np.array([_code_signal(t) for t in texts], dtype=np.float64)


def _code_signal(text: str) -> float:
    density = sum(ch in _BRACKETS for ch in text) / max(len(text), 1)
    fences = len(_FENCE.findall(text))
    keywords = len(_CODE_WORDS.findall(text))
    return _FENCE_WEIGHT * fences + keywords + _DENSITY_WEIGHT * density


def keyword_score(texts: Sequence[str]) -> FloatArray:
    """Task-type rules: +1 per hard task type named, -1 for a short factual look-up."""
    return np.array([_keyword_signal(t) for t in texts], dtype=np.float64)


def _keyword_signal(text: str) -> float:
    hard = sum(bool(p.search(text)) for p in _HARD_PATTERNS.values())
    easy = bool(_EASY_START.search(text)) and len(text.split()) <= _EASY_MAX_WORDS
    return float(hard - easy)


def length_code_score(texts: Sequence[str]) -> FloatArray:
    """Mean of the percentile ranks of length and code, so neither scale dominates."""
    return (percentile_ranks(length_score(texts)) + percentile_ranks(code_score(texts))) / 2.0


def percentile_ranks(scores: npt.ArrayLike) -> FloatArray:
    """Ranks scaled to [0, 1], ties sharing their average rank."""
    x = np.asarray(scores, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    average = starts + (counts - 1) / 2.0
    return np.asarray(average[inverse] / max(x.size - 1, 1), dtype=np.float64)


HEURISTICS: Mapping[str, Scorer] = {
    "length": length_score,
    "code": code_score,
    "keyword": keyword_score,
    "length+code": length_code_score,
}


def cut_grid(n_tiers: int, levels: int = 21) -> FloatArray:
    """Candidate cut fractions [K, T-1], each row non-decreasing.

    Exhaustive for T <= 3; for more tiers the 1-D family
    q_j(t) = clip(t + (j - 1) / (T - 1), 0, 1) with t from -1 (all top) to 1 (all cheapest).
    """
    if n_tiers < 1 or levels < 2:
        raise InvalidInputError("need at least one tier and two quantile levels")
    if n_tiers == 1:
        return np.zeros((1, 0), dtype=np.float64)
    grid = np.linspace(0.0, 1.0, levels)
    if n_tiers <= _MAX_EXHAUSTIVE_TIERS:
        combos = itertools.combinations_with_replacement(grid, n_tiers - 1)
        return np.array(list(combos), dtype=np.float64).reshape(-1, n_tiers - 1)
    shift = np.linspace(-1.0, 1.0, 2 * levels - 1)[:, None]
    offsets = np.arange(n_tiers - 1, dtype=np.float64)[None, :] / (n_tiers - 1)
    return np.asarray(np.clip(shift + offsets, 0.0, 1.0), dtype=np.float64)


def quantile_choices(
    scores: npt.ArrayLike, n_tiers: int, levels: int = 21, seed: int = 0
) -> IntArray:
    """Tier choices [K, N] for every cut combination of ``cut_grid``."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.isfinite(x).all():
        raise InvalidInputError("must be finite and non-empty", "scores")
    tie_break = np.random.default_rng(seed).random(x.size)
    rank = np.empty(x.size, dtype=np.float64)
    rank[np.lexsort((tie_break, x))] = (np.arange(x.size) + 0.5) / x.size
    cuts = cut_grid(n_tiers, levels)
    climbs = rank[None, :, None] >= cuts[:, None, :]
    return np.asarray(climbs.sum(axis=2), dtype=np.int64)


def score_curve(
    scores: npt.ArrayLike,
    grades: npt.ArrayLike,
    costs: npt.ArrayLike,
    levels: int = 21,
    seed: int = 0,
) -> Curve:
    """Pareto frontier of routing by ``scores`` quantiles, chosen on this split."""
    g, c = check_table(grades, costs)
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    if x.size != g.shape[0]:
        raise InvalidInputError(f"{x.size} scores for {g.shape[0]} requests", "scores")
    return pareto_front(curve_points(quantile_choices(x, g.shape[1], levels, seed), g, c))


def heuristic_curves(
    texts: Sequence[str],
    grades: npt.ArrayLike,
    costs: npt.ArrayLike,
    routers: Sequence[str] | None = None,
    levels: int = 21,
    seed: int = 0,
) -> dict[str, Curve]:
    """Frontier curve of each named heuristic router (all of ``HEURISTICS`` by default)."""
    names = list(HEURISTICS) if routers is None else list(routers)
    unknown = sorted(set(names) - set(HEURISTICS))
    if unknown:
        raise InvalidInputError(f"unknown heuristics {unknown}; known: {list(HEURISTICS)}")
    return {
        name: score_curve(HEURISTICS[name](texts), grades, costs, levels, seed) for name in names
    }
