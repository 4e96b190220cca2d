#include "circuitscope/phase_timing.hpp"

#include <algorithm>

#include "core/phase_timer.hpp"

namespace circuitscope {

namespace {
struct PhaseTimes {
  bool on = false;
  std::vector<std::pair<std::string, double>> sums;
};
PhaseTimes& phase_times() {
  static PhaseTimes p;
  return p;
}
}  // namespace

namespace detail {
bool phase_timing_on() { return phase_times().on; }
void add_phase_time(const char* name, double seconds) {
  auto& sums = phase_times().sums;
  auto it = std::find_if(sums.begin(), sums.end(), [&](const auto& p) { return p.first == name; });
  if (it == sums.end())
    sums.emplace_back(name, seconds);
  else
    it->second += seconds;
}
}  // namespace detail

void set_phase_timing(bool on) { phase_times().on = on; }

std::vector<std::pair<std::string, double>> take_phase_times() {
  std::vector<std::pair<std::string, double>> out;
  out.swap(phase_times().sums);
  return out;
}

}  // namespace circuitscope
