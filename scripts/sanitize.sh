#!/usr/bin/env bash
# The whole Catch2 suite under AddressSanitizer + UndefinedBehaviorSanitizer (issue #17).
#
#   bash scripts/sanitize.sh            install clang if missing, build ./build-asan (clang-14, ASan+UBSan,
#                                       shared with scripts/fuzz.sh), run every test
#
# Not in CI (.ci/run): the instrumented build and run take longer than CI's time allows beside the two
# libtorch builds (the README's "Robustness" section gives the times). Run it before a release, or after
# changing memory-handling code.
#
# One exclusion: the SentencePiece tests ([spm]). src/tokenizer/sentencepiece.cpp loads libsentencepiece
# in a module opened with RTLD_DEEPBIND (its protobuf clashes with libtorch's), and ASan refuses
# RTLD_DEEPBIND; without it the two protobufs collide. So SentencePiece cannot run in a sanitizer build.
#
# Environment: FUZZ_BUILD_DIR (build-asan), JOBS (nproc), CTEST_ARGS (extra ctest arguments, e.g. -R name).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-asan}
start=$SECONDS

# Configures build-asan (and builds the fuzz targets, which share the instrumented library).
bash scripts/fuzz.sh build
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target circuitscope circuitscope_tests
echo "== sanitize: built in $((SECONDS - start)) s"

# shellcheck source=scripts/sanitizer_env.sh
source scripts/sanitizer_env.sh
sanitizer_env

# The [spm] tests by name (ctest knows tests by name, not by tag). Catch2's listing exits with the
# number of tests it listed, hence the "|| true".
spm_names=$("$BUILD_DIR/circuitscope_tests" "[spm]" --list-test-names-only 2>/dev/null || true)
spm_regex=$(sed -e '/^$/d' -e 's/[][\\.^$*+?(){}|]/\\&/g' <<<"$spm_names" | paste -sd'|')
[ -n "$spm_regex" ] || { echo "sanitize: found no [spm] tests to exclude; has the tag changed?" >&2; exit 2; }
n_spm=$(sed '/^$/d' <<<"$spm_names" | wc -l)
echo "== sanitize: running the suite without its $n_spm [spm] test(s)"
run_start=$SECONDS
cd "$BUILD_DIR"
# shellcheck disable=SC2086
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 3000 -E "^($spm_regex)\$" ${CTEST_ARGS:-}
echo "== sanitize: suite passed in $((SECONDS - run_start)) s (build + run $((SECONDS - start)) s)"
