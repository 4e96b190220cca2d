# Sourced by scripts/fuzz.sh and scripts/sanitize.sh (from the repository root): the ASan, UBSan and
# LSan options both use. Options already set in the environment win.
sanitizer_env() {
  local symbolizer=/usr/bin/llvm-symbolizer-14   # from llvm-14; readable stacks
  local asan="detect_leaks=1:symbolize=1:handle_abort=1"
  [ -x "$symbolizer" ] && asan+=":external_symbolizer_path=$symbolizer"
  [ -f fuzz/asan.supp ] && asan+=":suppressions=$PWD/fuzz/asan.supp"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-$asan}"
  local ubsan="print_stacktrace=1:halt_on_error=1"
  [ -f fuzz/ubsan.supp ] && ubsan+=":suppressions=$PWD/fuzz/ubsan.supp"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-$ubsan}"
  [ -f fuzz/lsan.supp ] && export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp}"
  return 0
}
