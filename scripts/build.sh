#!/usr/bin/env bash
# Sets up (Debian packages), configures and builds circuitscope into ./build.
# Extra arguments go to CMake, e.g. -DTorch_DIR=/opt/libtorch/share/cmake/Torch for a CUDA libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CIRCUITSCOPE_SKIP_SETUP:-0}" != "1" ]; then bash scripts/setup.sh; fi
BUILD_DIR=${BUILD_DIR:-build}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ $# -gt 0 ]; then
  cmake -S . -B "$BUILD_DIR" "$@"
fi
JOBS=${JOBS:-$(nproc)}
# BUILD_TARGET=circuitscope builds the command alone (the demo's need), skipping the test binary.
cmake --build "$BUILD_DIR" -j "$JOBS" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
echo "built: $BUILD_DIR/circuitscope"
