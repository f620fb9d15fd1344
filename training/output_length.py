"""Predicted output tokens per tier, from the request.

The cost of a call is dominated by its output when answers range from a word
to a long chain of thought, so the decision prices each tier with a predicted
output length rather than a tier average. A ridge regression on log tokens
per tier is enough to capture "this request asks for a long answer"; tiers
whose calls recorded no output tokens fall back to a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import Ridge

FloatArray = npt.NDArray[np.float64]
MIN_ROWS = 20


@dataclass(frozen=True)
class OutputLengthModel:
    """``tokens[:, t] = exp(x @ weights[:, t] + bias[t]) * known[t]``."""

    weights: FloatArray
    bias: FloatArray
    known: FloatArray

    def predict(self, X: npt.NDArray[np.float32]) -> FloatArray:
        return np.asarray(np.exp(X.astype(np.float64) @ self.weights + self.bias) * self.known)


def fit_output_length(
    X: npt.NDArray[np.float32], output_tokens: FloatArray, alpha: float = 10.0
) -> OutputLengthModel:
    """One ridge per tier on log(1 + tokens); constant median where data is thin."""
    n_features, n_tiers = X.shape[1], output_tokens.shape[1]
    mean = X.astype(np.float64).mean(axis=0)
    scale = X.astype(np.float64).std(axis=0)
    scale[scale < 1e-12] = 1.0
    weights = np.zeros((n_features, n_tiers))
    bias = np.zeros(n_tiers)
    known = np.zeros(n_tiers)
    for t in range(n_tiers):
        rows = ~np.isnan(output_tokens[:, t])
        if not rows.any():
            continue
        known[t] = 1.0
        target = np.log1p(output_tokens[rows, t])
        if rows.sum() < MIN_ROWS:
            bias[t] = float(np.log(np.mean(np.expm1(target)) + 1.0))
            continue
        standardised = (X[rows].astype(np.float64) - mean) / scale
        ridge = Ridge(alpha=alpha).fit(standardised, target)
        # exp of a log-scale prediction is a median; adding half the residual
        # variance turns it into the mean, which is what an expected cost needs.
        residual_var = float(np.var(target - ridge.predict(standardised)))
        weights[:, t] = ridge.coef_ / scale
        bias[t] = float(ridge.intercept_ - np.dot(ridge.coef_, mean / scale)) + residual_var / 2
    return OutputLengthModel(weights=weights, bias=bias, known=known)
