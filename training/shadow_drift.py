"""How traffic moved between a reference window and the report window.

A router is trained on one mix of requests and serves another; these numbers
say how far apart they have drifted, cheapest first: length and code share
(from the shadow records themselves, which never hold the text), the tiers
each router picks, the embedding centroids (only with an artifact, and only
over requests whose text the store kept), and calibration: a tier whose
realised success rate on graded calls strays from the router's mean
predicted P(success) for the same requests is a router that needs retraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from serving.shadow.records import InputStats
from serving.shadow.report import JoinedRequest, Window

EMBED_SAMPLE = 1000  # texts embedded per window: enough for a stable centroid


def drift_report(
    window: Window, reference: Window, threshold: float, model_dir: Path | None, seed: int = 0
) -> dict[str, Any]:
    now, before = window.shadowed(), reference.shadowed()
    now_stats = [s for s in map(_stats, now) if s is not None]
    before_stats = [s for s in map(_stats, before) if s is not None]
    routers = sorted(set(window.routers) | set(reference.routers))
    return {
        "length_chars": _shift([s.chars for s in before_stats], [s.chars for s in now_stats]),
        "code_share": _shift(
            [float(s.has_code) for s in before_stats], [float(s.has_code) for s in now_stats]
        ),
        "tier_mix": {label: _mix_shift(before, now, label) for label in routers},
        "embedding": (_embedding(before, now, model_dir, seed) if model_dir is not None else None),
        "calibration": calibration_check(now, window.routers, threshold),
    }


def calibration_check(
    requests: list[JoinedRequest], routers: list[str], threshold: float
) -> dict[str, Any]:
    """Per router and tier: mean predicted P(success) vs mean grade, on the same requests."""
    out: dict[str, Any] = {"threshold": threshold, "flagged": [], "routers": {}}
    for label in routers:
        pairs: dict[str, list[tuple[float, float]]] = {}
        for request in requests:
            decision = request.decisions.get(label)
            if decision is None:
                continue
            for tier, p in decision.p_success.items():
                grade = request.graded(tier)
                if grade is not None:
                    pairs.setdefault(tier, []).append((p, grade))
        tiers: dict[str, Any] = {}
        for tier in sorted(pairs):
            predicted = float(np.mean([p for p, _ in pairs[tier]]))
            realised = float(np.mean([g for _, g in pairs[tier]]))
            flagged = abs(realised - predicted) > threshold
            tiers[tier] = {
                "predicted_p_success": predicted,
                "realised_success": realised,
                "gap": realised - predicted,
                "n": len(pairs[tier]),
                "flagged": flagged,
            }
            if flagged:
                out["flagged"].append({"router": label, "tier": tier, "n": len(pairs[tier])})
        out["routers"][label] = tiers
    return out


def _stats(request: JoinedRequest) -> InputStats | None:
    for decision in request.decisions.values():
        if decision.input is not None:
            return decision.input
    for call in request.answered:
        text = call.request_text()
        if text.text:
            return InputStats.of(text)
    return None


def _shift(before: list[float] | list[int], now: list[float] | list[int]) -> dict[str, Any]:
    ref = float(np.mean(before)) if before else None
    cur = float(np.mean(now)) if now else None
    shift = cur - ref if cur is not None and ref is not None else None
    relative = shift / ref if shift is not None and ref else None
    return {
        "reference": ref,
        "window": cur,
        "shift": shift,
        "relative_shift": relative,
        "reference_n": len(before),
        "window_n": len(now),
    }


def _mix(requests: list[JoinedRequest], label: str) -> dict[str, float]:
    tiers = [r.decisions[label].tier for r in requests if label in r.decisions]
    return {t: tiers.count(t) / len(tiers) for t in sorted(set(tiers))} if tiers else {}


def _mix_shift(before: list[JoinedRequest], now: list[JoinedRequest], label: str) -> Any:
    ref, cur = _mix(before, label), _mix(now, label)
    distance = (
        0.5 * sum(abs(cur.get(t, 0.0) - ref.get(t, 0.0)) for t in set(ref) | set(cur))
        if ref and cur
        else None
    )
    return {"reference": ref, "window": cur, "total_variation": distance}


def _embedding(
    before: list[JoinedRequest], now: list[JoinedRequest], model_dir: Path, seed: int
) -> dict[str, Any]:
    """Centroid distance of the two windows' texts, embedded as the router embeds them."""
    from router_model.artifact import read_manifest
    from training.embedder import Embedder, embedder_files

    rng = np.random.default_rng(seed)
    texts = [_sample([r.text for r in reqs if r.text], rng) for reqs in (before, now)]
    out: dict[str, Any] = {"reference_n": len(texts[0]), "window_n": len(texts[1])}
    if not texts[0] or not texts[1]:
        return {**out, "centroid_distance": None, "centroid_cosine_distance": None}
    embedder = Embedder(embedder_files(), read_manifest(model_dir).truncation)
    ref, cur = (embedder.embed(t, progress=False).mean(axis=0) for t in texts)
    cosine = float(ref @ cur / (np.linalg.norm(ref) * np.linalg.norm(cur) or 1.0))
    return {
        **out,
        "centroid_distance": float(np.linalg.norm(cur - ref)),
        "centroid_cosine_distance": 1.0 - cosine,
    }


def _sample(texts: list[str | None], rng: np.random.Generator) -> list[str]:
    kept = [t for t in texts if t]
    if len(kept) <= EMBED_SAMPLE:
        return kept
    picked = rng.choice(len(kept), EMBED_SAMPLE, replace=False)
    return [kept[i] for i in sorted(picked)]
