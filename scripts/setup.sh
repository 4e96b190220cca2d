#!/usr/bin/env bash
# Installs everything circuitscope needs on Debian 12. Safe to run repeatedly:
# it only asks apt for packages that are missing.
#
#   bash scripts/setup.sh                 the build's packages
#   bash scripts/setup.sh PKG...          those and PKG... (scripts needing more, e.g. fuzz.sh's clang)
#   bash scripts/setup.sh --only PKG...   just PKG... (scripts/slurm/local_cluster.sh's daemons)
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev                 # libtorch 1.13 (CPU)
  libopenblas0-openmp          # fast BLAS; the binary loads it explicitly (see src/model/blas.cpp)
  libsentencepiece-dev sentencepiece   # library + spm_train/spm_encode used by tests
  nlohmann-json3-dev libcli11-dev libspdlog-dev catch2
  libpcre2-dev                 # regex engine for tokenizer.json Split pre-tokenizers
  libutf8proc-dev              # Unicode normalization (NFC/NFKC) for tokenizer.json normalizers
  libgraphviz-dev              # circuit graphs laid out and rendered in-process (cgraph + gvc)
  python3                      # the study statistics (scripts/study_summary.py, a ctest entry) and scripts/*.sh helpers
)

if [ "${1:-}" = "--only" ]; then
  shift
  [ $# -gt 0 ] || { echo "setup: --only needs package names" >&2; exit 2; }
  PKGS=()
fi
PKGS+=("$@")

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
