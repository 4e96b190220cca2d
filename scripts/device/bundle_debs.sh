#!/usr/bin/env bash
# Run HERE (Debian 12), before a GPU check: downloads the Debian packages that a lent GPU machine
# lacks (it has nvcc, CMake, ninja, g++ and PyTorch with its libtorch, but none of circuitscope's other
# dependencies, and no network) into .devdebs/ (in .gitignore). The check script
# (scripts/device/cuda_check.sh) unpacks them there with dpkg -x into a private folder.
#   bash scripts/device/bundle_debs.sh      then carry ".devdebs" in the device run
set -euo pipefail
cd "$(dirname "$0")/../.."
PKGS=(
  nlohmann-json3-dev libcli11-dev catch2
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  libutf8proc-dev libutf8proc2
  libsentencepiece-dev libsentencepiece0 sentencepiece   # library + spm_train/spm_encode for the tests
  pkgconf pkgconf-bin libpkgconf3
)
mkdir -p .devdebs
cd .devdebs
rm -f ./*.deb
[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ] || apt-get update -qq
apt-get download -qq "${PKGS[@]}" 2>&1 | grep -v "unsandboxed as root" || true
# Plain names (no '%3a' epochs, no '+'), so that every file travels whatever the tool allows.
for f in ./*.deb; do n=$(dpkg-deb -f "$f" Package).deb; [ "$f" = "./$n" ] || mv "$f" "$n"; done
echo "bundle_debs: $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in .devdebs/"
