#!/usr/bin/env bash
# Sets up the development environment (first run only) and runs every check CI runs:
# lint, format, types, then the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${TIERWISE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# torch is pinned to the CPU build in pyproject.toml; an unpinned torch pulls CUDA.
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[train,serve,anthropic,dev]'

"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
