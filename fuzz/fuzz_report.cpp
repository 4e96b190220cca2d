// libFuzzer entry point of the report target (fuzz/targets.cpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  circuitscope::fuzz_init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return circuitscope::fuzz_report(data, size); }
