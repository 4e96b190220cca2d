// Progress lines with elapsed time and ETA for long commands (stderr, through spdlog).
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

#include "circuitscope/runtime.hpp"  // format_duration

namespace circuitscope::app {

// Logs "LABEL: done/total UNIT | elapsed, ETA" at most every few seconds, and always at the end.
class EtaLog {
 public:
  EtaLog(std::string label, std::string unit);
  void operator()(size_t done, size_t total);

 private:
  std::string label_, unit_;
  std::chrono::steady_clock::time_point t0_, last_;
};

}  // namespace circuitscope::app
