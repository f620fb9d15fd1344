"""A k-nearest-neighbour router: the learned baseline a trained router has to beat.

Routers in the literature are often no better than "look up the most similar
past requests": it needs no training, only the embeddings of graded calls.
Here it predicts P(success) per tier as the neighbours' mean grade and the
cost of each tier as the neighbours' mean real cost, then routes with the
same cost-aware rule and λ sweep as the real router, so the comparison
isolates what the trained predictor adds over memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from router_model.policy import cost_aware_choices
from router_model.tiers import TierLadder
from router_model.tokenize import TruncationRule
from training.evaluation.baselines import knn_success_probabilities
from training.evaluation.curves import Curve, check_table, curve_points

FloatArray = npt.NDArray[np.float64]
DEFAULT_K = 20
Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class NoVotersError(InvalidInputError):
    """No training request is graded on every tier, so none can vote."""


@dataclass(frozen=True)
class KnnRouter:
    """Graded training calls, embedded, plus the embedder for new requests."""

    embed: Embed
    train_embeddings: npt.NDArray[np.float32]
    train_grades: FloatArray
    train_costs: FloatArray
    k: int = DEFAULT_K

    def choices(self, texts: Sequence[str], lambdas: FloatArray) -> npt.NDArray[np.int64]:
        """[K, N] tier choices for ``texts`` at every λ."""
        return knn_router_choices(
            self.train_embeddings,
            self.train_grades,
            self.train_costs,
            self.embed(texts),
            lambdas,
            self.k,
        )

    def curve(
        self, texts: Sequence[str], grades: FloatArray, costs: FloatArray, lambdas: FloatArray
    ) -> Curve:
        return curve_points(self.choices(texts, lambdas), grades, costs)


def knn_router_curve(
    train_embeddings: npt.ArrayLike,
    train_grades: npt.ArrayLike,
    train_costs: npt.ArrayLike,
    test_embeddings: npt.ArrayLike,
    test_grades: npt.ArrayLike,
    test_costs: npt.ArrayLike,
    lambdas: FloatArray,
    k: int = DEFAULT_K,
) -> Curve:
    """Cost–quality curve of the kNN router on the test split."""
    choices = knn_router_choices(
        train_embeddings, train_grades, train_costs, test_embeddings, lambdas, k
    )
    return curve_points(choices, test_grades, test_costs)


def knn_router_choices(
    train_embeddings: npt.ArrayLike,
    train_grades: npt.ArrayLike,
    train_costs: npt.ArrayLike,
    test_embeddings: npt.ArrayLike,
    lambdas: FloatArray,
    k: int = DEFAULT_K,
) -> npt.NDArray[np.int64]:
    """[K, N] tiers the kNN router picks for the test requests at every λ.

    Only training requests graded (and priced) on every tier can vote; a call
    log that grades one tier per request leaves the others unknown, and
    averaging over different neighbour sets per tier would compare tiers on
    different requests.
    """
    rows, grades, costs = _complete_rows(train_grades, train_costs)
    embeddings = np.asarray(train_embeddings, dtype=np.float64)[rows]
    k = min(k, len(rows))
    # One neighbour search for both: grades and costs are averaged side by side.
    means = knn_success_probabilities(embeddings, np.hstack([grades, costs]), test_embeddings, k)
    p_success, expected = np.hsplit(means, 2)
    reference = float(expected[:, -1].mean())
    if reference <= 0.0:
        raise InvalidInputError("the top tier's neighbour cost must be positive", "train_costs")
    return np.asarray(cost_aware_choices(p_success, expected / reference, lambdas), dtype=np.int64)


def _complete_rows(
    grades: npt.ArrayLike, costs: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
    """Rows graded and priced on every tier, with their grades and costs."""
    g = np.asarray(grades, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if g.shape != c.shape or g.ndim != 2:
        raise InvalidInputError(
            f"train grades {g.shape} and costs {c.shape} must be the same [N, T]", "train_costs"
        )
    rows = np.flatnonzero(np.isfinite(g).all(axis=1) & np.isfinite(c).all(axis=1))
    if len(rows) == 0:
        raise NoVotersError(
            "no training request is graded on every tier; the kNN router needs some",
            "train_grades",
        )
    check_table(g[rows], c[rows])
    return rows.astype(np.int64), g[rows], c[rows]


def knn_router_from_calls(
    calls: Sequence[GradedCall], ladder: TierLadder, k: int = DEFAULT_K, progress: bool = True
) -> KnnRouter:
    """A kNN router over graded training calls, embedded like training does (cached)."""
    from training.dataset import build_table
    from training.embedder import Embedder, embedder_files
    from training.embedding_cache import EmbeddingCache

    table = build_table(calls, ladder)
    # Checked before anything is embedded, and only requests that can vote are.
    rows, grades, costs = _complete_rows(table.grades, table.costs)
    embedder = Embedder(embedder_files(), TruncationRule())
    cache = EmbeddingCache.for_embedder(embedder)

    def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return cache.embed(embedder, texts, progress=progress)[0]

    return KnnRouter(embed, embed([table.texts[i] for i in rows]), grades, costs, k)
