"""``tierwise predict`` in an environment with only the serve extra installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

FORBIDDEN = ("torch", "sklearn", "sentence_transformers", "lightgbm", "onnx", "joblib")


def test_serve_only_environment_lacks_training_packages(serve_only_python: Path) -> None:
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run(
        [str(serve_only_python), "-c", probe, *FORBIDDEN],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert found == "[]"


def test_predict_runs_without_training_dependencies(
    serve_only_python: Path, logreg_router_dir: Path, tmp_path: Path
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        json.dumps({"request_id": "a", "prompt": "What is the derivative of x**3?"})
        + "\n"
        + json.dumps({"request_id": "b", "prompt": "Name a colour."})
        + "\n"
    )
    out = tmp_path / "decisions.jsonl"
    tierwise = serve_only_python.parent / "tierwise"
    result = subprocess.run(
        [
            str(tierwise),
            "predict",
            "--model",
            str(logreg_router_dir),
            "--input",
            str(requests),
            "--output",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["request_id"] for d in decisions] == ["a", "b"]
    assert all(d["tier"] in ("small", "medium", "large") for d in decisions)


def test_training_commands_explain_the_missing_extra(
    serve_only_python: Path, tmp_path: Path
) -> None:
    tierwise = serve_only_python.parent / "tierwise"
    calls = tmp_path / "c.jsonl"
    calls.write_text("{}\n")
    result = subprocess.run(
        [str(tierwise), "train", "--calls", str(calls), "--tiers", "t.toml", "--out", "m"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert "pip install 'tierwise[train]'" in result.stderr


def test_the_serving_path_never_loads_pickles() -> None:
    """pipeline.joblib is for inspection; unpickling runs code, so serving must not."""
    import ast

    repo = Path(__file__).resolve().parent.parent
    for package in ("router_model", "serving"):
        for path in (repo / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    root = name.split(".")[0]
                    assert root not in {"pickle", "joblib", "cloudpickle", "dill"}, (
                        f"{path.relative_to(repo)} imports {name}"
                    )
