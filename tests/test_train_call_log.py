"""Training on a production-style call log: one graded tier per request, messages, times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router_model import Router
from router_model.calls import read_calls
from router_model.router import DecisionRequest
from router_model.text import RequestText
from tierwise.cli import main

N_REQUESTS = 150


def _call_log(mmlu_calls: Path, out: Path) -> Path:
    """Real prompts and grades, reshaped like a router's own log: each request was
    answered (and graded) by one tier only, as messages with a system prompt, and
    the log spans several days."""
    by_request: dict[str, list[dict[str, object]]] = {}
    for call in read_calls(mmlu_calls):
        by_request.setdefault(call.request_id, []).append(call.to_json())
    start = datetime(2025, 5, 1, tzinfo=UTC)
    lines = []
    for i, calls in enumerate(list(by_request.values())[:N_REQUESTS]):
        answered = dict(calls[i % len(calls)])
        prompt = answered.pop("prompt")
        answered.pop("output_tokens", None)
        answered["system"] = "You are a careful tutor."
        answered["messages"] = [{"role": "user", "content": prompt}]
        answered["timestamp"] = (start + timedelta(hours=i)).isoformat()
        lines.append(json.dumps(answered))
    out.write_text("\n".join(lines) + "\n")
    return out


def test_train_and_predict_from_a_partially_graded_log(
    mmlu_calls: Path, mmlu_tiers: Path, tmp_path: Path
) -> None:
    log = _call_log(mmlu_calls, tmp_path / "log.jsonl")
    out = tmp_path / "router"
    code = main(
        [
            "train",
            "--calls",
            str(log),
            "--tiers",
            str(mmlu_tiers),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["policy"]["fitted_on"] == "predicted P(success)"
    assert "skipped" in manifest["metrics"]  # nothing is graded on every tier
    # the newest 20% of requests (by time) were held out, not a hash sample
    assert manifest["training_data"]["requests_held_out"] == 30
    router = Router.load(out)
    text = RequestText(text="You are a careful tutor.\n\nWhat is 2 + 2?", turns=1, has_system=True)
    (decision,) = router.decide([DecisionRequest(text=text)])
    assert decision.tier in ("small", "medium", "large")
    assert sum(decision.p_success.values()) > 0
