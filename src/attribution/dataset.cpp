#include "circuitscope/dataset.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"

namespace circuitscope {

namespace {

std::vector<int64_t> id_array(const nlohmann::json& j, const char* key, int64_t vocab) {
  if (!j.contains(key)) throw std::runtime_error(std::string("missing key '") + key + "'");
  const auto& a = j.at(key);
  if (!a.is_array() || a.empty()) throw std::runtime_error(std::string("'") + key + "' must be a non-empty array of token ids");
  std::vector<int64_t> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number_integer())
      throw std::runtime_error(std::string("'") + key + "'[" + std::to_string(i) + "] is not an integer");
    const int64_t v = a[i].get<int64_t>();
    if (v < 0 || v >= vocab)
      throw std::runtime_error(std::string("'") + key + "'[" + std::to_string(i) + "] = " + std::to_string(v) +
                               " is out of range: vocab_size is " + std::to_string(vocab));
    out.push_back(v);
  }
  return out;
}

int64_t id_value(const nlohmann::json& j, const char* key, int64_t vocab) {
  const auto& v = j.at(key);
  if (!v.is_number_integer()) throw std::runtime_error(std::string("'") + key + "' is not an integer");
  const int64_t id = v.get<int64_t>();
  if (id < 0 || id >= vocab)
    throw std::runtime_error(std::string("'") + key + "' = " + std::to_string(id) + " is out of range: vocab_size is " +
                             std::to_string(vocab));
  return id;
}

PairExample parse_line(const std::string& text, const PairReadOptions& o) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) throw std::runtime_error("expected a JSON object");
  PairExample ex;
  ex.clean_ids = id_array(j, "clean_ids", o.vocab_size);
  ex.corrupted_ids = id_array(j, "corrupted_ids", o.vocab_size);
  if (ex.clean_ids.size() != ex.corrupted_ids.size())
    throw std::runtime_error("clean_ids has " + std::to_string(ex.clean_ids.size()) + " tokens but corrupted_ids has " +
                             std::to_string(ex.corrupted_ids.size()) + "; pairs of unequal length are not supported yet");
  for (const char* key : {"answer_id", "wrong_id"}) {
    if (!j.contains(key)) {
      if (o.require_answer) throw std::runtime_error(std::string("missing key '") + key + "' (needed by the metric)");
      continue;
    }
    (key[0] == 'a' ? ex.answer_id : ex.wrong_id) = id_value(j, key, o.vocab_size);
  }
  return ex;
}

}  // namespace

PairDataset read_pairs_jsonl(const std::string& path, const PairReadOptions& opts) {
  if (opts.vocab_size <= 0) throw Error(ErrorCode::kInternal, "read_pairs_jsonl: vocab_size not set");
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kIo, "cannot open dataset '" + path + "'");
  PairDataset ds;
  ds.path = path;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      PairExample ex = parse_line(text, opts);
      ex.line = line;
      ds.examples.push_back(std::move(ex));
    } catch (const std::runtime_error& e) {
      const std::string msg = path + ":" + std::to_string(line) + ": " + e.what();
      if (!opts.skip_bad) throw Error(ErrorCode::kInput, msg);
      spdlog::warn("skipping {}", msg);
      ++ds.skipped;
    }
  }
  if (in.bad()) throw Error(ErrorCode::kIo, "read error in dataset '" + path + "'");
  if (ds.examples.empty())
    throw Error(ErrorCode::kInput, "dataset '" + path + "' has no usable pairs (" + std::to_string(ds.skipped) + " skipped)");
  return ds;
}

}  // namespace circuitscope
