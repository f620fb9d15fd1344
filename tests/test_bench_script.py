"""scripts/bench.py without servers or timing: argument parsing, the table and the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from script_support import SCRIPTS, load_script

SCRIPT = SCRIPTS / "bench.py"


bench = load_script("bench")


def test_help_explains_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    )
    for word in ("--model", "--repeats", "--out", "--embed-prompts", "--train", "int8", "VmRSS"):
        assert word in done.stdout


def test_parse_args_defaults_and_errors(tmp_path: Path) -> None:
    args = bench.parse_args(["--model", str(tmp_path)])
    assert args.repeats == 3
    assert args.embed_prompts == 512
    assert args.train is False
    assert args.out.name == "bench.json"
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", str(tmp_path / "missing")])
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", str(tmp_path), "--repeats", "0"])


def test_ok_follows_the_comparison() -> None:
    figs = bench.catalogue()
    figs["grpc_short_c1_p50"].value = 2.5
    figs["grpc_short_c1_p99"].value = 9.0
    figs["grpc_c32_ratio"].value = 0.95
    figs["embed_rps"].value = 120.0
    assert figs["grpc_short_c1_p50"].ok is True
    assert figs["grpc_short_c1_p99"].ok is False
    assert figs["grpc_c32_ratio"].ok is True
    assert figs["embed_rps"].ok is False
    assert figs["grpc_short_c32_rps"].ok is None  # no target
    assert figs["int8_cosine"].ok is None  # not measured


def test_table_and_json_hold_every_figure() -> None:
    figs = bench.catalogue()
    figs["grpc_short_c1_p50"].value = 13.4
    figs["grpc_short_c1_p50"].reference = 9.1
    figs["server_rss_loaded"].value = 190.0
    ordered = list(figs.values())
    table = bench.format_table(ordered)
    lines = table.splitlines()
    assert lines[0].split(" | ")[0].strip() == "figure"
    row = next(line for line in lines if line.startswith("gRPC short prompts, c=1, p50"))
    cells = [c.strip() for c in row.split(" | ")]
    assert cells == ["gRPC short prompts, c=1, p50", "13.4 ms", "<= 3.00 ms", "9.10 ms", "NO"]
    rss = next(line for line in lines if line.startswith("server RSS, model loaded"))
    assert rss.rstrip().endswith("yes")
    assert "not measured" in next(line for line in lines if line.startswith("int8 embedder"))

    report = json.loads(json.dumps(bench.report_json(ordered, {"repeats": 1})))
    assert report["repeats"] == 1
    assert set(report["figures"]) == set(figs)
    p50 = report["figures"]["grpc_short_c1_p50"]
    assert p50["value"] == 13.4
    assert p50["unit"] == "ms"
    assert p50["target"] == 3
    assert p50["comparison"] == "<="
    assert p50["reference"] == 9.1
    assert p50["ok"] is False
    assert report["figures"]["int8_cosine"]["value"] is None

    # Near 1, three significant digits: a cosine of 0.9956 is not shown as 1.00.
    figs["int8_cosine"].value = 0.99564
    cosine = next(line for line in bench.format_table(ordered).splitlines() if "cosine" in line)
    assert [c.strip() for c in cosine.split(" | ")][1:3] == ["0.996 cosine", ">= 0.990 cosine"]


def test_machine_names_the_cpu_and_the_kernels_it_offers() -> None:
    measured_on = bench.machine()
    assert measured_on["cpus"] == os.cpu_count()
    flags = Path("/proc/cpuinfo").read_text().split()
    assert set(measured_on["kernel_flags"]) == {f for f in bench._KERNEL_FLAGS if f in flags}
    assert measured_on["cpu_model"] != "unknown"
    assert measured_on["onnxruntime"].count(".") >= 1
