// Fast reading of tokenizer.json (internal): one SAX pass that builds the JSON tree for everything
// except model.vocab and model.merges, which it collects straight into flat tables. Those two hold
// ~300k strings in a real tokenizer; as a JSON tree they cost most of the load time.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace circuitscope::hf {

struct ModelTables {
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, int64_t>> vocab;        // in file order
  std::vector<std::pair<std::string, std::string>> merges;   // "a b" strings already split
  // The first malformed entry, reported (kFormat) when the model is built.
  std::string error_path, error_message;
};

// Parses tokenizer.json. Where model.vocab is an object and model.merges an array, the tree holds null
// in their place and `tables` holds their content. Throws Error(kFormat) naming `origin` for bad JSON.
nlohmann::json parse_tokenizer_json(std::string_view text, const std::string& origin, ModelTables& tables);

}  // namespace circuitscope::hf
