// The parser the sweep_spec fuzz target hands a SWEEP.json's "attribute" block to.
//
// The CLI parses that block with `attribute`'s own CLI11 options (parse_attribute_block in
// apps/circuitscope/cmd_sweep.cpp). That code lives in the command's sources, not in the library,
// and cannot be built with clang 14 (apps/circuitscope/circuit_options.cpp captures a structured
// binding in a lambda, which clang accepts from version 16 on). So the fuzz target uses this small
// stand-in: the same keys, validated the same way (the library's parse_* functions and
// AttributeSpec::validate), without CLI11.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "circuitscope/sweep.hpp"

namespace circuitscope {

// Keys (with '-' or '_'): method, metric, kv_edges, ig_steps, batch_size, loss, top_n, threshold,
// greedy, simplify, selection, signed, level, intervention, mean_source, sizes, skip_bad, tokenizer,
// chat, think, system, dtype, device. Error(kUsage/kFormat) naming the key otherwise.
sweep::AttributeBlock basic_attribute_parser(const nlohmann::json& options, const std::string& origin);

}  // namespace circuitscope
