// Progress lines with elapsed time and ETA for long commands (stderr, through spdlog).
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace circuitscope::app {

// "4.2 s", "37 s", "3 min 5 s".
std::string fmt_secs(double s);

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
