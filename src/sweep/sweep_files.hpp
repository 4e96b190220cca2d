// The files of a sweep folder (layout in include/circuitscope/sweep.hpp), shared by running,
// status and merge.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "circuitscope/sweep.hpp"

namespace circuitscope::sweep {

std::string unit_dir(const std::string& dir, const Checkpoint& c);
std::string unit_result_path(const std::string& dir, const Unit& u);
std::string unit_lock_path(const std::string& dir, const Unit& u);
std::string unit_pairs_path(const std::string& dir, const Unit& u);  // pairs built in the unit
std::string unit_scores_path(const std::string& dir, const Unit& u);  // its mean edge scores, float32
std::string chunk_data_path(const std::string& dir, const Unit& u);  // fixed pairs, chunk K
std::string chunk_text(const Plan& plan, const Unit& u);             // its items, one a line
// A finished unit's record; nullopt when absent or unreadable.
std::optional<nlohmann::json> read_unit_result(const std::string& path);
std::string utc_now();

}  // namespace circuitscope::sweep
