"""Per-tier P(success): a base model per tier plus a calibrator, scikit-learn style.

Configuration lives in ``__init__``, learning in ``fit`` (which returns self),
fitted attributes end in ``_`` and ``classes_`` orders the columns of
``predict_proba``. Labels are a [N, T] matrix of success (0/1, or the share
of several calls that succeeded; ``training.fractional_labels``) with NaN where
a tier has no graded call for a request; each tier learns from its own rows.

Calibration uses K-fold out-of-fold margins, so the calibrator is always fitted
on data the base model was not fitted on, and the final base model still sees
every row.

With ``neighbours=k`` each tier's margin is blended with the success rate of
the request's k nearest training requests (``training.neighbours``): a
two-weight logistic regression per tier on the out-of-fold margin and the
leave-one-out neighbour rate's logit, fitted before the calibrator. The base
model draws one boundary through the whole embedding space; the neighbours
see task families it smooths over, and the blend weighs the two per tier.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from router_model.errors import ConfigError
from training.calibration import Calibrator, fit_calibrator
from training.fractional_labels import as_binary_rows, has_both_outcomes, majority
from training.neighbours import NeighbourMemory, build_memory, rate_logits

KINDS = ("logreg", "gbt")
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
# (weight on the margin, weight on the neighbour logit, bias): the margin alone.
NO_BLEND = (1.0, 0.0, 0.0)


@dataclass(frozen=True)
class LinearMargin:
    """``margin = x @ weights + bias`` on raw (unstandardised) float32 features."""

    weights: FloatArray
    bias: float


class TierSuccessClassifier:
    """Calibrated P(success) per tier from logistic regression or gradient boosting.

    ``n_jobs`` is how many logistic fits run at once (None: one per core the
    process may use); the fitted weights do not depend on it.
    """

    def __init__(
        self,
        kind: str = "logreg",
        calibration: str = "auto",
        n_folds: int = 5,
        C: float = 1.0,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        random_state: int = 0,
        progress: bool = True,
        neighbours: int = 0,
        embedding_dim: int = 384,
        n_jobs: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown classifier {kind!r}; choose one of {list(KINDS)}")
        self.kind = kind
        self.calibration = calibration
        self.n_folds = n_folds
        self.C = C
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.random_state = random_state
        self.progress = progress
        self.neighbours = neighbours
        self.embedding_dim = embedding_dim
        self.n_jobs = n_jobs

    def fit(
        self,
        X: npt.NDArray[np.float32],
        Y: FloatArray,
        classes: Sequence[str],
        sample_weight: FloatArray | None = None,
    ) -> TierSuccessClassifier:
        """Fit every tier on its labelled rows; ``classes`` names the columns of Y.

        ``sample_weight`` ([N, T], e.g. inverse propensities of logged calls)
        weighs each labelled cell in the base model and in its calibrator.
        """
        if Y.shape[1] != len(classes):
            raise ConfigError(f"{Y.shape[1]} label columns for {len(classes)} tiers")
        self.classes_ = tuple(classes)
        self.mean_ = X.astype(np.float64).mean(axis=0)
        self.scale_ = X.astype(np.float64).std(axis=0)
        self.scale_[self.scale_ < 1e-12] = 1.0
        self.models_: list[object] = []
        self.calibrators_: list[Calibrator] = []
        self.oof_proba_ = np.full(Y.shape, np.nan)
        self.memory_: NeighbourMemory | None = None
        self.blend_ = np.tile(NO_BLEND, (Y.shape[1], 1))
        rate_logit = self._fit_memory(X, Y)
        bar = tqdm(
            self.classes_, desc=f"fitting {self.kind}", unit="tier", disable=not self.progress
        )
        for t, _ in enumerate(bar):
            rows = ~np.isnan(Y[:, t])
            labels = Y[rows, t]
            weights = None if sample_weight is None else sample_weight[rows, t]
            oof, model = self._fit_tier(X[rows], labels, weights)
            if rate_logit is not None:
                self.blend_[t] = _fit_blend(oof, rate_logit[rows, t], labels, weights)
                oof = _blended(oof, rate_logit[rows, t], self.blend_[t])
            calibrator = fit_calibrator(self.calibration, oof, labels, weights)
            self.calibrators_.append(calibrator)
            self.oof_proba_[rows, t] = calibrator(oof)
            self.models_.append(model)
        return self

    def decision_function(self, X: npt.NDArray[np.float32]) -> FloatArray:
        """[N, T] uncalibrated margins (blended with the neighbours' when there are any)."""
        margins = self.base_margins(X)
        if self.memory_ is None:
            return margins
        rate_logit = rate_logits(self.memory_.rates(X[:, : self.embedding_dim]))
        return _blended(margins, rate_logit, self.blend_)

    def base_margins(self, X: npt.NDArray[np.float32]) -> FloatArray:
        """[N, T] margins of the base model alone."""
        return np.column_stack([self._margin(m, X) for m in self.models_])

    def predict_proba(self, X: npt.NDArray[np.float32]) -> FloatArray:
        """[N, T] calibrated P(success); columns follow ``classes_``."""
        margins = self.decision_function(X)
        return np.column_stack([c(margins[:, t]) for t, c in enumerate(self.calibrators_)])

    def linear_margins(self) -> list[LinearMargin]:
        """For logistic regression: each tier's margin as weights on raw features."""
        if self.kind != "logreg":
            raise ConfigError("linear_margins() exists only for the logreg classifier")
        return [m for m in self.models_ if isinstance(m, LinearMargin)]

    def _fit_memory(self, X: npt.NDArray[np.float32], Y: FloatArray) -> FloatArray | None:
        """Keep the training requests for neighbour lookups; their leave-one-out rate logits."""
        if self.neighbours <= 0:
            return None
        embeddings = X[:, : self.embedding_dim]
        self.memory_, own_rows = build_memory(embeddings, Y, self.neighbours, self.random_state)
        return rate_logits(self.memory_.rates(embeddings, own_rows=own_rows))

    def _fit_tier(
        self,
        X: npt.NDArray[np.float32],
        labels: FloatArray,
        weights: FloatArray | None = None,
    ) -> tuple[FloatArray, object]:
        """Out-of-fold margins for one tier, and its base model fitted on every row."""
        folds = self._folds(labels)
        fits = [functools.partial(self._fit_base, X, labels, weights)]
        for fit_rows, _ in folds:
            fold_weights = None if weights is None else weights[fit_rows]
            fit = functools.partial(self._fit_base, X[fit_rows], labels[fit_rows], fold_weights)
            fits.append(fit)
        model, *fold_models = self._run_fits(fits)
        margins = np.zeros(len(labels))
        for fold_model, (_, held_rows) in zip(fold_models, folds, strict=True):
            margins[held_rows] = self._margin(fold_model, X[held_rows])
        return margins, model

    def _folds(self, labels: FloatArray) -> list[tuple[IndexArray, IndexArray]]:
        """Stratified (fit, held-out) rows; none when one outcome is too rare to split."""
        if not has_both_outcomes(labels):
            return []
        strata = majority(labels)
        folds = min(self.n_folds, int(np.bincount(strata, minlength=2).min()))
        if folds < 2:
            return []
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        return list(splitter.split(np.zeros(len(labels)), strata))

    def _run_fits(self, fits: Sequence[Callable[[], object]]) -> list[object]:
        """Logistic fits side by side, one per core, each on single-threaded BLAS.

        A fit's products (a few hundred features by tens of thousands of rows)
        are too small for BLAS to gain from threads: on two cores five fits
        took 3.5 s with two BLAS threads each, 2.0 s with one, and 1.4 s with
        one each, two at a time. Single-threaded BLAS also makes the weights
        independent of the machine's core count. LightGBM threads itself.
        """
        if self.kind != "logreg":
            return [fit() for fit in fits]
        workers = max(1, min(len(fits), self.n_jobs or len(os.sched_getaffinity(0))))
        with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda fit: fit(), fits))

    def _fit_base(
        self,
        X: npt.NDArray[np.float32],
        labels: FloatArray,
        weights: FloatArray | None = None,
    ) -> object:
        if not has_both_outcomes(labels):
            return LinearMargin(np.zeros(X.shape[1]), 0.0)
        binary = as_binary_rows(labels, weights)
        if self.kind == "logreg":
            return self._fit_logreg(binary.take(X), binary.labels, binary.weights)
        return self._fit_gbt(binary.take(X), binary.labels, binary.weights)

    def _fit_logreg(
        self,
        X: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        weights: FloatArray | None,
    ) -> LinearMargin:
        standardised = (X.astype(np.float64) - self.mean_) / self.scale_
        model = LogisticRegression(C=self.C, max_iter=2000)
        model.fit(standardised, labels, sample_weight=weights)
        weights = model.coef_[0] / self.scale_
        bias = float(model.intercept_[0] - np.dot(model.coef_[0], self.mean_ / self.scale_))
        return LinearMargin(weights=weights, bias=bias)

    def _fit_gbt(
        self,
        X: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        weights: FloatArray | None,
    ) -> object:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.5,
            random_state=self.random_state,
            n_jobs=2,
            verbose=-1,
        )
        return model.fit(X, labels, sample_weight=weights)

    @staticmethod
    def _margin(model: object, X: npt.NDArray[np.float32]) -> FloatArray:
        if isinstance(model, LinearMargin):
            return np.asarray(X.astype(np.float64) @ model.weights + model.bias)
        return np.asarray(model.predict(X, raw_score=True), dtype=np.float64)  # type: ignore[attr-defined]


def _fit_blend(
    margins: FloatArray,
    rate_logit: FloatArray,
    labels: FloatArray,
    weights: FloatArray | None,
) -> FloatArray:
    """(weight on the margin, weight on the neighbour logit, bias) for one tier.

    Nearly unregularised: two weights fitted on thousands of out-of-fold rows
    do not overfit, and a penalty would pull them towards zero for no reason.

    Both weights must be positive. On a few hundred requests k neighbours
    cover much of the training set, and the leave-one-out rate then falls
    when the request itself succeeded (its own success is what was left out),
    so a fit can learn a negative weight that new requests, which leave
    nothing out, would turn into an inverted ranking. The blend then falls
    back to the part that still has a positive weight, or to the margin alone.
    """
    identity = np.array(NO_BLEND)
    if not has_both_outcomes(labels):
        return identity
    both = _logistic(np.column_stack([margins, rate_logit]), labels, weights)
    if both[0] > 0.0 and both[1] > 0.0:
        return both
    if both[1] > 0.0:
        alone = _logistic(rate_logit[:, None], labels, weights)
        if alone[0] > 0.0:
            return np.array([0.0, alone[0], alone[1]])
    return identity


def _logistic(features: FloatArray, labels: FloatArray, weights: FloatArray | None) -> FloatArray:
    """Coefficients then intercept of a nearly unregularised logistic regression."""
    model = LogisticRegression(C=1e4, max_iter=1000)
    binary = as_binary_rows(labels, weights)
    model.fit(binary.take(features), binary.labels, sample_weight=binary.weights)
    return np.array([*model.coef_[0], model.intercept_[0]], dtype=np.float64)


def _blended(margins: FloatArray, rate_logit: FloatArray, blend: FloatArray) -> FloatArray:
    """One tier's blend on [N] arrays, or every tier's ([T, 3]) on [N, T] arrays."""
    return np.asarray(blend[..., 0] * margins + blend[..., 1] * rate_logit + blend[..., 2])
