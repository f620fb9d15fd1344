#!/usr/bin/env bash
# Reproduces one data set's routing-quality report from the bundled data:
# import -> request-level split -> train on the kept part -> evaluate on the
# held-out part (every baseline, the kNN router fitted on the same training
# calls, calibration and the quality guarantee's coverage).
#
#   bash scripts/quality_report.sh mmlu_pro      # or llmrouter, routellm
#   VENV=/path/to/venv bash scripts/quality_report.sh routellm
#
# Writes build/split/SET/{train,test}.jsonl, models/SET and build/reports/SET
# (metrics.json and plots). Imports, splits and trained routers are reused
# when present; delete them to start over.
set -euo pipefail
cd "$(dirname "$0")/.."

SET=${1:?usage: quality_report.sh mmlu_pro|llmrouter|routellm}
VENV=${VENV:-.venv}
case "$SET" in
    mmlu_pro) FORMAT=mmlu-pro-wide; SRC=data/mmlu_pro/graded_wide.csv.gz ;;
    llmrouter) FORMAT=llmrouter; SRC=data/llmrouter/train.jsonl.gz ;;
    routellm) FORMAT=routellm; SRC=data/routellm/binary_correctness.csv.gz ;;
    *) echo "unknown data set '$SET': choose mmlu_pro, llmrouter or routellm" >&2; exit 2 ;;
esac
tierwise() { HF_HUB_OFFLINE=1 "$VENV/bin/tierwise" "$@"; }

CALLS=build/calls/$SET.jsonl
SPLIT=build/split/$SET
MODEL=models/$SET
REPORT=build/reports/$SET
mkdir -p build/calls "$SPLIT"

[ -s "$CALLS" ] || tierwise import --format "$FORMAT" "$SRC" --out "$CALLS"
[ -s "$SPLIT/test.jsonl" ] || tierwise split --calls "$CALLS" --seed 0 \
    --out-train "$SPLIT/train.jsonl" --out-test "$SPLIT/test.jsonl"
[ -f "$MODEL/manifest.json" ] || tierwise train --calls "$SPLIT/train.jsonl" \
    --tiers "training/tiers/$SET.toml" --out "$MODEL"
tierwise evaluate --model "$MODEL" --calls "$SPLIT/test.jsonl" \
    --train-calls "$SPLIT/train.jsonl" --report "$REPORT"
