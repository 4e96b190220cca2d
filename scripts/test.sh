#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (Catch2 tests through ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${JOBS:-$(nproc)}"
