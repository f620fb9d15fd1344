"""Several calls of one request on one tier: P(success) is learnt per call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router_model.calls import write_calls
from router_model.router import Router
from router_model.tiers import load_tiers
from training.classifier import TierSuccessClassifier
from training.dataset import build_table
from training.evaluation.calibration import roc_auc
from training.fractional_labels import as_binary_rows
from training.importers import import_calls
from training.train import TrainConfig, train_router

DATA = Path(__file__).resolve().parent.parent / "data"
SMALL = ("Meta-Llama-3_1-8B-Instruct", "Mistral-7B-v0.1", "gemma-7b")
LARGE = ("gemini-1.5-pro-002", "Meta-Llama-3_1-70B-Instruct")


def _rung(name: str, models: tuple[str, ...], input_price: float, output_price: float) -> str:
    aliases = ", ".join(f'"{m}"' for m in models[1:])
    return (
        f'[[tiers]]\nname = "{name}"\nmodel = "{models[0]}"\nmodels = [{aliases}]\n'
        f"input_usd_per_mtok = {input_price}\noutput_usd_per_mtok = {output_price}\n"
    )


TIERS = "pass_grade = 0.5\n" + _rung("small", SMALL, 0.2, 0.2) + _rung("large", LARGE, 1.25, 5.0)


def test_a_share_becomes_a_weighted_success_and_failure() -> None:
    binary = as_binary_rows(np.array([0.0, 1.0, 0.6]), np.array([1.0, 2.0, 3.0]))
    assert binary.rows.tolist() == [0, 1, 2, 2]
    assert binary.labels.tolist() == [0, 1, 1, 0]
    assert binary.weights is not None
    np.testing.assert_allclose(binary.weights, [1.0, 2.0, 1.8, 1.2])
    plain = as_binary_rows(np.array([0.0, 1.0, 1.0]))
    assert plain.rows.tolist() == [0, 1, 2] and plain.weights is None


def test_a_share_fits_as_its_calls_do() -> None:
    """Label 0.25 on a row is the same fit as a success weighted 0.25 and a failure 0.75."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    shares = np.clip(np.round(0.5 + 0.3 * X[:, 0] + 0.2 * rng.normal(size=60), 2), 0.0, 1.0)
    model = TierSuccessClassifier(progress=False)
    model.mean_, model.scale_ = X.astype(np.float64).mean(0), X.astype(np.float64).std(0)
    fractional = model._fit_base(X, shares)
    explicit = model._fit_logreg(
        np.vstack([X, X]),
        np.concatenate([np.ones(60), np.zeros(60)]).astype(np.int64),
        np.concatenate([shares, 1.0 - shares]),
    )
    assert isinstance(fractional, type(explicit))
    np.testing.assert_allclose(fractional.weights, explicit.weights, atol=1e-4)
    majority = model._fit_base(X, (shares >= 0.5).astype(np.float64))
    assert not np.allclose(fractional.weights, majority.weights, atol=1e-2)


def test_roc_auc_of_shares_counts_every_pair_of_distinct_requests() -> None:
    rng = np.random.default_rng(2)
    p, y = rng.random(40).round(1), rng.choice([0.0, 0.25, 0.5, 1.0], size=40)
    num = den = 0.0
    for i in range(40):
        for j in range(40):
            if i != j:
                pair = y[i] * (1.0 - y[j])
                num += pair * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
                den += pair
    assert roc_auc(p, y) == pytest.approx(num / den)


def test_a_tier_of_several_models_predicts_the_share_of_calls_that_succeed(
    tmp_path: Path,
) -> None:
    """Real MMLU-Pro calls of five models on a two-rung ladder, two or three per rung."""
    calls, seen = [], set()
    src = DATA / "mmlu_pro" / "graded_wide.csv.gz"
    for call in import_calls("mmlu-pro-wide", src, all_models=True):
        if call.request_id not in seen:
            if len(seen) == 360:
                break
            seen.add(call.request_id)
        if call.model in SMALL + LARGE:
            calls.append(call)
    write_calls(tmp_path / "calls.jsonl", calls)
    (tmp_path / "tiers.toml").write_text(TIERS)
    ladder = load_tiers(tmp_path / "tiers.toml")
    table = build_table(calls, ladder)
    share = np.nanmean(table.successes, axis=0)
    majority = np.nanmean(table.grades >= ladder.pass_grade, axis=0)
    assert majority[1] - share[1] > 0.1  # one pass in two is a majority, but half the calls

    train_router(
        [tmp_path / "calls.jsonl"],
        tmp_path / "tiers.toml",
        tmp_path / "router",
        TrainConfig(progress=False),
    )
    predicted = Router.load(tmp_path / "router").score(table.requests).p_success.mean(axis=0)
    np.testing.assert_allclose(predicted, share, atol=0.04)
