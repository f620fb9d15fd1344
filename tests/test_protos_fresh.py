"""The committed generated code matches ``protos/``: regenerate and compare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "serving" / "_proto"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "_proto"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    fresh, committed = _files(out), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "run: python scripts/gen_protos.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"stale generated files {stale}; run: python scripts/gen_protos.py"


def test_generated_code_imports_inside_the_serving_package() -> None:
    from serving._proto.tierwise.v1 import router_pb2, router_pb2_grpc

    assert router_pb2.DESCRIPTOR.package == "tierwise.v1"
    assert router_pb2.DESCRIPTOR.name == "tierwise/v1/router.proto"
    assert hasattr(router_pb2_grpc, "RouterStub")
