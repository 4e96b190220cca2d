#!/usr/bin/env bash
# The GPU check, as one prepared run on a lent GPU machine (the `device` tool), or on any Linux x86-64
# machine with a CUDA PyTorch/libtorch, nvcc, CMake, ninja and g++, but no Debian packages.
#
#   here:   bash scripts/device/bundle_debs.sh
#   there:  bash scripts/device/cuda_check.sh          (carry ".devdebs"; results go to $OUT)
#
# Steps, each logged to $OUT/cuda_check.log; a failing step is reported and the rest still run:
#   1. unpack .devdebs/*.deb into a private root (never into /) and build against the libtorch of
#      the machine's python3 torch (or $TORCH_DIR) into build-cuda/;
#   2. `inspect --device cuda`;
#   3. the test binary on the GPU (CS_TEST_DEVICE=cuda): Hugging Face reference logits, hooks,
#      attribution (finite differences, IG completeness, GQA), patching and faithfulness;
#   4. `attribute` on CPU and on CUDA for the same pairs; the scores must agree within
#      |a-b| <= 1e-4*max|a| + 1e-3*|a| (f32);
#   5. `bench attribute` at the issue's shape, f32 and bf16.
# CS_CHECK_DEVICE=cpu runs the same steps on the CPU (a dry run of the script itself).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cs-cuda-check}
CHECK_NAME=cuda_check
# 1. Dependencies and build (LOG, step, BIN).
# shellcheck source=scripts/device/device_common.sh
source scripts/device/device_common.sh

# 2. The runtime as the binary sees it.
step inspect "$BIN" inspect tests/data/hf-tiny/qwen2-tiny --device "$DEV"

# 2b. Devices that do not exist end in one line and exit code 6 (unsupported), not a c10 error.
bad_device() {
  local out rc
  out=$("$BIN" inspect tests/data/hf-tiny/qwen2-tiny --device "$1" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 6 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "$1"
}
step bad-device-index bad_device cuda:64

# 3. Tests on the device. [bf16] and [loader] are the reference tests' own tags.
step tests env CS_TEST_DEVICE="$DEV" "$BUILD/circuitscope_tests" "[reference],[bf16],[loader],[hooks],[attribution],[patching]"

# 4. The same attribution on CPU and on the device.
PAIRS="$OUT/pairs.jsonl"
python3 - "$PAIRS" <<'PY'
import json, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        clean = [random.randrange(1, 500) for _ in range(12)]
        corr = list(clean)
        corr[3] = (corr[3] + 1) % 500
        corr[7] = (corr[7] + 13) % 500
        f.write(json.dumps({"clean_ids": clean, "corrupted_ids": corr, "answer_id": clean[3], "wrong_id": corr[3]}) + "\n")
PY
for d in cpu "$DEV"; do
  step "attribute-$d" "$BIN" attribute tests/data/hf-tiny/qwen2-tiny --data "$PAIRS" --method eap-ig-inputs --ig-steps 5 \
    --metric logit-diff --top-n 200 --device "$d" --out "$OUT/report-$d.json"
done
step compare-scores python3 - "$OUT/report-cpu.json" "$OUT/report-$DEV.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["edges"] for p in sys.argv[1:3])
assert a.keys() == b.keys(), "the reports name different edges"
scale = max(abs(e["score"]) for e in a.values())
worst = max(abs(a[k]["score"] - b[k]["score"]) - (1e-4 * scale + 1e-3 * abs(a[k]["score"])) for k in a)
diff = max(abs(a[k]["score"] - b[k]["score"]) for k in a)
same_circuit = sum(a[k]["in_graph"] == b[k]["in_graph"] for k in a)
print(f"{len(a)} edges, max|score| {scale:.4e}, max|cpu-device| {diff:.3e}, edges with the same in_graph {same_circuit}/{len(a)}")
sys.exit(0 if worst <= 0 else 1)
PY

# 5. Speed at the issue's shape.
for dt in f32 bf16; do
  step "bench-$dt" "$BIN" bench attribute --layers 12 --d-model 768 --heads 12 --kv-heads 4 --seq 64 --batch 8 --ig-steps 5 \
    --dtype "$dt" --device "$DEV" --iters 3
done

echo "--- bench lines" | tee -a "$LOG"
grep -E "per example|ratio|floor|peak" "$LOG" | tee "$OUT/bench.txt"
if [ ${#fails[@]} -eq 0 ]; then
  echo "cuda_check: all steps passed on $DEV" | tee -a "$LOG"
else
  printf 'cuda_check: FAILED: %s\n' "${fails[@]}" | tee -a "$LOG"
  exit 1
fi
