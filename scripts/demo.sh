#!/usr/bin/env bash
# The main job: the emergent-heads study in miniature, on the CPU.
#  1. set up and build;
#  2. train a tiny Qwen2 base model (answers directly), then post-train it with SFT on <think> traces
#     and with GRPO (or reuse the checkpoints: a rerun resumes, and a finished run returns at once);
#  3. measure held-out accuracy of each;
#  4. build clean/corrupted pairs the Thinking Sparks way (each model's own opening after <think>);
#  5. run EAP-IG on the base and the post-trained checkpoints and select circuits;
#  6. compare the circuits: which heads emerged, which were kept, which were lost.
# Everything is left in ${DEMO_OUT:-out/demo}: checkpoints in toy/, datasets in data/, reports in
# reports/ (attribute reports, compare JSON, Graphviz DOT of each circuit).
set -euo pipefail
cd "$(dirname "$0")/.."
# CS_PORTABLE_KERNELS=1: the same OpenBLAS and ATen kernels on every x86-64 CPU with AVX2 (README, Toy lab).
if [[ ${CS_PORTABLE_KERNELS:-0} == 1 ]]; then export OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2; fi
start=$(date +%s)
step() { printf '\n== [%4ds] %s\n' $(( $(date +%s) - start )) "$*"; }

step "set up and build (the command only; scripts/test.sh builds the tests)"
BUILD_TARGET=circuitscope bash scripts/build.sh
# Two threads: 1.5x faster than one on an idle 2-core machine. A fixed count, not the number of
# cores: training is promised to be deterministic for a given seed and thread count (one and two
# threads gave byte-identical checkpoints here, which other counts or machines need not). On a busy
# machine use DEMO_THREADS=1: OpenMP threads that compete with other processes slow down badly
# (README, Toy lab).
CS="./build/circuitscope --threads ${DEMO_THREADS:-2}"
OUT=${DEMO_OUT:-out/demo}
TOY=$OUT/toy DATA=$OUT/data REP=$OUT/reports
mkdir -p "$TOY" "$DATA" "$REP"
SEED=${DEMO_SEED:-1}

step "train the base checkpoint (answers directly, think off)"
$CS toy train --stage base --out "$TOY/base" --seed "$SEED"
step "post-train with SFT on <think> traces (from base)"
$CS toy train --stage sft --init "$TOY/base/final" --out "$TOY/sft" --seed "$SEED"
step "post-train with GRPO (from SFT; KL to the SFT model)"
$CS toy train --stage grpo --init "$TOY/sft/final" --out "$TOY/grpo" --seed "$SEED"

step "held-out accuracy (greedy; base with think off, SFT and GRPO with think on)"
for s in base sft grpo; do
  $CS toy eval "$TOY/$s/final" --n 200 --show 2 | tee "$REP/eval_$s.txt"
  echo
done

step "pairs: each model's own opening after <think> on held-out problems"
$CS toy problems "$TOY/base/final" --n ${DEMO_PAIRS:-48} --out "$DATA/problems.jsonl"
# clean = the post-trained model's opening, corrupted = the base model's (for the post-trained circuit);
# --reverse: clean = the base model's opening (for the base model's circuit).
for post in sft grpo; do
  $CS pairs "$TOY/$post/final" "$TOY/base/final" --prompts "$DATA/problems.jsonl" --out "$DATA/${post}_vs_base.jsonl"
  $CS pairs "$TOY/$post/final" "$TOY/base/final" --prompts "$DATA/problems.jsonl" --out "$DATA/base_vs_${post}.jsonl" --reverse
done
head -c 600 "$DATA/sft_vs_base.jsonl"; echo

# EAP-IG-inputs, 5 steps, on the mean log-prob of each model's own opening (teacher-forced after the
# chat template with think on); circuit = top edges then |score| >= tau, pruned to input->logits paths.
ATTR="--chat --think on --metric seq-logprob --method eap-ig-inputs --ig-steps 5 --top-n ${DEMO_TOP_N:-5000} --simplify ${DEMO_TAU:-0.02}"
for post in sft grpo; do
  step "EAP-IG: base circuit (pairs base_vs_$post) and $post circuit (pairs ${post}_vs_base)"
  $CS attribute "$TOY/base/final" --data "$DATA/base_vs_${post}.jsonl" $ATTR --out "$REP/base_for_${post}.json"
  $CS attribute "$TOY/$post/final" --data "$DATA/${post}_vs_base.jsonl" $ATTR --out "$REP/${post}.json"
  $CS graph "$REP/${post}.json" --out "$REP/${post}.dot"
  step "compare: heads of the $post circuit against the base circuit"
  $CS compare "$REP/base_for_${post}.json" "$REP/${post}.json" --out "$REP/compare_${post}.json" | tee "$REP/compare_${post}.txt"
done

step "the report page: the SFT comparison and circuit, the GRPO comparison (circuitscope report)"
$CS report "$REP/compare_sft.json" "$REP/sft.json" "$REP/compare_grpo.json" --out "$REP/report.html" --title "circuitscope demo"

step "summary"
for s in base sft grpo; do
  printf '%-5s held-out accuracy: %s\n' "$s" "$(grep '^accuracy' "$REP/eval_$s.txt" | sed 's/^accuracy *//')"
done
for post in sft grpo; do
  printf '%-5s vs base: %s\n' "$post" "$(grep -m1 '^emergent' "$REP/compare_${post}.txt")"
done
for post in sft grpo; do
  printf '%-5s circuit: %s\n' "$post" "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print("{} edges, faithfulness {:.3f}".format(r["circuit"]["edges"], r["faithfulness"]["normalized"]))' "$REP/${post}.json")"
done
echo "(what to expect: the ranges over seeds in the README's demo section; one seed's figures vary by machine)"
echo "outputs: $OUT (toy/ checkpoints, data/ pairs, reports/ attribute + compare JSON, DOT graphs)"
echo "report page: $REP/report.html (one file: open it in a browser)"
echo "total $(( $(date +%s) - start )) s"
