#!/usr/bin/env bash
# Fetches libtorch 2.x as a cluster user gets it: the PyPI `torch` wheel (a CUDA build) and the
# NVIDIA runtime wheels it names, unpacked side by side so that the RPATHs inside torch/lib resolve
# ($ORIGIN/../../nvidia/...). No Python package is installed; only the C++ libraries are used.
#
#   bash scripts/setup_torch2.sh         prints the Torch CMake folder (…/torch/share/cmake/Torch)
#
# Downloads are cached in $CS_CACHE_DIR (default ~/.cache/circuitscope): a second run on the same
# machine downloads nothing. About 2.5 GB of wheels, 6 GB unpacked.
# CS_TORCH_VERSION picks another torch release; the NVIDIA pins below belong to 2.15.0 (they are
# the wheel's own Requires-Dist) and must be changed with it.
set -euo pipefail

V=${CS_TORCH_VERSION:-2.15.0}
CACHE=${CS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/circuitscope}
WHEELS=$CACHE/wheels
SITE=$CACHE/torch-$V
# torch 2.15.0's Requires-Dist for Linux x86-64 (cuda-toolkit 13.2.2's extras spelled out).
NVIDIA=(
  "nvidia-cuda-runtime==13.2.86.*" "nvidia-cuda-nvrtc==13.2.86.*" "nvidia-cuda-cupti==13.2.86.*"
  "nvidia-cublas==13.4.1.3.*" "nvidia-cufft==12.2.0.57.*" "nvidia-cufile==1.17.1.22.*"
  "nvidia-cusolver==12.2.0.11.*" "nvidia-cusparse==12.7.10.12.*" "nvidia-nvjitlink>=13.2.86,<14"
  "nvidia-nvtx==13.2.86.*" "nvidia-cudnn-cu13==9.26.0.51" "nvidia-cusparselt-cu13==0.8.1"
  "nvidia-nccl-cu13==2.30.7" "nvidia-nvshmem-cu13==3.7.2"
)

log() { echo "setup_torch2: $*" >&2; }

if [ -f "$SITE/.complete" ]; then
  log "torch $V already unpacked in $SITE"
  echo "$SITE/torch/share/cmake/Torch"
  exit 0
fi

PY=$(command -v python3 || true)
if [ -z "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
  log "installing python3-pip (pip fetches the wheels)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip
  PY=$(command -v python3)
fi

mkdir -p "$WHEELS"
t0=$SECONDS
# The libraries are the same for every Python version; the tags only pick one wheel file.
# pip matches platform tags exactly, and NVIDIA's wheels use many glibc levels.
PLATFORMS=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for n in $(seq 17 35); do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
log "fetching torch==$V and ${#NVIDIA[@]} NVIDIA runtime wheels into $WHEELS (cached)"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
  "${PLATFORMS[@]}" -d "$WHEELS" "torch==$V" "${NVIDIA[@]}"
log "download: $((SECONDS - t0)) s"

t0=$SECONDS
rm -rf "$SITE.tmp"
mkdir -p "$SITE.tmp"
# Only the wheels this version needs: torch itself and the pinned names above.
want=("torch-$V-")
for spec in "${NVIDIA[@]}"; do
  name=${spec%%[=<>]*}
  want+=("$(echo "$name" | tr - _)-")
done
for prefix in "${want[@]}"; do
  # The newest cached file of that name (an older pin may still lie in the cache).
  whl=$(ls -1 "$WHEELS"/"$prefix"*.whl 2>/dev/null | sort -V | tail -1)
  [ -n "$whl" ] || { log "no wheel for ${prefix%-} in $WHEELS"; exit 1; }
  "$PY" -m zipfile -e "$whl" "$SITE.tmp"
done
rm -rf "$SITE"
mv "$SITE.tmp" "$SITE"
touch "$SITE/.complete"
log "unpacked in $((SECONDS - t0)) s into $SITE ($(du -sh "$SITE" | cut -f1))"
echo "$SITE/torch/share/cmake/Torch"
