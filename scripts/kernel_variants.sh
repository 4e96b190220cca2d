#!/usr/bin/env bash
# Runs the tests under the CPU-kernel settings of other machines, so that a test which passes only
# with this machine's kernels is found here rather than on a user's machine or a new CI host.
#
#   scripts/kernel_variants.sh suite    [VARIANT...]   the whole ctest suite under each variant
#   scripts/kernel_variants.sh training [VARIANT...]   the training- and sampling-dependent tests only
#                                                      (Catch2 tags TRAINING_TAGS below), under each variant
#   scripts/kernel_variants.sh seeds    [VARIANT...]   the induction test at each seed of SEEDS
#                                                      ($CS_INDUCTION_SEED), one table row per seed and variant
#   scripts/kernel_variants.sh list                    the variants and their settings
#
# No VARIANT means all of them. Each mode prints a Markdown table and appends it to
# $OUT (default $BUILD_DIR/kernel_variants.md); per-run logs go to $BUILD_DIR/kernel_variants/.
# The build must exist (scripts/build.sh). Exit status: 0 when every run passed, 1 otherwise.
#
# Environment: BUILD_DIR (build), SEEDS ("1 2 3 4 5"), STEPS (the induction test's own default),
# JOBS (parallel ctest jobs / seed runs; default: cores).
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-$BUILD_DIR/kernel_variants.md}
SEEDS=${SEEDS:-1 2 3 4 5}
JOBS=${JOBS:-$(nproc)}
TRAINING_TAGS='[training],[sampling],[pairs],[generate]'
LOGS=$BUILD_DIR/kernel_variants
TESTS=$BUILD_DIR/circuitscope_tests

# name|settings. OpenBLAS picks its GEMM kernels by OPENBLAS_CORETYPE (Debian builds it with
# DYNAMIC_ARCH); ATen's own vectorized kernels (softmax, norms, reductions, exp) by
# ATEN_CPU_CAPABILITY; oneDNN (bf16 matmul in libtorch) by ONEDNN_MAX_CPU_ISA. "haswell-l2" is what
# an AMD EPYC host's environment set when the induction test failed there (issue #20).
# Not here: ONEDNN_MAX_CPU_ISA=AVX2 on a CPU with AVX-512. libtorch sends bf16 matmuls to oneDNN when
# the CPU itself reports avx512bw/vl/dq, and oneDNN capped at AVX2 then has no bf16 kernel ("could not
# create a primitive descriptor iterator": the two bf16 tests fail). No real machine combines the two:
# on an AVX2-only CPU libtorch never picks oneDNN for bf16.
VARIANTS=(
  "default|"
  "blas-haswell|OPENBLAS_CORETYPE=Haswell"
  "haswell-l2|OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512"
  "blas-skylakex|OPENBLAS_CORETYPE=SkylakeX"
  "blas-zen|OPENBLAS_CORETYPE=Zen"
  "blas-sandybridge|OPENBLAS_CORETYPE=Sandybridge"
  "aten-avx2|ATEN_CPU_CAPABILITY=avx2"
  "aten-default|ATEN_CPU_CAPABILITY=default"
  "onednn-avx512|ONEDNN_MAX_CPU_ISA=AVX512_CORE"
  "threads-1|OMP_NUM_THREADS=1"
  "threads-2|OMP_NUM_THREADS=2"
)

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

settings_of() {
  local v
  for v in "${VARIANTS[@]}"; do
    if [ "${v%%|*}" = "$1" ]; then echo "${v#*|}"; return 0; fi
  done
  echo "kernel_variants: unknown variant '$1' (see: $0 list)" >&2
  return 1
}

mode=${1:-}
[ -n "$mode" ] || usage
shift
if [ "$mode" = list ]; then
  for v in "${VARIANTS[@]}"; do printf '%-18s %s\n' "${v%%|*}" "${v#*|}"; done
  exit 0
fi
case "$mode" in suite|training|seeds) ;; *) usage ;; esac

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for v in "${VARIANTS[@]}"; do names+=("${v%%|*}"); done
fi
for n in "${names[@]}"; do settings_of "$n" >/dev/null || exit 2; done
if [ ! -x "$TESTS" ]; then
  echo "kernel_variants: $TESTS not found; build first (bash scripts/build.sh)" >&2
  exit 2
fi
mkdir -p "$LOGS"

# The kernel OpenBLAS reports for a variant (OPENBLAS_VERBOSE=2 prints "Core: X" at load).
blas_core() {
  env $1 OPENBLAS_VERBOSE=2 "$BUILD_DIR/circuitscope" -q inspect tests/data/hf-tiny/qwen2-tiny --json 2>&1 \
    | sed -n 's/^Core: *//p' | head -1
}

status=0
table=()
row() { table+=("$1"); echo "$1"; }

# The closing summary line of a ctest run ("N% tests passed, ...") and of a Catch2 run.
summarize_ctest() {
  local log=$1 line
  line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)
  [ -n "$line" ] && echo "$line" || echo "no ctest summary (see $log)"
}
summarize_catch() {
  local log=$1 line
  line=$(grep -E '^(All tests passed|test cases:)' "$log" | tail -1)
  [ -n "$line" ] && echo "$line" || echo "no Catch2 summary (see $log)"
}

case "$mode" in
suite|training)
  row "| variant | settings | OpenBLAS core | result | time |"
  row "|---|---|---|---|---|"
  for n in "${names[@]}"; do
    s=$(settings_of "$n")
    log=$LOGS/$mode-$n.log
    t0=$(date +%s)
    if [ "$mode" = suite ]; then
      (cd "$BUILD_DIR" && env $s ctest --output-on-failure -j "$JOBS") >"$log" 2>&1
      rc=$?
      res=$(summarize_ctest "$log")
    else
      env $s "$TESTS" "$TRAINING_TAGS" >"$log" 2>&1
      rc=$?
      res=$(summarize_catch "$log")
    fi
    t1=$(date +%s)
    [ $rc -eq 0 ] || { status=1; res="FAILED: $res"; }
    row "| $n | ${s:-(none)} | $(blas_core "$s") | $res | $((t1 - t0)) s |"
  done
  ;;
seeds)
  row "| seed | variant | copy acc | prev-token scores (L0, top 2) | induction scores (L1, top 2) | mechanism zeroed | other L0 head zeroed (min) | other L1 head zeroed (min) | result |"
  row "|---|---|---|---|---|---|---|---|---|"
  # One process per (seed, variant), JOBS at a time; each trains on one thread.
  runs=()
  for seed in $SEEDS; do for n in "${names[@]}"; do runs+=("$seed|$n"); done; done
  run_one() {
    local seed=${1%%|*} n=${1#*|} s
    s=$(settings_of "$n")
    env $s CS_INDUCTION_SEED="$seed" ${STEPS:+CS_INDUCTION_STEPS=$STEPS} \
      "$TESTS" "[induction]" >"$LOGS/seed-$seed-$n.log" 2>&1
  }
  i=0
  for r in "${runs[@]}"; do
    run_one "$r" &
    i=$((i + 1))
    if [ $((i % JOBS)) -eq 0 ]; then wait; fi
  done
  wait
  for r in "${runs[@]}"; do
    seed=${r%%|*} n=${r#*|}
    log=$LOGS/seed-$seed-$n.log
    acc=$(sed -n 's/.*held-out copy accuracy \([0-9.]*\).*/\1/p' "$log" | head -1)
    # "head h: previous-token score P (layer 0), induction score I (layer 1)", scores sorted high to low.
    prev=$(sed -n 's/.*head \([0-9]*\): previous-token score \([0-9.]*\).*/\2 h\1/p' "$log" | sort -rn | head -2 | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1}')
    ind=$(sed -n 's/.*head \([0-9]*\): .*induction score \([0-9.]*\).*/\2 h\1/p' "$log" | sort -rn | head -2 | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1}')
    both=$(sed -n 's/.*zeroed: \([0-9.]*\)$/\1/p' "$log" | head -1)
    other0=$(sed -n 's/.*a0\.h[0-9]* zeroed alone: \([0-9.]*\)$/\1/p' "$log" | sort -n | head -1)
    other1=$(sed -n 's/.*a1\.h[0-9]* zeroed alone: \([0-9.]*\)$/\1/p' "$log" | sort -n | head -1)
    res=$(summarize_catch "$log")
    case "$res" in
      "All tests passed"*) res=passed ;;
      *) status=1
         fail=$(grep -m1 -E '^\S+:[0-9]+: FAILED' -A3 "$log" | grep -E '(REQUIRE|CHECK)\(' | head -1 | sed 's/^ *//')
         res="FAILED ${fail:-$res}" ;;
    esac
    row "| $seed | $n | ${acc:--} | ${prev:--} | ${ind:--} | ${both:--} | ${other0:--} | ${other1:--} | $res |"
  done
  ;;
esac

{
  echo
  echo "## kernel_variants.sh $mode ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo
  printf '%s\n' "${table[@]}"
} >>"$OUT"
echo "kernel_variants: table appended to $OUT; logs in $LOGS" >&2
exit $status
