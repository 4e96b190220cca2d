#!/usr/bin/env bash
# The toy lab as a replica of Thinking Sparks' three claims, over several seeds.
#
#   bash scripts/study_toy.sh                    # seeds 1-5, two seeds at a time, one thread each
#   STUDY_SEEDS="1 2 3 4 5 6 7 8" STUDY_JOBS=1 STUDY_THREADS=2 bash scripts/study_toy.sh
#   bash scripts/study_toy.sh --seed 3           # one seed only, with an existing build (what a SLURM array task runs)
#   bash scripts/study_toy.sh --summary          # only the table, from the seeds already done
#
# For each seed, in ${STUDY_OUT:-out/study}/seed-S/:
#   1. train base (600 steps), SFT (800 steps, a checkpoint every 100) and GRPO from the SFT model
#      (the toy defaults, 8 checkpoints);
#   2. greedy held-out accuracy of the three final models on STUDY_EVAL_N problems;
#   3. two checkpoint sweeps against the base (SFT and GRPO series): each checkpoint's own opening
#      after <think> against the base's, EAP-IG-inputs m = 5, top 5000 edges then |score| >= 0.02;
#   4. eval: the final SFT and GRPO models with their 4 most important emergent heads zeroed, against
#      5 random head sets of the same size and layers, on held-out problems the pairs did not use.
# Then scripts/study_summary.py writes study.json and study.md (the table and a verdict per claim).
# Every step resumes: training from its last checkpoint, sweeps skip finished units, and finished
# evaluations are kept. Each seed's training is deterministic for its seed and thread count.
# As a SLURM array (not run on SLURM here): build once, then
#   sbatch --array=1-5 --cpus-per-task=2 --export=ALL,STUDY_THREADS=2 --wrap 'bash scripts/study_toy.sh --seed $SLURM_ARRAY_TASK_ID'
# and, when the array is done, `bash scripts/study_toy.sh --summary`.
set -euo pipefail
cd "$(dirname "$0")/.."
# CS_PORTABLE_KERNELS=1: the same OpenBLAS and ATen kernels on every x86-64 CPU with AVX2 (README, Toy lab).
if [[ ${CS_PORTABLE_KERNELS:-0} == 1 ]]; then export OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2; fi
ROOT=$(pwd)
OUT=${STUDY_OUT:-out/study}
SEEDS=${STUDY_SEEDS:-1 2 3 4 5}
JOBS=${STUDY_JOBS:-2}
THREADS=${STUDY_THREADS:-1}
EVAL_N=${STUDY_EVAL_N:-200}  # as scripts/demo.sh, so the demo's figures are one seed of the study
PAIRS=${STUDY_PAIRS:-48}
mode=all seed_arg=
case "${1:-}" in
  --seed) mode=one seed_arg=${2:?--seed needs a number} ;;
  --summary) mode=summary ;;
  --one-internal) mode=internal seed_arg=$2 ;;
  "") ;;
  *) echo "usage: study_toy.sh [--seed S | --summary]" >&2; exit 2 ;;
esac

run_seed() {  # run_seed SEED: everything for one seed; logs to seed-S/study.log
  local seed=$1 d="$OUT/seed-$1"
  local CS="$ROOT/build/circuitscope --threads $THREADS"
  mkdir -p "$d"
  local t0=$(date +%s)
  say() { printf '[seed %s %4ds] %s\n' "$seed" $(( $(date +%s) - t0 )) "$*"; }
  say "train base, SFT, GRPO"
  $CS toy train --stage base --out "$d/toy/base" --seed "$seed" --no-progress
  $CS toy train --stage sft --init "$d/toy/base/final" --out "$d/toy/sft" --seed "$seed" --no-progress
  $CS toy train --stage grpo --init "$d/toy/sft/final" --out "$d/toy/grpo" --seed "$seed" --no-progress

  say "held-out accuracy (greedy, $EVAL_N problems)"
  for s in base sft grpo; do
    [[ -s "$d/eval_$s.json" ]] || { $CS toy eval "$d/toy/$s/final" --n "$EVAL_N" --json > "$d/eval_$s.json.tmp" && mv "$d/eval_$s.json.tmp" "$d/eval_$s.json"; }
  done

  # The same held-out problems for every seed (the split is by hash, the list by --seed of toy problems).
  $CS toy problems "$d/toy/base/final" --n $(( PAIRS + 200 )) --out "$d/problems_all.jsonl" 2>/dev/null
  head -n "$PAIRS" "$d/problems_all.jsonl" > "$d/problems.jsonl"
  tail -n +$(( PAIRS + 1 )) "$d/problems_all.jsonl" > "$d/bench.jsonl"

  local post log
  for post in sft grpo; do
    log=$([[ $post == sft ]] && echo "toy/sft/train_log.jsonl" || echo "toy/grpo/rewards.jsonl")
    cat > "$d/sweep_$post.json" <<EOF
// Study sweep: the $post checkpoints of seed $seed against its base (written by scripts/study_toy.sh).
{
  "base": "toy/base/final",
  "checkpoints": "toy/$post/checkpoint-*",
  "data": {"prompts": "problems.jsonl", "generation": {"think": "on"}},
  "chunk_size": $PAIRS,
  "attribute": {"chat": true, "think": "on", "metric": "seq-logprob", "method": "eap-ig-inputs", "ig_steps": 5,
                "top_n": 5000, "simplify": 0.02},
  "log": "$log"
}
EOF
    say "sweep: $post checkpoints against the base"
    $CS sweep run "$d/sweep_$post.json" --out "$d/sweep_$post" 2> "$d/sweep_$post.log"
    $CS sweep merge "$d/sweep_$post" >> "$d/sweep_$post.log" 2>&1
    local last
    last=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['steps'][-1]['report'])" "$d/sweep_$post/summary.json")
    $CS compare "$d/sweep_$post/reports/base.json" "$last" --out "$d/compare_$post.json" > "$d/compare_$post.txt" 2>/dev/null
    say "eval: $post final, 4 most important emergent heads zeroed vs 5 random sets"
    if [[ ! -s "$d/interventions_$post/summary.json" ]]; then
      rm -rf "$d/interventions_$post"
      $CS eval "$d/toy/$post/final" --benchmark "$d/bench.jsonl" --prompt-template '{problem}=' --chat --think on \
        --heads-from "$d/compare_$post.json" --set emergent --max-heads 4 --mode zero --random-control 5 --control-seed "$seed" \
        --samples 4 --temperature 0.6 --seed "$seed" --max-new-tokens 48 --batch-size 32 \
        --out "$d/interventions_$post" > "$d/interventions_$post.txt" 2> "$d/interventions_$post.log"
    fi
  done
  say "done"
}

if [[ $mode == internal ]]; then
  # Not `run_seed || ...`: bash ignores set -e inside a function called on the left of ||.
  set +e
  (set -e; run_seed "$seed_arg") >> "$OUT/seed-$seed_arg/study.log" 2>&1
  rc=$?
  set -e
  if (( rc != 0 )); then echo "seed $seed_arg failed (exit $rc): see $OUT/seed-$seed_arg/study.log" >&2; tail -n 5 "$OUT/seed-$seed_arg/study.log" >&2; exit 1; fi
  tail -n 1 "$OUT/seed-$seed_arg/study.log"
  exit 0
fi

if [[ $mode != summary ]]; then
  if [[ $mode == one ]]; then
    # Array tasks share one build: building here would race between tasks.
    [[ -x build/circuitscope ]] || { echo "study_toy.sh --seed: build/circuitscope is missing; run scripts/build.sh first" >&2; exit 2; }
    SEEDS=$seed_arg
  else
    BUILD_TARGET=circuitscope bash scripts/build.sh
  fi
  start=$(date +%s)
  for s in $SEEDS; do mkdir -p "$OUT/seed-$s"; done
  echo "seeds: $SEEDS; $JOBS at a time, $THREADS thread(s) each; logs in $OUT/seed-S/study.log"
  printf '%s\n' $SEEDS | xargs -P "$JOBS" -I{} bash "$0" --one-internal {}
  echo "seeds done in $(( $(date +%s) - start )) s"
fi
python3 scripts/study_summary.py "$OUT" --out "$OUT/study.json" --markdown "$OUT/study.md"
cat "$OUT/study.md"
