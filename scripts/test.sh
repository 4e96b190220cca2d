#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (Catch2 tests through ctest).
#
#   bash scripts/test.sh                  against Debian's libtorch 1.13 (CPU), into ./build
#   CS_TORCH=pypi bash scripts/test.sh    against libtorch 2.x from the PyPI torch wheel (a CUDA
#                                         build: the CUDA code is compiled and linked; the tests run
#                                         on the CPU), into ./build-torch2
#
# BUILD_DIR and JOBS override the build folder and the parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${CS_TORCH:-debian}" in
  debian)
    bash scripts/build.sh
    cd "${BUILD_DIR:-build}"
    ;;
  pypi)
    bash scripts/setup.sh
    torch_dir=$(bash scripts/setup_torch2.sh)
    export BUILD_DIR=${BUILD_DIR:-build-torch2}
    CIRCUITSCOPE_SKIP_SETUP=1 bash scripts/build.sh -DTorch_DIR="$torch_dir"
    cd "$BUILD_DIR"
    ;;
  *)
    echo "test.sh: CS_TORCH must be debian or pypi; got '${CS_TORCH}'" >&2
    exit 2
    ;;
esac
ctest --output-on-failure -j "${JOBS:-$(nproc)}"
