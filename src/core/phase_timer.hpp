// Named phases of the attribution engine, for profiler traces (`bench attribute --profile`) and
// for the sums of include/circuitscope/phase_timing.hpp. Private to the library.
#pragma once
#include <ATen/record_function.h>

#include <chrono>

// A named phase in profiler traces and in take_phase_times; next to nothing when neither is on.
#define CS_SCOPE(n)                                 \
  RECORD_FUNCTION(n, std::vector<c10::IValue>()); \
  const ::circuitscope::detail::PhaseTimer cs_phase_timer_(n)

namespace circuitscope::detail {

bool phase_timing_on();
void add_phase_time(const char* name, double seconds);

class PhaseTimer {
 public:
  explicit PhaseTimer(const char* name) : name_(phase_timing_on() ? name : nullptr) {
    if (name_) t0_ = std::chrono::steady_clock::now();
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;
  ~PhaseTimer() {
    if (name_) add_phase_time(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }

 private:
  const char* name_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace circuitscope::detail
