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
DEV=${CS_CHECK_DEVICE:-cuda}
BUILD=${BUILD_DIR:-build-cuda}
ROOT=${CS_DEPS_ROOT:-/tmp/cs-deps-root}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
LOG="$OUT/cuda_check.log"
: >"$LOG"
fails=()
step() {  # step NAME CMD...: runs CMD, logs it, records a failure
  local name=$1
  shift
  echo "=== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "=== $name: exit $rc, $((SECONDS - t0)) s" | tee -a "$LOG"
  [ $rc -eq 0 ] || fails+=("$name (exit $rc)")
  return $rc
}

# 1. Dependencies and build. With .devdebs, the Debian packages are unpacked into a private root;
#    without it, the machine's own packages (system, pip, conda or modules) must provide them.
CMAKE_DEPS=()
if ls .devdebs/*.deb >/dev/null 2>&1; then
  mkdir -p "$ROOT"
  for f in .devdebs/*.deb; do dpkg-deb -x "$f" "$ROOT" || { echo "cuda_check: cannot unpack $f" | tee -a "$LOG"; exit 2; }; done
  ARCH_LIB="$ROOT/usr/lib/x86_64-linux-gnu"
  export PATH="$ROOT/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$ARCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The .pc files say prefix=/usr: the sysroot maps their -I/-L flags into $ROOT.
  export PKG_CONFIG_SYSROOT_DIR="$ROOT" PKG_CONFIG_LIBDIR="$ARCH_LIB/pkgconfig:$ROOT/usr/share/pkgconfig"
  CMAKE_DEPS=(-DCMAKE_PREFIX_PATH="$ROOT/usr" -DPKG_CONFIG_EXECUTABLE="$ROOT/usr/bin/pkg-config")
  echo "cuda_check: dependencies from .devdebs (unpacked into $ROOT)" | tee -a "$LOG"
else
  echo "cuda_check: no .devdebs/*.deb; using the machine's own packages (run scripts/device/bundle_debs.sh on a Debian machine and carry .devdebs where it has none)" | tee -a "$LOG"
fi
if [ -z "${TORCH_DIR:-}" ]; then
  TORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share", "cmake", "Torch"))' 2>>"$LOG") || {
    echo "cuda_check: no TORCH_DIR and python3 has no torch" | tee -a "$LOG"
    exit 2
  }
fi
{
  echo "torch cmake: $TORCH_DIR"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  g++ --version | head -1
  cmake --version | head -1
} >>"$LOG" 2>&1
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if ! step configure cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" "${CMAKE_DEPS[@]}"; then
  tail -40 "$LOG"
  exit 1
fi
if ! step build cmake --build "$BUILD" -j "$JOBS"; then
  grep -E "error|Error" "$LOG" | head -40
  exit 1
fi
BIN="$BUILD/circuitscope"
export CIRCUITSCOPE_SPM_MODULE="$BUILD"

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
