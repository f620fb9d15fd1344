#!/usr/bin/env bash
# Sets up tierwise, trains the default router on the bundled public data and serves it.
#
#   bash scripts/quickstart.sh            # serve on 127.0.0.1:50051 (metrics on :9464)
#   PORT=6000 bash scripts/quickstart.sh
#
# Re-running reuses the environment, the imported calls and cached embeddings.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${TIERWISE_VENV:-.venv}
PORT=${PORT:-50051}
MODEL=${MODEL:-models/default}
CALLS=build/calls

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[train,serve]'
tierwise() { HF_HUB_OFFLINE=1 "$VENV/bin/tierwise" "$@"; }

mkdir -p "$CALLS"
import_once() {  # format, source, output name
    [ -s "$CALLS/$3.jsonl" ] || tierwise import --format "$1" "$2" --out "$CALLS/$3.jsonl"
}
import_once mmlu-pro-wide data/mmlu_pro/graded_wide.csv.gz mmlu_pro
import_once llmrouter data/llmrouter/train.jsonl.gz llmrouter
import_once routellm data/routellm/binary_correctness.csv.gz routellm
import_once mt-bench data/routellm mt_bench

if [ ! -f "$MODEL/manifest.json" ]; then
    tierwise train \
        --calls "$CALLS/mmlu_pro.jsonl" --calls "$CALLS/llmrouter.jsonl" \
        --calls "$CALLS/routellm.jsonl" --calls "$CALLS/mt_bench.jsonl" \
        --tiers training/tiers/claude_prior.toml --out "$MODEL"
fi
exec "$VENV/bin/tierwise" serve --model "$MODEL" --port "$PORT"
