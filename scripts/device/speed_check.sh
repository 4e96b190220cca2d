#!/usr/bin/env bash
# The GPU speed and memory check of issue #21, as one prepared run on a lent GPU machine (the
# `device` tool), or on any Linux x86-64 machine with a CUDA PyTorch, nvcc, CMake, ninja and g++.
#
#   here:   bash scripts/device/bundle_debs.sh
#   there:  bash scripts/device/speed_check.sh [PART...]     (carry ".devdebs"; results go to $OUT)
#
# Parts (default: side bench memory), logged to $OUT/speed_check.log, one summary line each in
# $OUT/speed.txt:
#   side    side by side, one process each, on the same folder (written by `bench checkpoint`) and
#           the same token pairs: `circuitscope attribute` against scripts/eap_ig_torch.py, EAP-IG(5),
#           batch 8: the 100M Qwen2 shape (12 x 768) with 64 pairs x 64 tokens in f32 and bf16, the
#           Qwen2.5-1.5B shape with 16 pairs x 256 tokens in bf16; f32 scores compared (Pearson).
#   bench   `bench attribute` at the issue's three shapes (bf16; 12 x 768 also f32), with a chrome
#           trace of the 1.5B shape summarized by scripts/profile_summary.py.
#   memory  the Llama-3-8B shape at 256 tokens: EAP-IG(5)'s peak memory at batch 1, 2, 4 and 8.
#   e2e     an 8B-shaped bf16 folder (about 15 GiB, `bench checkpoint`), `attribute -v` on 64 pairs of
#           256 tokens: load time, time per example, peak memory.
# CS_CHECK_DEVICE=cpu CS_SPEED_TOY=1 [CS_BIN=build/circuitscope] runs every part at toy sizes on the CPU
# (a dry run of the script; python3 must import torch).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cs-speed-check}
WORK=${CS_SPEED_WORK:-/tmp/cs-speed-work}  # model folders (the 8B one is 15 GiB): not under $OUT
TOY=${CS_SPEED_TOY:-0}
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(side bench memory)
CHECK_NAME=speed_check
DEVICE_BUILD_TARGET=circuitscope
# shellcheck source=scripts/device/device_common.sh
source scripts/device/device_common.sh
mkdir -p "$WORK"
SUMMARY="$OUT/speed.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY" "$LOG"; }

# Shapes: name, then `bench checkpoint`/`bench attribute` shape options.
if [ "$TOY" = "1" ]; then
  SMALL="--layers 2 --d-model 64 --heads 4 --kv-heads 2 --vocab 500"
  MID="--layers 2 --d-model 96 --heads 6 --kv-heads 2 --vocab 700"
  BIG="--arch llama --layers 2 --d-model 128 --heads 8 --kv-heads 2 --d-mlp 256 --vocab 900"
  N_SMALL=8 T_SMALL=16 N_MID=4 T_MID=32 N_BIG=8 T_BIG=32
else
  SMALL="--layers 12 --d-model 768 --heads 12 --kv-heads 4 --vocab 32000"
  MID="--layers 28 --d-model 1536 --heads 12 --kv-heads 2 --d-mlp 8960 --vocab 151936"
  BIG="--arch llama --layers 32 --d-model 4096 --heads 32 --kv-heads 8 --d-mlp 14336 --vocab 128256"
  N_SMALL=64 T_SMALL=64 N_MID=16 T_MID=256 N_BIG=64 T_BIG=256
fi
vocab_of() { sed -E 's/.*--vocab ([0-9]+).*/\1/' <<<"$1"; }

# pairs FILE N T VOCAB: N token pairs of T tokens, the corrupted run differing at two positions.
pairs() {
  python3 - "$@" <<'PY'
import json, random, sys
path, n, t, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(11)
with open(path, "w") as f:
    for _ in range(n):
        clean = [r.randrange(1, v) for _ in range(t)]
        corr = list(clean)
        for i in (t // 3, t - 2):
            corr[i] = (corr[i] + 1 + r.randrange(v - 2)) % v
        f.write(json.dumps({"clean_ids": clean, "corrupted_ids": corr, "answer_id": clean[-1],
                            "wrong_id": (clean[-1] + 1) % v}) + "\n")
PY
}

# checkpoint NAME SHAPE: a bf16 folder of that shape under $WORK (kept between parts).
checkpoint() {
  local dir="$WORK/$1"
  # step's own lines to stderr: stdout is the folder's name.
  [ -f "$dir/config.json" ] || step "checkpoint-$1" "$BIN" bench checkpoint "$dir" $2 --dtype bf16 >&2 || return 1
  echo "$dir"
}

# side NAME SHAPE N T DTYPE: circuitscope, then the PyTorch baseline (2 repeats: cold, then warm).
side() {
  local name=$1 shape=$2 n=$3 t=$4 dt=$5 dir p cs_log py_json
  dir=$(checkpoint "$name" "$shape") || return
  p="$WORK/$name-$n-$t.jsonl"
  pairs "$p" "$n" "$t" "$(vocab_of "$shape")"
  cs_log="$OUT/side-$name-$dt.cs.log"
  py_json="$OUT/side-$name-$dt.py.json"
  step "side-$name-$dt-circuitscope" "$BIN" -v attribute "$dir" --data "$p" --dtype "$dt" --device "$DEV" --batch-size 8 \
    --ig-steps 5 --top-n 100 --out "$OUT/side-$name-$dt.cs.json"
  grep -E "loaded|attribution passes" "$LOG" | tail -2 >"$cs_log"
  local cmp=()
  [ "$dt" = "f32" ] && cmp=(--compare "$OUT/side-$name-$dt.cs.json")
  step "side-$name-$dt-pytorch" sh -c "python3 scripts/eap_ig_torch.py --model '$dir' --pairs '$p' --device '$DEV' \
    --dtype '$dt' --batch-size 8 --ig-steps 5 --repeat 2 ${cmp[*]} > '$py_json'"
  python3 - "$cs_log" "$py_json" "$name $dt, $n pairs x $t tokens" <<'PY' | tee -a "$SUMMARY"
import json, re, sys
cs = open(sys.argv[1]).read()
m = re.search(r"attribution passes: ([0-9.]+) s", cs)
mem = re.search(r"peak .*? ([0-9.]+) MiB", cs)
py = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
c = float(m.group(1)) if m else float("nan")
cold, warm = py["total_s"][0], min(py["total_s"][1:] or py["total_s"])
line = (f"{sys.argv[3]}: circuitscope {c:.2f} s (cold process), PyTorch {cold:.2f} s cold / {warm:.2f} s warm; "
        f"lead {cold / c:.2f}x (cold), {warm / c:.2f}x (vs warm)")
if mem:
    line += f"; peak circuitscope {float(mem.group(1)):.0f} MiB"
if py.get("peak_mem_bytes"):
    line += f", PyTorch {py['peak_mem_bytes'] / 2**20:.0f} MiB"
if "compare" in py:
    line += f"; Pearson {py['compare']['pearson']:.9f}, max|diff| {py['compare']['max_abs_diff']:.2e}"
print(line)
PY
}

for part in "${PARTS[@]}"; do
  case $part in
    side)
      side small "$SMALL" "$N_SMALL" "$T_SMALL" f32
      side small "$SMALL" "$N_SMALL" "$T_SMALL" bf16
      side mid "$MID" "$N_MID" "$T_MID" bf16
      ;;
    bench)
      for spec in "small f32 $T_SMALL" "small bf16 $T_SMALL" "mid bf16 $T_MID" "big bf16 32"; do
        read -r name dt seq <<<"$spec"
        shape_var=${name^^}
        prof=()
        [ "$name" = "mid" ] && prof=(--profile "$OUT/trace-mid.json")
        batch=8
        [ "$name" = "big" ] && batch=16
        step "bench-$name-$dt" "$BIN" bench attribute ${!shape_var} --seq "$seq" --batch "$batch" --ig-steps 5 \
          --dtype "$dt" --device "$DEV" --iters 3 "${prof[@]}"
        grep -E "^bench attribute|per example|ratio|peak" "$LOG" | tail -8 >>"$SUMMARY"
      done
      [ -f "$OUT/trace-mid.json" ] && step profile-summary python3 scripts/profile_summary.py "$OUT/trace-mid.json" --top 15 &&
        grep -A60 "=== profile-summary" "$LOG" | tail -60 >"$OUT/profile-mid.txt"
      ;;
    memory)
      for b in 1 2 4 8; do
        step "memory-big-batch-$b" "$BIN" bench attribute $BIG --seq "$T_BIG" --batch "$b" --ig-steps 5 --dtype bf16 \
          --device "$DEV" --iters 1 || break
        note "8B shape, $T_BIG tokens, batch $b: $(grep -E "peak" "$LOG" | tail -1)"
      done
      ;;
    e2e)
      dir=$(checkpoint big "$BIG") || continue
      p="$WORK/big-$N_BIG-$T_BIG.jsonl"
      pairs "$p" "$N_BIG" "$T_BIG" "$(vocab_of "$BIG")"
      step e2e-attribute "$BIN" -v attribute "$dir" --data "$p" --dtype bf16 --device "$DEV" --batch-size 4 --ig-steps 5 \
        --top-n 100 --out "$OUT/e2e-big.json"
      note "8B folder end to end: $(grep -E "loaded|attribution passes" "$LOG" | tail -2 | tr '\n' ' ')"
      ;;
    *) note "speed_check: unknown part '$part' (side, bench, memory, e2e)" ;;
  esac
done

if [ ${#fails[@]} -eq 0 ]; then
  note "speed_check: all parts ran on $DEV"
else
  printf 'speed_check: FAILED: %s\n' "${fails[@]}" | tee -a "$LOG" "$SUMMARY"
  exit 1
fi
