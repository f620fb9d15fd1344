"""The figures ``scripts/bench.py`` measures: targets, the table and the JSON.

Kept apart from the measuring so the report format can be tested without
starting servers or timing anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured figure; ``value`` None means not measured (``note`` says why)."""

    key: str
    name: str
    unit: str
    value: float | None = None
    target: float | None = None
    comparison: str | None = None  # "<=" or ">=": how value must compare with target
    reference: float | None = None
    reference_name: str | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool | None:
        if self.value is None or self.target is None or self.comparison is None:
            return None
        if self.comparison == "<=":
            return self.value <= self.target
        if self.comparison == ">=":
            return self.value >= self.target
        raise ValueError(f"unknown comparison {self.comparison!r}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def catalogue() -> dict[str, Figure]:
    """Every figure the benchmark reports, unmeasured, with its target."""
    figures = [
        Figure(
            "grpc_short_c1_p50", "gRPC short prompts, c=1, p50", "ms", target=3, comparison="<="
        ),
        Figure(
            "grpc_short_c1_p99", "gRPC short prompts, c=1, p99", "ms", target=8, comparison="<="
        ),
        Figure(
            "grpc_256_c1_p50", "gRPC 256-token prompts, c=1, p50", "ms", target=12, comparison="<="
        ),
        Figure("grpc_short_c32_rps", "gRPC short prompts, c=32, throughput", "req/s"),
        Figure(
            "grpc_c32_ratio", "c=32 throughput / in-process", "ratio", target=0.90, comparison=">="
        ),
        Figure("grpc_mixed_c32_rps", "gRPC mixed lengths, c=32, throughput", "req/s"),
        Figure(
            "grpc_mixed_c32_ratio",
            "c=32 mixed lengths throughput / in-process",
            "ratio",
            target=0.90,
            comparison=">=",
        ),
        Figure(
            "grpc_c32_cpu_ratio",
            "c=32 CPU per prompt, in-process / server",
            "ratio",
            target=0.90,
            comparison=">=",
        ),
        Figure("server_rss_loaded", "server RSS, model loaded", "MB", target=250, comparison="<="),
        Figure("server_rss_after", "server RSS, after the load", "MB", target=250, comparison="<="),
        Figure("server_rss_growth", "server RSS growth under load", "MB"),
        Figure(
            "server_rss_drift",
            "server RSS growth, first to last repeat",
            "MB",
            target=5,
            comparison="<=",
        ),
        Figure(
            "embed_rps", "training embedder, no cache", "prompts/s", target=150, comparison=">="
        ),
        Figure(
            "train_cold_s", "train default router, cold cache", "s", target=300, comparison="<="
        ),
        Figure("train_warm_s", "train default router, warm cache", "s"),
        Figure(
            "int8_cosine",
            "int8 embedder cosine vs fp32, min",
            "cosine",
            target=0.99,
            comparison=">=",
        ),
        Figure("int8_embed_rps", "int8 training embedder, no cache", "prompts/s"),
        Figure("int8_speedup", "int8 embedding speed-up over fp32", "x"),
        Figure(
            "int8_cost95_delta",
            "int8 router cost@95 minus fp32",
            "x top",
            target=0.01,
            comparison="<=",
            note="not measured: pass --int8-model (a router trained like --model, int8)",
        ),
    ]
    return {f.key: f for f in figures}


# ---------------------------------------------------------------- formatting


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    # Three significant digits, so that a cosine of 0.9956 is not shown as 1.00.
    return f"{value:#.3g}"


def format_table(figures: Sequence[Figure]) -> str:
    """figure | measured | target | reference | ok?, one line per figure, then notes."""
    rows = [("figure", "measured", "target", "reference", "ok?")]
    for f in figures:
        measured = "not measured" if f.value is None else f"{format_number(f.value)} {f.unit}"
        target = "-" if f.target is None else f"{f.comparison} {format_number(f.target)} {f.unit}"
        reference = "-" if f.reference is None else f"{format_number(f.reference)} {f.unit}"
        ok = {True: "yes", False: "NO", None: "-"}[f.ok]
        rows.append((f.name, measured, target, reference, ok))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    notes = [f"  {f.name}: {f.note}" for f in figures if f.note]
    refs = sorted({f"  {f.name}: {f.reference_name}" for f in figures if f.reference_name})
    if refs:
        lines += ["", "references:", *refs]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(line.rstrip() for line in lines)


def report_json(figures: Sequence[Figure], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "figures": {f.key: f.to_json() for f in figures}}


# ---------------------------------------------------------------- prompts
