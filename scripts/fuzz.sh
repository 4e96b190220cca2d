#!/usr/bin/env bash
# libFuzzer targets for every input parser (fuzz/, issue #17), built with clang + ASan + UBSan.
#
#   bash scripts/fuzz.sh build                          install clang/libFuzzer if missing, configure and
#                                                       build the fuzz targets into ./build-asan
#   bash scripts/fuzz.sh run TARGET [SECONDS|-runs=N]   fuzz one target (default 60 s)
#   bash scripts/fuzz.sh replay [TARGET...]             run the committed seeds and regressions once
#   bash scripts/fuzz.sh ci                             build, replay, then each target FUZZ_SECONDS (30) s;
#                                                       exits non-zero on any crash
#   bash scripts/fuzz.sh campaign [SECONDS] [RUNS] [TARGET...]
#                                                       each target (default: all) until RUNS (1000000)
#                                                       executions or SECONDS (1800) s, one at a time; counts
#                                                       logged to build-asan/fuzz-campaign.log (two
#                                                       campaigns over disjoint targets may run at once)
#   bash scripts/fuzz.sh list                           the targets
#
# Each target's working corpus is build-asan/fuzz-corpus/TARGET (new inputs go there; it grows from run
# to run); the committed seeds (tests/data/fuzz/TARGET/seeds) are read as a second corpus and never
# written. Crashes, leaks, timeouts and out-of-memory inputs are written to
# build-asan/fuzz-artifacts/TARGET/; a finding is kept by copying it to
# tests/data/fuzz/TARGET/regressions/, which the Catch2 suite replays ([fuzz]), or, for a timeout, to
# tests/data/fuzz/TARGET/hangs/, which only `replay` and `ci` run (they have a timeout).
#
# Environment: FUZZ_BUILD_DIR (build-asan), JOBS (nproc), FUZZ_SECONDS (ci: 30), CIRCUITSCOPE_SKIP_SETUP=1
# (no apt at all), FUZZ_KEEP_GOING=1 (run, campaign: libFuzzer's fork mode, which records a crash and
# goes on fuzzing instead of stopping at it). Extra arguments of `build` go to CMake.
#
# Known limits: the fuzz targets never load SentencePiece (src/tokenizer/sentencepiece.cpp dlopens its
# module with RTLD_DEEPBIND, which ASan does not support). Debian's libtorch is not instrumented: ASan
# still sees its heap, UBSan does not see its code.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${FUZZ_BUILD_DIR:-build-asan}
TARGETS=(safetensors config tokenizer chat_template dataset_line report sweep_spec)
# Longest input per target: a little above the largest seed, so that mutations stay near real files.
declare -A MAX_LEN=([safetensors]=8192 [config]=4096 [tokenizer]=16384 [chat_template]=8192
                    [dataset_line]=4096 [report]=16384 [sweep_spec]=4096)
CLANG_PKGS=(clang-14 libclang-rt-14-dev llvm-14)  # compiler, libFuzzer + sanitizer runtimes, llvm-symbolizer

say() { echo "== fuzz: $*"; }
die() { echo "fuzz: $*" >&2; exit 2; }

install_clang() {
  [ "${CIRCUITSCOPE_SKIP_SETUP:-0}" = "1" ] && return 0
  bash scripts/setup.sh "${CLANG_PKGS[@]}"
}

configure() {
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    # -O1 -g without NDEBUG: quick to build, readable stacks, and assert()s (nlohmann's too) stay on.
    cmake -S . -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
      -DCIRCUITSCOPE_SANITIZE=ON -DCIRCUITSCOPE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "$@"
  elif [ $# -gt 0 ]; then
    cmake -S . -B "$BUILD_DIR" "$@"
  fi
}

build() {
  install_clang
  configure "$@"
  local targets=() t start=$SECONDS
  for t in "${TARGETS[@]}"; do targets+=(--target "fuzz_$t"); done
  cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "${targets[@]}"
  say "built ${#TARGETS[@]} targets into $BUILD_DIR/fuzz/ in $((SECONDS - start)) s"
}

check_target() {
  local t
  for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
  die "unknown target '$1'; one of: ${TARGETS[*]}"
}

binary() {
  local b="$BUILD_DIR/fuzz/fuzz_$1"
  [ -x "$b" ] || die "$b is not built: run bash scripts/fuzz.sh build"
  echo "$b"
}

# shellcheck source=scripts/sanitizer_env.sh
source scripts/sanitizer_env.sh
fuzz_env() {
  sanitizer_env
  # One thread: libtorch's and OpenBLAS's pools would only add noise (and threads for LSan to stop).
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
}

# run_target TARGET LIMIT LOG: fuzzes TARGET (LIMIT: seconds, or -runs=N, or "S N" for both) and
# writes libFuzzer's output to LOG. Prints one summary line; returns libFuzzer's status.
run_target() {
  local t=$1 limit=$2 log=$3
  local bin corpus artifacts
  bin=$(binary "$t")
  corpus="$BUILD_DIR/fuzz-corpus/$t"
  artifacts="$BUILD_DIR/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  local args=(-timeout=10 -rss_limit_mb=2048 "-max_len=${MAX_LEN[$t]}" "-artifact_prefix=$artifacts/"
              -print_final_stats=1 -print_pcs=0)
  [ -f "fuzz/dict/$t.dict" ] && args+=("-dict=fuzz/dict/$t.dict")
  [ "${FUZZ_KEEP_GOING:-0}" = "1" ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  local part
  for part in $limit; do
    if [[ $part == -runs=* ]]; then args+=("$part"); else args+=("-max_total_time=$part"); fi
  done
  fuzz_env
  local rc=0 stamp="$artifacts/.run-started"
  touch "$stamp"
  "$bin" "${args[@]}" "$corpus" "tests/data/fuzz/$t/seeds" > "$log" 2>&1 || rc=$?
  # Fork mode goes on after a crash (and drops crashing seeds without counting them): new artifacts
  # are the record.
  local found
  # slow-unit-* files only record an input that took over 10 s (libFuzzer's -report_slow_units) and
  # are listed, not counted: a loaded machine makes them. Timeouts (-timeout=10) are timeout-* files.
  local slow
  slow=$(find "$artifacts" -type f -newer "$stamp" -name 'slow-unit-*' | sort)
  [ -n "$slow" ] && sed 's/^/    slow input (not a failure): /' <<<"$slow"
  found=$(find "$artifacts" -type f -newer "$stamp" ! -name '.*' ! -name 'slow-unit-*' | sort)
  summarize "$t" "$log" "$rc" "$found" || rc=$?
  return "$rc"
}

# One line from a libFuzzer log: executions, exec/s, coverage, corpus, and the crash if any. Returns
# non-zero when the run crashed (in fork mode: when it recorded any crash, timeout or OOM).
summarize() {
  local t=$1 log=$2 rc=$3 found=${4:-}
  local runs eps cov ft corp done_line
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -1 || true)
  local last
  last=$(grep -E '^#[0-9]+:?[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED|cov:) ' "$log" | tail -1 || true)
  if [ -z "$runs" ] && [[ $last == *"oom/timeout/crash"* ]]; then  # fork mode
    runs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<<"$last")
    eps=$(sed -n 's/.* exec\/s:\{0,1\} \([0-9]*\).*/\1/p' <<<"$last")
    done_line=$last
    local crashes
    crashes=$(sed -n 's/.* oom\/timeout\/crash: \([0-9]*\/[0-9]*\/[0-9]*\).*/\1/p' <<<"$last")
    [ "$crashes" != "0/0/0" ] && [ "$rc" -eq 0 ] && rc=1
  fi
  [ -n "$found" ] && [ "$rc" -eq 0 ] && rc=1
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  [ -n "$done_line" ] && echo "$done_line"
  if [ "$rc" -eq 0 ]; then
    printf '%-14s runs %-9s exec/s %-6s cov %-6s ft %-7s corpus %-12s crashed: no\n' "$t" "${runs:-?}" "${eps:-?}" \
      "${cov:-?}" "${ft:-?}" "${corp:-?}"
  else
    local what
    what=$(grep -m2 -E 'terminate called|what\(\):|^==[0-9]+==ERROR|^SUMMARY: |ERROR: libFuzzer|runtime error:|ALARM' \
      "$log" || true)
    printf '%-14s runs %-9s exec/s %-6s cov %-6s ft %-7s corpus %-12s crashed: YES (exit %s)\n' "$t" "${runs:-?}" \
      "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$rc"
    [ -n "$what" ] && sed 's/^/    /' <<<"$what"
    [ -n "$found" ] && sed 's/^/    artifact: /' <<<"$found"
    echo "    log: $log"
  fi
  return "$rc"
}

# Every committed seed, regression and hang through each target once (hangs/: inputs that ran past
# libFuzzer's -timeout; only this replay has a timeout, so the Catch2 replay leaves them out). Returns
# non-zero if any input crashes or times out.
replay() {
  local targets=("$@") t failed=0
  [ ${#targets[@]} -eq 0 ] && targets=("${TARGETS[@]}")
  fuzz_env
  mkdir -p "$BUILD_DIR/fuzz-logs"
  for t in "${targets[@]}"; do
    check_target "$t"
    local bin files=() f log="$BUILD_DIR/fuzz-logs/replay-$t.log"
    bin=$(binary "$t")
    while IFS= read -r f; do files+=("$f"); done < <(find "tests/data/fuzz/$t/seeds" "tests/data/fuzz/$t/regressions" \
      "tests/data/fuzz/$t/hangs" -type f ! -name '.*' 2>/dev/null | sort)
    if [ ${#files[@]} -eq 0 ]; then
      echo "$t: no committed inputs"
      continue
    fi
    # Files (not folders) as arguments: libFuzzer runs each once and stops at the first crash, so go one
    # at a time to see every failing file.
    local n_bad=0
    : > "$log"
    for f in "${files[@]}"; do
      if ! "$bin" -timeout=10 -rss_limit_mb=2048 "$f" >> "$log" 2>&1; then
        echo "$t: FAILS (crash, leak or timeout) on $f (log: $log)"
        n_bad=$((n_bad + 1))
      fi
    done
    printf '%-14s replayed %3d committed inputs: %s\n' "$t" "${#files[@]}" \
      "$([ $n_bad -eq 0 ] && echo ok || echo "$n_bad crashed")"
    [ $n_bad -eq 0 ] || failed=1
  done
  return $failed
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  build)
    build "$@"
    ;;
  run)
    [ $# -ge 1 ] || die "usage: bash scripts/fuzz.sh run TARGET [SECONDS|-runs=N]"
    check_target "$1"
    limit=${2:-60}
    [[ $limit == -runs=* || $limit =~ ^[0-9]+$ ]] || die "expected SECONDS or -runs=N; found '$limit'"
    log="$BUILD_DIR/fuzz-logs/run-$1.log"
    run_target "$1" "$limit" "$log"
    ;;
  replay)
    replay "$@"
    ;;
  ci)
    build
    status=0
    say "replaying the committed seeds and regressions"
    replay || status=1
    secs=${FUZZ_SECONDS:-30}
    say "fuzzing each target for $secs s"
    for t in "${TARGETS[@]}"; do
      run_target "$t" "$secs" "$BUILD_DIR/fuzz-logs/ci-$t.log" || status=1
    done
    [ $status -eq 0 ] && say "ci: no crash" || say "ci: CRASHES (see above)"
    exit $status
    ;;
  campaign)
    secs=${1:-1800}
    runs=${2:-1000000}
    [[ $secs =~ ^[0-9]+$ && $runs =~ ^[0-9]+$ ]] || die "usage: bash scripts/fuzz.sh campaign [SECONDS] [RUNS] [TARGET...]"
    shift $(($# < 2 ? $# : 2))
    chosen=("$@")
    [ ${#chosen[@]} -eq 0 ] && chosen=("${TARGETS[@]}")
    for t in "${chosen[@]}"; do check_target "$t"; done
    campaign_log="$BUILD_DIR/fuzz-campaign.log"
    mkdir -p "$BUILD_DIR"
    echo "# $(date -u +%FT%TZ) campaign: each target until $runs executions or $secs s ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))" \
      >> "$campaign_log"
    status=0
    for t in "${chosen[@]}"; do
      line=$(run_target "$t" "$secs -runs=$runs" "$BUILD_DIR/fuzz-logs/campaign-$t.log") || status=1
      echo "$line"
      stamp=$(date -u +%FT%TZ)
      sed "s/^/$stamp /" <<<"$line" >> "$campaign_log"
    done
    say "campaign done; counts in $campaign_log"
    exit $status
    ;;
  list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
  *)
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$cmd" ] && exit 0
    die "unknown command '$cmd'"
    ;;
esac
