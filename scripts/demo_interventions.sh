#!/usr/bin/env bash
# The second half of the study in miniature: ablate the SFT model's most important emergent heads (the
# first DEMO_EVAL_HEADS=4 of the demo's `compare`) on held-out toy problems, against 5 random head sets of the same size from the same
# layers and the unablated baseline; print accuracy, pass@k and the paired differences.
# Reuses ${DEMO_OUT:-out/demo} from scripts/demo.sh, and runs that first when its comparison is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== [%4ds] %s\n' $(( $(date +%s) - start )) "$*"; }

OUT=${DEMO_OUT:-out/demo}
TOY=$OUT/toy DATA=$OUT/data REP=$OUT/reports
if [[ ! -f "$REP/compare_sft.json" || ! -f "$TOY/sft/final/model.safetensors" ]]; then
  step "no demo checkpoints and comparison in $OUT: running scripts/demo.sh first"
  bash scripts/demo.sh
fi
step "build (the command only)"
BUILD_TARGET=circuitscope bash scripts/build.sh
CS="./build/circuitscope --threads ${DEMO_THREADS:-2}"
N=${DEMO_EVAL_N:-200}
PAIRS=${DEMO_PAIRS:-48}

step "benchmark: $N held-out problems that the pairs did not use"
# toy problems lists the same problems first for the same seed, so skipping the pairs' $PAIRS leaves
# problems the attribution never saw.
$CS toy problems "$TOY/base/final" --n $(( PAIRS + N )) --out "$DATA/eval_all.jsonl"
tail -n +$(( PAIRS + 1 )) "$DATA/eval_all.jsonl" > "$DATA/eval_bench.jsonl"
echo "$(wc -l < "$DATA/eval_bench.jsonl") problems in $DATA/eval_bench.jsonl"

step "eval: baseline, the emergent heads zeroed, 5 random head sets (same layers and sizes) zeroed"
# The toy user message is the expression and "="; think on, as the SFT model was trained.
$CS eval "$TOY/sft/final" --benchmark "$DATA/eval_bench.jsonl" --prompt-template '{problem}=' --chat --think on \
  --heads-from "$REP/compare_sft.json" --set emergent --max-heads ${DEMO_EVAL_HEADS:-4} --mode zero --random-control 5 --control-seed 1 \
  --samples ${DEMO_EVAL_SAMPLES:-4} --temperature 0.6 --seed 1 --max-new-tokens 48 --batch-size 32 \
  --out "$REP/interventions" | tee "$REP/interventions.txt"

echo
echo "samples: $REP/interventions/samples.jsonl; summary: $REP/interventions/summary.json"
echo "total $(( $(date +%s) - start )) s"
