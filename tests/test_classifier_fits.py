"""The classifier's logistic fits run side by side on threads: same models, same
out-of-fold margins as fitting one at a time."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedKFold

from training.classifier import TierSuccessClassifier


def _data(n: int = 400) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 12)).astype(np.float32)
    easy = 1.0 / (1.0 + np.exp(-(X[:, 0] + 0.5 * X[:, 1])))
    Y = np.column_stack([rng.random(n) < easy * 0.6, rng.random(n) < easy]).astype(np.float64)
    Y[rng.random(n) < 0.2, 0] = np.nan  # the cheap tier was not asked about every request
    return X, Y


def _standardised(model: TierSuccessClassifier, X: npt.NDArray[np.float32]) -> None:
    model.mean_ = X.astype(np.float64).mean(axis=0)
    model.scale_ = X.astype(np.float64).std(axis=0)


def test_fits_on_two_threads_give_the_models_of_one() -> None:
    X, Y = _data()
    fitted = [
        TierSuccessClassifier(progress=False, neighbours=5, embedding_dim=8, n_jobs=n).fit(
            X, Y, ["small", "large"]
        )
        for n in (1, 2)
    ]
    one, two = fitted
    np.testing.assert_array_equal(one.oof_proba_, two.oof_proba_)
    np.testing.assert_array_equal(one.blend_, two.blend_)
    for a, b in zip(one.linear_margins(), two.linear_margins(), strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.bias == b.bias
    np.testing.assert_array_equal(one.predict_proba(X), two.predict_proba(X))


def test_each_out_of_fold_margin_comes_from_the_model_that_held_its_row_out() -> None:
    X, Y = _data()
    labels = Y[:, 1]
    model = TierSuccessClassifier(progress=False, n_jobs=2)
    _standardised(model, X)
    margins, final = model._fit_tier(X, labels)

    reference = np.zeros(len(labels))
    splitter = StratifiedKFold(5, shuffle=True, random_state=0)
    for fit_rows, held_rows in splitter.split(X, labels.astype(int)):
        fold_model = model._fit_base(X[fit_rows], labels[fit_rows])
        reference[held_rows] = model._margin(fold_model, X[held_rows])
    np.testing.assert_allclose(margins, reference, rtol=1e-6, atol=1e-9)
    everything = model._fit_base(X, labels)
    np.testing.assert_allclose(model._margin(final, X), model._margin(everything, X), rtol=1e-6)
    assert not np.allclose(margins, model._margin(final, X), atol=1e-3)  # held out, not in-sample
