"""Calibrators: which method "auto" picks, and the ONNX head reproducing every mix."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from router_model.errors import ConfigError
from router_model.manifest import P_SUCCESS
from training.calibration import (
    ISOTONIC_MIN_ROWS,
    MIN_KNOT_GAP,
    Calibrator,
    fit_calibrator,
    resolve_method,
)
from training.onnx_export import _calibration_nodes


def _margins_and_labels(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Margins of a miscalibrated scorer: true P(success) is σ(0.5·z − 0.3)."""
    rng = np.random.default_rng(seed)
    margins = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-(0.5 * margins - 0.3)))).astype(np.float64)
    return margins, labels


def test_auto_uses_platt_on_few_rows_and_isotonic_on_many() -> None:
    assert resolve_method("auto", ISOTONIC_MIN_ROWS - 1) == "sigmoid"
    assert resolve_method("auto", ISOTONIC_MIN_ROWS) == "isotonic"
    assert fit_calibrator("auto", *_margins_and_labels(300, 0)).method == "sigmoid"
    assert fit_calibrator("auto", *_margins_and_labels(ISOTONIC_MIN_ROWS + 200, 0)).method == (
        "isotonic"
    )


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_an_explicit_method_is_kept_whatever_the_size(method: str) -> None:
    assert resolve_method(method, 10) == resolve_method(method, 10**6) == method
    assert fit_calibrator(method, *_margins_and_labels(300, 1)).method == method


def test_unknown_method_is_named() -> None:
    with pytest.raises(ConfigError, match="'beta'"):
        fit_calibrator("beta", *_margins_and_labels(50, 2))


def test_platt_recovers_the_true_map_on_few_rows() -> None:
    calibrator = fit_calibrator("auto", *_margins_and_labels(800, 3))
    assert calibrator.method == "sigmoid"
    assert calibrator.a == pytest.approx(0.5, abs=0.15)
    assert calibrator.b == pytest.approx(-0.3, abs=0.25)


def test_platt_never_turns_a_ranking_upside_down() -> None:
    """Margins that fall as success rises (an overfitted tier) get the base rate."""
    margins, labels = _margins_and_labels(400, 4)
    calibrator = fit_calibrator("sigmoid", -margins, labels)
    assert calibrator.a == 0.0
    assert calibrator(np.array([-5.0, 5.0])) == pytest.approx([labels.mean()] * 2)


def _run_head(calibrators: list[Calibrator], margins: np.ndarray) -> np.ndarray:
    inits: list[onnx.TensorProto] = []
    nodes = _calibration_nodes(calibrators, inits)
    n_tiers = len(calibrators)
    graph = helper.make_graph(
        nodes,
        "calibration",
        inputs=[helper.make_tensor_value_info("margins", TensorProto.FLOAT, ["batch", n_tiers])],
        outputs=[helper.make_tensor_value_info(P_SUCCESS, TensorProto.FLOAT, ["batch", n_tiers])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([P_SUCCESS], {"margins": margins.astype(np.float32)})[0])


@pytest.mark.parametrize(
    "sizes",
    [(300, 400, 500), (1500, 1200, 2000), (300, 1500, 400), (1500, 300, 1200)],
    ids=["all-sigmoid", "all-isotonic", "mixed", "mixed-other-way"],
)
def test_onnx_head_reproduces_each_tiers_calibrator(sizes: tuple[int, ...]) -> None:
    calibrators = [fit_calibrator("auto", *_margins_and_labels(n, t)) for t, n in enumerate(sizes)]
    assert [c.method for c in calibrators] == [
        "isotonic" if n >= ISOTONIC_MIN_ROWS else "sigmoid" for n in sizes
    ]
    margins = np.column_stack([np.linspace(-8.0, 8.0, 401)] * len(sizes))
    expected = np.column_stack([c(margins[:, t]) for t, c in enumerate(calibrators)])
    # float32 sums over a few hundred isotonic segments drift by up to ~1e-4.
    assert np.abs(_run_head(calibrators, margins) - expected).max() < 1e-4


def test_isotonic_steps_between_near_equal_margins_are_widened() -> None:
    """Two out-of-fold margins 2e-6 apart with opposite labels made a vertical
    step, where the graph's float32 margin read a P 0.03 away from training's."""
    rng = np.random.default_rng(5)
    margins = np.concatenate([rng.uniform(-3.0, -0.9, 600), rng.uniform(-0.87, 3.0, 600)])
    labels = (margins > -0.88801).astype(np.float64)
    margins = np.concatenate([margins, [-0.888011, -0.888009]])
    labels = np.concatenate([labels, [0.0, 1.0]])
    calibrator = fit_calibrator("isotonic", margins, labels)
    assert np.diff(calibrator.knots_x).min() >= MIN_KNOT_GAP * (1 - 1e-9)
    on_the_step = np.linspace(-0.8882, -0.8868, 281)[:, None]
    expected = calibrator(on_the_step[:, 0])[:, None]
    assert np.abs(_run_head([calibrator], on_the_step) - expected).max() < 1e-3
