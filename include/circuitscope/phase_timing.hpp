// Wall-clock seconds per phase of the attribution engine (cs::fwd, cs::bwd, cs::finish, ...), for
// benchmarks.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace circuitscope {

// Phases are summed while enabled; they nest (cs::heads_add is inside cs::post). Process-wide and
// not thread-safe. On CUDA the phases' times are launch times unless the caller synchronizes.
void set_phase_timing(bool on);
// The sums since the last call, by phase name, in the order the phases first ran; resets them.
std::vector<std::pair<std::string, double>> take_phase_times();

}  // namespace circuitscope
