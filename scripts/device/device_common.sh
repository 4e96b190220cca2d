# Shared by the device checks (cuda_check.sh, speed_check.sh); sourced, not run. The caller sets
# CHECK_NAME and OUT (and DEVICE_BUILD_TARGET to build one target only). Defines DEV, BUILD, ROOT and
# JOBS from the environment, LOG, fails and step(), unpacks .devdebs, builds against the machine's
# CUDA libtorch, and sets BIN (or takes $CS_BIN, already built).
# shellcheck shell=bash
DEV=${CS_CHECK_DEVICE:-cuda}
BUILD=${BUILD_DIR:-build-cuda}
ROOT=${CS_DEPS_ROOT:-/tmp/cs-deps-root}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
LOG="$OUT/$CHECK_NAME.log"
: >"$LOG"
fails=()
step() {  # step NAME CMD...: runs CMD, logs it, records a failure
  local name=$1
  shift
  echo "=== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "=== $name: exit $rc, $((SECONDS - t0)) s" | tee -a "$LOG"
  [ $rc -eq 0 ] || fails+=("$name (exit $rc)")
  return $rc
}

# CS_BIN: a circuitscope binary already built (a dry run on a development machine): no build.
if [ -n "${CS_BIN:-}" ]; then
  BIN=$CS_BIN
  echo "$CHECK_NAME: using $BIN, not building" | tee -a "$LOG"
  return 0
fi

# 1. Dependencies and build. With .devdebs, the Debian packages are unpacked into a private root;
#    without it, the machine's own packages (system, pip, conda or modules) must provide them.
CMAKE_DEPS=()
if ls .devdebs/*.deb >/dev/null 2>&1; then
  mkdir -p "$ROOT"
  for f in .devdebs/*.deb; do dpkg-deb -x "$f" "$ROOT" || { echo "$CHECK_NAME: cannot unpack $f" | tee -a "$LOG"; exit 2; }; done
  ARCH_LIB="$ROOT/usr/lib/x86_64-linux-gnu"
  export PATH="$ROOT/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$ARCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The .pc files say prefix=/usr: the sysroot maps their -I/-L flags into $ROOT.
  export PKG_CONFIG_SYSROOT_DIR="$ROOT" PKG_CONFIG_LIBDIR="$ARCH_LIB/pkgconfig:$ROOT/usr/share/pkgconfig"
  CMAKE_DEPS=(-DCMAKE_PREFIX_PATH="$ROOT/usr" -DPKG_CONFIG_EXECUTABLE="$ROOT/usr/bin/pkg-config")
  echo "$CHECK_NAME: dependencies from .devdebs (unpacked into $ROOT)" | tee -a "$LOG"
else
  echo "$CHECK_NAME: no .devdebs/*.deb; using the machine's own packages (run scripts/device/bundle_debs.sh on a Debian machine and carry .devdebs where it has none)" | tee -a "$LOG"
fi
if [ -z "${TORCH_DIR:-}" ]; then
  TORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share", "cmake", "Torch"))' 2>>"$LOG") || {
    echo "$CHECK_NAME: no TORCH_DIR and python3 has no torch" | tee -a "$LOG"
    exit 2
  }
fi
{
  echo "torch cmake: $TORCH_DIR"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  g++ --version | head -1
  cmake --version | head -1
} >>"$LOG" 2>&1
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if ! step configure cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" "${CMAKE_DEPS[@]}"; then
  tail -40 "$LOG"
  exit 1
fi
if ! step build cmake --build "$BUILD" -j "$JOBS" ${DEVICE_BUILD_TARGET:+--target "$DEVICE_BUILD_TARGET"}; then
  grep -E "error|Error" "$LOG" | head -40
  exit 1
fi
BIN="$BUILD/circuitscope"
export CIRCUITSCOPE_SPM_MODULE="$BUILD"

