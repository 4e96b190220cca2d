#!/usr/bin/env bash
# Builds circuitscope on a cluster login node (or in a batch job) against a libtorch 2.x with CUDA:
#
#   bash scripts/build_cluster.sh                     the libtorch of `python3 -c 'import torch'`
#   LIBTORCH=/opt/libtorch bash scripts/build_cluster.sh       an unpacked libtorch zip
#   TORCH_DIR=/x/share/cmake/Torch bash scripts/build_cluster.sh
#
# Nothing is installed: cmake (>= 3.18), a C++17/20 compiler (g++ >= 10), nlohmann-json, CLI11,
# spdlog (+fmt), PCRE2, utf8proc and, for the tests, Catch2 v2 must come from the system, modules,
# conda or spack; name their prefixes in CMAKE_PREFIX_PATH and PKG_CONFIG_PATH. The CUDA toolkit
# (nvcc) must match the libtorch's CUDA major version. BUILD_DIR (build-cuda), JOBS (cores) and
# extra CMake arguments (after the script name) are passed on. TESTS=0 skips the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-cuda}
if [ -z "${TORCH_DIR:-}" ]; then
  if [ -n "${LIBTORCH:-}" ]; then
    TORCH_DIR=$LIBTORCH/share/cmake/Torch
  elif command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; then
    TORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share", "cmake", "Torch"))')
  else
    echo "build_cluster: no libtorch found; set LIBTORCH (an unpacked libtorch) or TORCH_DIR, or load a Python with torch" >&2
    exit 2
  fi
fi
if [ ! -f "$TORCH_DIR/TorchConfig.cmake" ]; then
  echo "build_cluster: $TORCH_DIR/TorchConfig.cmake not found (TORCH_DIR or LIBTORCH is wrong)" >&2
  exit 2
fi
missing=()
for tool in cmake g++ pkg-config; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build_cluster: missing ${missing[*]} (load the modules that provide them)" >&2
  exit 2
fi
command -v nvcc >/dev/null || echo "build_cluster: warning: nvcc not on PATH; a CUDA libtorch's CMake config needs the CUDA toolkit (set CUDA_HOME or load a cuda module)" >&2
echo "build_cluster: libtorch from $TORCH_DIR into $BUILD_DIR" >&2
CIRCUITSCOPE_SKIP_SETUP=1 BUILD_DIR=$BUILD_DIR bash scripts/build.sh -DTorch_DIR="$TORCH_DIR" \
  -DCIRCUITSCOPE_BUILD_TESTS="$([ "${TESTS:-1}" = 0 ] && echo OFF || echo ON)" "$@"
"$BUILD_DIR/circuitscope" inspect tests/data/hf-tiny/qwen2-tiny
