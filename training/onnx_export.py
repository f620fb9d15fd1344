"""Builds the artifact's single ONNX graph: embedder + classifier head + output lengths.

The head is written directly with ``onnx.helper`` rather than converted, so
each piece is the closed form of what training fitted and the graph's
probabilities match the fitted pipeline to float32 precision:

* margins: ``x @ W + b`` for logistic regression, or one ``TreeEnsembleRegressor``
  holding every tier's LightGBM trees (one target per tier);
* neighbours (when trained with them): the k nearest training requests by an
  integer ``MatMulInteger`` over the 7-bit memory and ``TopK``, their smoothed
  success rate per tier, and the per-tier blend ``w·margin + v·logit(rate) + c``;
* calibration: ``σ(a·z + b)``, or the isotonic piecewise-linear map written as
  ``y0 + Σ_k slope_k · (clip(z, x_k, x_{k+1}) − x_k)``, each tier with its own;
* output tokens: ``exp(x @ Wo + bo) · known``.

The head is then joined to the exported MiniLM graph with
``onnx.compose.merge_models`` on the ``embedding`` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from router_model.manifest import OUTPUT_TOKENS, P_SUCCESS, SCALAR_FEATURES
from training.calibration import Calibrator
from training.classifier import LinearMargin, TierSuccessClassifier
from training.embedder import EMBEDDING, EMBEDDING_DIM
from training.neighbours import (
    PRIOR_WEIGHT,
    QUERY_LEVELS,
    QUERY_ZERO,
    NeighbourMemory,
)
from training.output_length import OutputLengthModel

ML_DOMAIN = "ai.onnx.ml"
FloatArray = npt.NDArray[np.float64]


def build_model(
    embedder_path: Path,
    classifier: TierSuccessClassifier,
    lengths: OutputLengthModel,
    n_scalar: int,
) -> onnx.ModelProto:
    """input_ids, attention_mask, scalar_features -> p_success, output_tokens."""
    embedder = onnx.load(str(embedder_path))
    _drop_unused_opsets(embedder)
    head = _head_model(classifier, lengths, n_scalar, embedder)
    merged = compose.merge_models(embedder, head, io_map=[(EMBEDDING, EMBEDDING)])
    onnx.checker.check_model(merged)
    return merged


def _drop_unused_opsets(model: onnx.ModelProto) -> None:
    """Forget operator sets no node uses.

    onnxruntime's optimizer declares every domain it knows (``ai.onnx.ml``
    version 5 among them), and ``merge_models`` refuses two models that declare
    one domain at different versions.
    """
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def _head_model(
    classifier: TierSuccessClassifier,
    lengths: OutputLengthModel,
    n_scalar: int,
    embedder: onnx.ModelProto,
) -> onnx.ModelProto:
    n_tiers = len(classifier.classes_)
    nodes: list[onnx.NodeProto] = [
        helper.make_node("Concat", [EMBEDDING, SCALAR_FEATURES], ["x"], axis=1)
    ]
    inits: list[onnx.TensorProto] = []
    memory = classifier.memory_
    if memory is None:
        nodes += _margin_nodes(classifier, inits, "margins")
    else:
        nodes += _margin_nodes(classifier, inits, "base_margins")
        nodes += _neighbour_nodes(memory, inits)
        nodes += _blend_nodes(classifier.blend_, "base_margins", "nb_logit", "margins", inits)
    nodes += _calibration_nodes(classifier.calibrators_, inits)
    nodes += _length_nodes(lengths, inits)
    graph = helper.make_graph(
        nodes,
        "tierwise_head",
        inputs=[
            helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch", EMBEDDING_DIM]),
            helper.make_tensor_value_info(SCALAR_FEATURES, TensorProto.FLOAT, ["batch", n_scalar]),
        ],
        outputs=[
            helper.make_tensor_value_info(P_SUCCESS, TensorProto.FLOAT, ["batch", n_tiers]),
            helper.make_tensor_value_info(OUTPUT_TOKENS, TensorProto.FLOAT, ["batch", n_tiers]),
        ],
        initializer=inits,
    )
    opsets = [o for o in embedder.opset_import if o.domain in ("", "ai.onnx")]
    opsets.append(helper.make_opsetid(ML_DOMAIN, 3))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = embedder.ir_version
    return model


def _const(inits: list[onnx.TensorProto], name: str, value: Any) -> str:
    inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
    return name


def _margin_nodes(
    classifier: TierSuccessClassifier, inits: list[onnx.TensorProto], out: str
) -> list[onnx.NodeProto]:
    if classifier.kind == "logreg":
        margins = classifier.linear_margins()
        weights = np.column_stack([m.weights for m in margins])
        bias = np.array([m.bias for m in margins])
        return _linear_nodes("x", weights, bias, out, "clf", inits)
    return [_tree_node(classifier.models_, "x", out)]


def _neighbour_nodes(
    memory: NeighbourMemory, inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    """embedding -> nb_logit [batch, T]: logit of the k nearest requests' smoothed rates.

    Mirrors ``NeighbourMemory.rates`` operation for operation (see
    training/neighbours.py for why the integers are exact).
    """
    inits += [
        numpy_helper.from_array(memory.codes.T.copy(), "nb_codes"),
        numpy_helper.from_array(np.array(QUERY_ZERO, dtype=np.uint8), "nb_query_zero"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "nb_code_zero"),
        numpy_helper.from_array(np.array([memory.k], dtype=np.int64), "nb_k"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "nb_axis"),
    ]
    hits_prior = _const(inits, "nb_hits_prior", np.float32(PRIOR_WEIGHT) * memory.prior)
    levels = _const(inits, "nb_levels", QUERY_LEVELS)
    return [
        helper.make_node("Abs", [EMBEDDING], ["nb_abs"]),
        helper.make_node("ReduceMax", ["nb_abs"], ["nb_peak"], axes=[1], keepdims=1),
        helper.make_node("Max", ["nb_peak", _const(inits, "nb_tiny", 1e-12)], ["nb_peak_safe"]),
        helper.make_node("Div", ["nb_peak_safe", levels], ["nb_scale"]),
        helper.make_node("Div", [EMBEDDING, "nb_scale"], ["nb_scaled"]),
        helper.make_node("Round", ["nb_scaled"], ["nb_rounded"]),
        helper.make_node(
            "Clip", ["nb_rounded", _const(inits, "nb_low", -QUERY_LEVELS), levels], ["nb_q"]
        ),
        helper.make_node("Add", ["nb_q", _const(inits, "nb_shift", QUERY_ZERO)], ["nb_qs"]),
        helper.make_node("Cast", ["nb_qs"], ["nb_qu"], to=TensorProto.UINT8),
        helper.make_node(
            "MatMulInteger", ["nb_qu", "nb_codes", "nb_query_zero", "nb_code_zero"], ["nb_dot"]
        ),
        helper.make_node("Cast", ["nb_dot"], ["nb_dotf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["nb_dotf", _const(inits, "nb_scales", memory.scales)], ["nb_sim"]),
        helper.make_node("TopK", ["nb_sim", "nb_k"], ["nb_top", "nb_idx"], axis=-1),
        *_neighbour_sum("nb_successes", memory.successes, "nb_hits", inits),
        *_neighbour_sum("nb_labelled", memory.labelled, "nb_seen", inits),
        helper.make_node("Add", ["nb_hits", hits_prior], ["nb_num"]),
        helper.make_node("Add", ["nb_seen", _const(inits, "nb_weight", PRIOR_WEIGHT)], ["nb_den"]),
        helper.make_node("Div", ["nb_num", "nb_den"], ["nb_rate"]),
        helper.make_node("Sub", [_const(inits, "nb_one", 1.0), "nb_rate"], ["nb_miss"]),
        helper.make_node("Div", ["nb_rate", "nb_miss"], ["nb_odds"]),
        helper.make_node("Log", ["nb_odds"], ["nb_logit"]),
    ]


def _neighbour_sum(
    name: str, table: npt.NDArray[np.float32], out: str, inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    """Σ over the k neighbours of a [N, T] per-request table -> [batch, T]."""
    return [
        helper.make_node("Gather", [_const(inits, name, table), "nb_idx"], [f"{out}_k"], axis=0),
        helper.make_node("ReduceSum", [f"{out}_k", "nb_axis"], [out], keepdims=0),
    ]


def _blend_nodes(
    blend: FloatArray, margins: str, rate_logit: str, out: str, inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    w_margin = _const(inits, "blend_margin", blend[:, 0])
    w_rate = _const(inits, "blend_rate", blend[:, 1])
    bias = _const(inits, "blend_bias", blend[:, 2])
    return [
        helper.make_node("Mul", [margins, w_margin], ["blend_m"]),
        helper.make_node("Mul", [rate_logit, w_rate], ["blend_r"]),
        helper.make_node("Add", ["blend_m", "blend_r"], ["blend_sum"]),
        helper.make_node("Add", ["blend_sum", bias], [out]),
    ]


def _linear_nodes(
    x: str,
    weights: FloatArray,
    bias: FloatArray,
    out: str,
    prefix: str,
    inits: list[onnx.TensorProto],
) -> list[onnx.NodeProto]:
    w = _const(inits, f"{prefix}_weights", weights)
    b = _const(inits, f"{prefix}_bias", bias)
    return [
        helper.make_node("MatMul", [x, w], [f"{prefix}_xw"]),
        helper.make_node("Add", [f"{prefix}_xw", b], [out]),
    ]


def _calibration_nodes(
    calibrators: Sequence[Calibrator], inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    """P from margins; tiers may mix methods ("auto" calibrates small tiers with Platt)."""
    sigmoid = [c.method == "sigmoid" for c in calibrators]
    if all(sigmoid):
        return _sigmoid_nodes(calibrators, P_SUCCESS, inits)
    if not any(sigmoid):
        return _isotonic_nodes(calibrators, P_SUCCESS, inits)
    # Both maps on every tier, then each tier keeps its own: P = s·σ + (1 − s)·iso.
    flat = Calibrator("isotonic", knots_x=(0.0, 1.0), knots_y=(0.0, 0.0))
    isotonic = [flat if s else c for c, s in zip(calibrators, sigmoid, strict=True)]
    keep = np.asarray(sigmoid, dtype=np.float64)
    return [
        *_sigmoid_nodes(calibrators, "cal_sigmoid", inits),
        *_isotonic_nodes(isotonic, "cal_iso", inits),
        helper.make_node("Mul", ["cal_sigmoid", _const(inits, "cal_keep", keep)], ["cal_s"]),
        helper.make_node("Mul", ["cal_iso", _const(inits, "cal_keep_iso", 1.0 - keep)], ["cal_i"]),
        helper.make_node("Add", ["cal_s", "cal_i"], [P_SUCCESS]),
    ]


def _sigmoid_nodes(
    calibrators: Sequence[Calibrator], out: str, inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    a = _const(inits, "cal_a", [c.a for c in calibrators])
    b = _const(inits, "cal_b", [c.b for c in calibrators])
    return [
        helper.make_node("Mul", ["margins", a], ["cal_az"]),
        helper.make_node("Add", ["cal_az", b], ["cal_logit"]),
        helper.make_node("Sigmoid", ["cal_logit"], [out]),
    ]


def _isotonic_nodes(
    calibrators: Sequence[Calibrator], out: str, inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    lo, hi, slopes, y0 = _isotonic_segments(calibrators)
    axis = _const_int(inits, "cal_axis", [2])
    return [
        helper.make_node("Unsqueeze", ["margins", axis], ["cal_z"]),
        helper.make_node("Max", ["cal_z", _const(inits, "cal_lo", lo)], ["cal_zlo"]),
        helper.make_node("Min", ["cal_zlo", _const(inits, "cal_hi", hi)], ["cal_zclip"]),
        helper.make_node("Sub", ["cal_zclip", "cal_lo"], ["cal_run"]),
        helper.make_node("Mul", ["cal_run", _const(inits, "cal_slope", slopes)], ["cal_rise"]),
        helper.make_node("ReduceSum", ["cal_rise", axis], ["cal_sum"], keepdims=0),
        helper.make_node("Add", ["cal_sum", _const(inits, "cal_y0", y0)], [out]),
    ]


def _isotonic_segments(
    calibrators: Sequence[Calibrator],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """[T, K] segment bounds and slopes, padded with zero-width, zero-slope segments."""
    width = max(max(len(c.knots_x) - 1, 1) for c in calibrators)
    lo = np.zeros((len(calibrators), width))
    hi = np.zeros_like(lo)
    slopes = np.zeros_like(lo)
    y0 = np.zeros(len(calibrators))
    for t, c in enumerate(calibrators):
        xs, ys = np.asarray(c.knots_x), np.asarray(c.knots_y)
        y0[t] = ys[0]
        lo[t, :], hi[t, :] = xs[-1], xs[-1]
        n = len(xs) - 1
        lo[t, :n], hi[t, :n] = xs[:-1], xs[1:]
        span = np.where(xs[1:] > xs[:-1], xs[1:] - xs[:-1], 1.0)
        slopes[t, :n] = (ys[1:] - ys[:-1]) / span
    return lo, hi, slopes, y0


def _const_int(inits: list[onnx.TensorProto], name: str, value: Sequence[int]) -> str:
    inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
    return name


def _length_nodes(
    lengths: OutputLengthModel, inits: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    nodes = _linear_nodes("x", lengths.weights, lengths.bias, "len_log", "len", inits)
    known = _const(inits, "len_known", lengths.known)
    return [
        *nodes,
        helper.make_node("Exp", ["len_log"], ["len_exp"]),
        helper.make_node("Mul", ["len_exp", known], [OUTPUT_TOKENS]),
    ]


def _tree_node(models: Sequence[object], x: str, out: str) -> onnx.NodeProto:
    """Every tier's boosted trees in one regressor, target index = tier column."""
    attrs: dict[str, list[Any]] = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_values",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    base_values: list[float] = []
    tree_offset = 0
    for tier, model in enumerate(models):
        if isinstance(model, LinearMargin):  # single-class tier: a constant margin
            base_values.append(model.bias)
            continue
        dump = model.booster_.dump_model()  # type: ignore[attr-defined]
        base_values.append(0.0)
        for tree in dump["tree_info"]:
            _add_tree(attrs, tree["tree_structure"], tree_offset, tier)
            tree_offset += 1
    settings: dict[str, Any] = {
        "n_targets": len(models),
        "aggregate_function": "SUM",
        "post_transform": "NONE",
        "base_values": base_values,
        **attrs,
    }
    return helper.make_node("TreeEnsembleRegressor", [x], [out], domain=ML_DOMAIN, **settings)


def _add_tree(attrs: dict[str, list[Any]], root: dict[str, Any], tree_id: int, target: int) -> None:
    """Flatten one LightGBM tree; thresholds are rounded down to float32 so that
    ``x <= t`` on float32 inputs decides exactly as LightGBM's double comparison."""
    counter = [0]

    def visit(node: dict[str, Any]) -> int:
        node_id = counter[0]
        counter[0] += 1
        attrs["nodes_treeids"].append(tree_id)
        attrs["nodes_nodeids"].append(node_id)
        if "leaf_value" in node:
            for key, value in (("featureids", 0), ("values", 0.0), ("modes", "LEAF")):
                attrs[f"nodes_{key}"].append(value)
            attrs["nodes_truenodeids"].append(0)
            attrs["nodes_falsenodeids"].append(0)
            attrs["nodes_missing_value_tracks_true"].append(0)
            for key, value in (("treeids", tree_id), ("nodeids", node_id), ("ids", target)):
                attrs[f"target_{key}"].append(value)
            attrs["target_weights"].append(float(node["leaf_value"]))
            return node_id
        attrs["nodes_featureids"].append(int(node["split_feature"]))
        attrs["nodes_values"].append(_float32_floor(float(node["threshold"])))
        attrs["nodes_modes"].append("BRANCH_LEQ")
        attrs["nodes_missing_value_tracks_true"].append(int(bool(node.get("default_left"))))
        slot = len(attrs["nodes_truenodeids"])
        attrs["nodes_truenodeids"].append(0)
        attrs["nodes_falsenodeids"].append(0)
        attrs["nodes_truenodeids"][slot] = visit(node["left_child"])
        attrs["nodes_falsenodeids"][slot] = visit(node["right_child"])
        return node_id

    visit(root)


def _float32_floor(value: float) -> float:
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)
