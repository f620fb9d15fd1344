"""The weekly retrain: train a challenger on the call log, judge it against the
current router on the newest week, and promote it only when it is no worse.

The newest ``eval_days`` of the window are never trained on. Both routers are
scored on exactly those requests, so the comparison is between two routers on
the same data, not between two manifests measured on different splits.

Two bases of comparison, picked from the evaluation data:

* ``cost_at_95`` — at least ``MIN_JUDGED`` requests are graded on every tier:
  cost@95 of the cost-aware rule (lower is better) and the mean per-tier ECE.
* ``graded_calls`` — a live log usually grades only the tier that answered, so
  cost@95 cannot be measured; then Brier score and log-loss of P(success) on
  the graded (request, tier) cells are compared, both with ``tolerance``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from router_model.router import Router
from router_model.tiers import TierLadder, load_tiers
from serving.calllog import open_store
from serving.registry import Registry
from training.dataset import RequestTable, build_table, data_fingerprint
from training.report import MIN_JUDGED, write_report
from training.train import TrainConfig, train_on_table

log = logging.getLogger(__name__)
_EPS = 1e-6


@dataclass(frozen=True)
class RetrainConfig:
    store_url: str
    registry: Path
    tiers: Path
    now: datetime | None = None
    window_days: float = 28.0
    eval_days: float = 7.0
    tolerance: float = 0.02
    ece_tolerance: float = 0.01
    report_dir: Path | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(progress=False))


@dataclass(frozen=True)
class Score:
    """What one router achieved on the evaluation requests."""

    version: str
    basis: str
    cost_at_95: float | None = None
    mean_ece: float | None = None
    brier: float | None = None
    log_loss: float | None = None
    n: int = 0


@dataclass(frozen=True)
class RetrainResult:
    promoted: bool
    challenger: Score
    current: Score | None
    reasons: tuple[str, ...]
    report_dir: Path

    @property
    def decision(self) -> str:
        return "promote" if self.promoted else "reject"


def retrain(config: RetrainConfig) -> RetrainResult:
    """One full cycle; raises ``TierwiseError`` for an unusable store, window or training."""
    now = (config.now or datetime.now(UTC)).astimezone(UTC)
    since, eval_since = (
        now - timedelta(days=config.window_days),
        now - timedelta(days=config.eval_days),
    )
    if not since < eval_since < now:
        raise InvalidInputError("must be positive and shorter than --window-days", "eval_days")
    train_calls, eval_calls = split_window(_read_window(config.store_url, since, now), eval_since)
    log.info(
        "window %s .. %s: %d train, %d eval calls", since, now, len(train_calls), len(eval_calls)
    )
    ladder = load_tiers(config.tiers)
    table = _table(train_calls, ladder, "training window")
    registry = Registry(config.registry)
    current_version = registry.current()
    current = registry.load(current_version) if current_version else None

    report_dir = config.report_dir or config.registry / "reports" / f"{now:%Y%m%dT%H%M%SZ}"
    challenger = _train_challenger(table, ladder, train_calls, config, registry)
    challenger_score = score_router(challenger, eval_calls, report_dir / "challenger")
    current_score = score_router(current, eval_calls, report_dir / "current") if current else None
    promoted, reasons = decide(challenger_score, current_score, config)
    summary = {
        "decision": "promote" if promoted else "reject",
        "reasons": reasons,
        "now": now.isoformat(),
        "window": {"since": since.isoformat(), "eval_since": eval_since.isoformat()},
        "calls": {"train": len(train_calls), "eval": len(eval_calls)},
        "tolerance": config.tolerance,
        "ece_tolerance": config.ece_tolerance,
        "challenger": asdict(challenger_score),
        "current": asdict(current_score) if current_score else None,
    }
    _write_json(report_dir / "metrics.json", summary)
    reason = "; ".join(reasons)
    metrics = {"challenger": summary["challenger"], "current": summary["current"]}
    if promoted:
        registry.promote(challenger.version, reason, metrics)
    else:
        registry.reject(challenger.version, reason, metrics)
    return RetrainResult(promoted, challenger_score, current_score, tuple(reasons), report_dir)


def split_window(
    calls: list[GradedCall], eval_since: datetime
) -> tuple[list[GradedCall], list[GradedCall]]:
    """Training and evaluation calls, split by request so no request lands on both sides.

    A request belongs to the evaluation week when its first call does; later
    calls of an older request (an escalation, a replay) stay with its training side.
    """
    first: dict[str, datetime] = {}
    for call in calls:
        seen = first.get(call.request_id)
        first[call.request_id] = call.timestamp if seen is None else min(seen, call.timestamp)
    train = [c for c in calls if first[c.request_id] < eval_since]
    held = [c for c in calls if first[c.request_id] >= eval_since]
    return train, held


def score_router(router: Router, eval_calls: list[GradedCall], report_dir: Path) -> Score:
    """Evaluate on the evaluation calls; writes the full report when cost@95 is measurable."""
    table = _table(eval_calls, router.ladder, "evaluation window")
    if int(table.fully_graded().sum()) >= MIN_JUDGED:
        metrics = write_report(router, table, report_dir)
        eces = [t["ece"] for t in metrics["calibration"]["tiers"] if t["ece"] is not None]
        return Score(
            version=router.version,
            basis="cost_at_95",
            cost_at_95=metrics["routers"]["cost_aware"]["cost_at_95"],
            mean_ece=float(np.mean(eces)) if eces else None,
            n=int(metrics["requests_judged"]),
        )
    brier, log_loss, n = graded_cell_losses(router, table)
    report_dir.mkdir(parents=True, exist_ok=True)
    score = Score(router.version, "graded_calls", brier=brier, log_loss=log_loss, n=n)
    _write_json(report_dir / "metrics.json", {"router_version": router.version, **asdict(score)})
    return score


def graded_cell_losses(router: Router, table: RequestTable) -> tuple[float, float, int]:
    """Brier score and log-loss of P(success) over every graded (request, tier) cell."""
    p = router.score(table.requests).p_success
    graded = ~np.isnan(table.grades)
    y = table.successes[graded]
    q = np.clip(p[graded], _EPS, 1.0 - _EPS)
    brier = float(np.mean((q - y) ** 2))
    log_loss = float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))
    return brier, log_loss, int(graded.sum())


def decide(
    challenger: Score, current: Score | None, config: RetrainConfig
) -> tuple[bool, list[str]]:
    """Promote only when the challenger is no worse than current within the tolerances."""
    if current is None:
        return True, ["no current router; the challenger trained and is promoted"]
    if challenger.basis != current.basis:
        return False, [f"routers measured on different bases ({challenger.basis}, {current.basis})"]
    if challenger.basis == "cost_at_95":
        checks = [
            ("cost@95", challenger.cost_at_95, current.cost_at_95, config.tolerance),
            ("mean ECE", challenger.mean_ece, current.mean_ece, config.ece_tolerance),
        ]
    else:
        checks = [
            ("Brier", challenger.brier, current.brier, config.tolerance),
            ("log-loss", challenger.log_loss, current.log_loss, config.tolerance),
        ]
    reasons, ok = [], True
    for name, mine, theirs, tol in checks:
        passed = _value(mine) <= _value(theirs) + tol
        ok &= passed
        verdict = "ok" if passed else "worse"
        reasons.append(
            f"{name} {_fmt(mine)} vs current {_fmt(theirs)} (+{tol:g} allowed): {verdict}"
        )
    return ok, reasons


def _value(x: float | None) -> float:
    """A metric that could not be reached (cost@95 never attained) counts as infinitely bad."""
    return math.inf if x is None else x


def _fmt(x: float | None) -> str:
    return "unreached" if x is None else f"{x:.4f}"


def _read_window(url: str, since: datetime, until: datetime) -> list[GradedCall]:
    store = open_store(url, create=False)
    try:
        return list(store.iter_calls(since, until))
    finally:
        store.close()


def _table(calls: list[GradedCall], ladder: TierLadder, where: str) -> RequestTable:
    try:
        return build_table(calls, ladder)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def _train_challenger(
    table: RequestTable,
    ladder: TierLadder,
    calls: list[GradedCall],
    config: RetrainConfig,
    registry: Registry,
) -> Router:
    """Train into a scratch folder beside the registry, register it, and load it from there."""
    config.registry.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".train.", dir=config.registry))
    try:
        result = train_on_table(
            table, ladder, scratch / "artifact", config.train, data_fingerprint(calls), len(calls)
        )
        version = registry.add(scratch / "artifact")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("challenger %s trained on %d requests", version, result.n_requests)
    return registry.load(version)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
