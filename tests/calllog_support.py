"""Helpers for the call-log tests: a call factory, and a writer process to kill.

Run as a script (``python tests/calllog_support.py URL``) it writes calls
through a ``CallLogWriter`` forever, printing ``acked N`` after every
successful ``flush()``; the crash test SIGKILLs it mid-stream and checks that
all N acknowledged calls are in the store.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from router_model.calls import GradedCall
from router_model.text import Message

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_call(i: int, **overrides: Any) -> GradedCall:
    """Call ``i``: request ``r<i>``, one second after the previous one, with a prompt."""
    fields: dict[str, Any] = {
        "request_id": f"r{i:07d}",
        "timestamp": T0 + timedelta(seconds=i),
        "model": "claude-haiku-4-5",
        "prompt": f"What is {i} + {i}?",
    }
    fields.update(overrides)
    return GradedCall(**fields)


def rich_calls() -> list[GradedCall]:
    """Every shape of record: prompt, messages with a system prompt, tags, extras, grades."""
    return [
        make_call(
            0,
            tier="haiku",
            input_tokens=12,
            output_tokens=3,
            cost_usd=2.7e-5,
            latency_ms=412.5,
            tags={"endpoint": "support-bot", "region": "eu"},
            extra={"answer": "0", "trace": {"attempt": 1, "ok": True}},
        ),
        make_call(
            1,
            prompt=None,
            messages=(
                Message("user", "Hi"),
                Message("assistant", "Hello! How can I help?"),
                Message("user", "Summarise the French revolution in one line."),
            ),
            system="You are a historian.",
            model="claude-sonnet-4-5",
            grade=0.75,
            grader="judge:claude-opus-4-1",
        ),
        make_call(2, prompt="Ünïcödé ✓ 日本語", grade=1.0, grader="exact_match", extra={"n": None}),
    ]


def _write_until_killed(url: str) -> None:
    from serving.calllog import CallLogWriter, open_store

    writer = CallLogWriter(open_store(url), batch_size=64, flush_interval_s=0.005)
    i = 0
    while True:
        writer.submit(make_call(i))
        i += 1
        if i % 50 == 0 and writer.flush(timeout=30):
            print(f"acked {writer.written}", flush=True)


if __name__ == "__main__":
    _write_until_killed(sys.argv[1])
