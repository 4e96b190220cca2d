// libFuzzer entry point of the dataset_line target (fuzz/targets.cpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  circuitscope::fuzz_init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return circuitscope::fuzz_dataset_line(data, size); }
