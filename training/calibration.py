"""Calibrators that map a classifier's margin to a calibrated P(success).

Both are fitted on out-of-fold margins (data the base model was not fitted on)
and both have closed forms that the ONNX head reproduces exactly:

* ``sigmoid`` (Platt): ``p = σ(a·z + b)``; two parameters, robust on small data.
* ``isotonic``: a monotone piecewise-linear map through knots, clipped at both
  ends (scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``); more
  flexible, needs more data.
* ``auto`` (the default): isotonic for a tier with at least
  ``ISOTONIC_MIN_ROWS`` labelled requests, sigmoid below. On learning curves
  over the bundled sets, isotonic fitted on a few hundred out-of-fold margins
  overfits its steps (worse ECE and routing than Platt), and from about a
  thousand on it calibrates better; see docs/routing-quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from router_model.errors import ConfigError
from training.fractional_labels import as_binary_rows

METHODS = ("auto", "isotonic", "sigmoid")
ISOTONIC_MIN_ROWS = 1000
# Isotonic steps between two adjacent out-of-fold margins can be 1e-4 wide; the
# graph computes margins in float32, and a slope of thousands turns that
# rounding into a P off by 0.01 or more. Knots are kept at least this far
# apart (in margin units, where margins span several units).
MIN_KNOT_GAP = 1e-3
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibrator; ``knots_x``/``knots_y`` are used by isotonic, ``a``/``b`` by sigmoid."""

    method: str
    a: float = 1.0
    b: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    def __call__(self, margins: FloatArray) -> FloatArray:
        if self.method == "sigmoid":
            return np.asarray(1.0 / (1.0 + np.exp(-(self.a * margins + self.b))))
        return np.asarray(np.interp(margins, self.knots_x, self.knots_y))


def fit_calibrator(
    method: str, margins: FloatArray, labels: FloatArray, weights: FloatArray | None = None
) -> Calibrator:
    """Fit on held-out margins; a single-class tier gets a constant calibrator."""
    method = resolve_method(method, len(labels))
    rate = float(np.average(labels, weights=weights))
    if rate in (0.0, 1.0):
        return _constant(method, rate)
    if method == "sigmoid":
        platt = LogisticRegression(C=1e6, max_iter=1000)
        binary = as_binary_rows(labels, weights)
        platt.fit(binary.take(margins).reshape(-1, 1), binary.labels, sample_weight=binary.weights)
        slope = float(platt.coef_[0, 0])
        if slope <= 0.0:
            # Out-of-fold margins that fall as success rises mean the base model
            # overfitted a tier with no usable signal; flipping its ranking would
            # be worse than admitting that and predicting the base rate.
            return _constant(method, rate)
        return Calibrator("sigmoid", a=slope, b=float(platt.intercept_[0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(margins, labels, sample_weight=weights)
    return Calibrator(
        "isotonic",
        knots_x=spread_knots(iso.X_thresholds_, MIN_KNOT_GAP),
        knots_y=tuple(float(y) for y in iso.y_thresholds_),
    )


def spread_knots(knots: FloatArray, gap: float) -> tuple[float, ...]:
    """Sorted knots moved right where needed so that neighbours are ``gap`` apart.

    Only margins within a few ``gap`` of a crowded step get a different P, and
    no step is steeper than 1/``gap``.
    """
    spread: list[float] = []
    for x in np.asarray(knots, dtype=np.float64):
        spread.append(float(x) if not spread else max(float(x), spread[-1] + gap))
    return tuple(spread)


def resolve_method(method: str, n_rows: int) -> str:
    """The calibrator ``method`` fits on ``n_rows`` labelled requests ("auto" decided)."""
    if method not in METHODS:
        raise ConfigError(f"unknown calibration {method!r}; choose one of {list(METHODS)}")
    if method != "auto":
        return method
    return "isotonic" if n_rows >= ISOTONIC_MIN_ROWS else "sigmoid"


def _constant(method: str, rate: float) -> Calibrator:
    if method == "sigmoid":
        clipped = min(max(rate, 1e-6), 1 - 1e-6)
        return Calibrator("sigmoid", a=0.0, b=float(np.log(clipped / (1 - clipped))))
    return Calibrator("isotonic", knots_x=(0.0, 1.0), knots_y=(rate, rate))
