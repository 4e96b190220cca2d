#!/usr/bin/env bash
# The main job: set up, build, then exercise the toolkit end to end on the bundled tiny checkpoints.
# Outputs go to ${DEMO_OUT:-out/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
CS=./build/circuitscope
OUT=${DEMO_OUT:-out/demo}
mkdir -p "$OUT"
M=tests/data/hf-tiny/qwen2-tiny

echo "== inspect: architecture, dims, dtypes, BLAS and threads"
$CS inspect $M

echo; echo "== run: logits and cached activations of two prompts (left-padded batch)"
$CS run $M --ids 5,17,300,42,7 --ids 9,8,7 --hooks 'blocks.*.hook_resid_post' --hooks 'blocks.*.attn.hook_pattern' \
    --out "$OUT/run.safetensors"
ls -l "$OUT/run.safetensors"

echo; echo "== generate: greedy, then sampled (seeded), then with head 1.2 ablated and head 0.1 scaled x1.3"
$CS generate $M --ids 5,17,300 --max-new-tokens 12
$CS generate $M --ids 5,17,300 --max-new-tokens 12 --temperature 0.8 --top-p 0.9 --seed 1
$CS generate $M --ids 5,17,300 --max-new-tokens 12 --ablate-head 1.2 --scale-head 0.1=1.3

echo; echo "== tokenize and chat-format with the real Qwen3 tokenizer and chat template"
TOK=tests/data/tokenizers/qwen3
$CS tokenize $TOK "Let's compute 17+25*3 step by step: 25*3=75."
$CS chat-format $TOK --system "You are a helpful assistant." --user "What is 17+25*3?" --think off --ids

echo; echo "== bench forward (small shape; see README for the full-size numbers)"
$CS bench forward --layers 4 --d-model 256 --heads 8 --kv-heads 2 --seq 128 --batch 2 --vocab 8000 --iters 3
echo; echo "demo outputs are in $OUT"
