#include "circuitscope/dataset.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/sha256.hpp"
#include "circuitscope/tokenizer.hpp"

namespace circuitscope {

namespace {

// The reason a line is bad (read_pairs_jsonl prefixes PATH:LINE).
[[noreturn]] void bad_line(const std::string& reason) { throw Error(ErrorCode::kInput, reason); }

// Longer lines are refused before parsing: no real pair comes near it, and parsing a huge line costs
// several times its size in memory.
constexpr size_t kMaxLineBytes = 16u << 20;

void check_id(int64_t v, const std::string& what, int64_t vocab) {
  if (v < 0 || v >= vocab)
    bad_line(what + " = " + std::to_string(v) + " is out of range: vocab_size is " + std::to_string(vocab));
}

std::vector<int64_t> id_array(const nlohmann::json& j, const char* key, int64_t vocab, bool allow_empty = false) {
  if (!j.contains(key)) bad_line(std::string("missing key '") + key + "'");
  const auto& a = j.at(key);
  if (!a.is_array() || (a.empty() && !allow_empty))
    bad_line(std::string("'") + key + "' must be a non-empty array of token ids");
  std::vector<int64_t> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number_integer()) bad_line(std::string("'") + key + "'[" + std::to_string(i) + "] is not an integer");
    const int64_t v = a[i].get<int64_t>();
    check_id(v, std::string("'") + key + "'[" + std::to_string(i) + "]", vocab);
    out.push_back(v);
  }
  return out;
}

int64_t id_value(const nlohmann::json& j, const char* key, int64_t vocab) {
  const auto& v = j.at(key);
  if (!v.is_number_integer()) bad_line(std::string("'") + key + "' is not an integer");
  const int64_t id = v.get<int64_t>();
  check_id(id, std::string("'") + key + "'", vocab);
  return id;
}

const std::string& text_value(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_string()) bad_line(std::string("'") + key + "' is not a string");
  return v.get_ref<const std::string&>();
}

std::vector<int64_t> encode_checked(const Tokenizer& tok, const std::string& text, bool special, const char* key,
                                    int64_t vocab) {
  std::vector<int64_t> ids = tok.encode(text, special).ids;
  for (size_t i = 0; i < ids.size(); ++i)
    check_id(ids[i], std::string("token ") + std::to_string(i) + " of '" + key + "'", vocab);
  return ids;
}

void append(std::vector<int64_t>& dst, const std::vector<int64_t>& src) { dst.insert(dst.end(), src.begin(), src.end()); }

}  // namespace

PairExample parse_pair_line(const std::string& text, const PairReadOptions& o) {
  if (text.size() > kMaxLineBytes)
    bad_line("line is " + std::to_string(text.size()) + " bytes; the limit is 16 MiB");
  try {
    check_json_depth(text, "line");
  } catch (const Error& e) {
    bad_line(e.what());  // a bad line, like any other (kInput)
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    bad_line(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad_line("expected a JSON object");
  const int64_t V = o.vocab_size;
  PairExample ex;
  const bool text_form = j.contains("clean") || j.contains("corrupted");
  if (text_form) {
    for (const char* k : {"clean_ids", "corrupted_ids", "answer_id", "wrong_id"})
      if (j.contains(k)) bad_line(std::string("mixes the text form (clean/corrupted) with the token form ('") + k + "')");
    for (const char* k : {"clean", "corrupted"})
      if (!j.contains(k)) bad_line(std::string("missing key '") + k + "'");
    if (!o.tokenizer) bad_line("text-form pair but no tokenizer (the model folder has none; give --tokenizer DIR)");
    const Tokenizer& tok = *o.tokenizer;
    for (const char* k : {"clean", "corrupted"}) {
      const std::string& t = text_value(j, k);
      std::vector<int64_t> ids = o.render_prompt ? encode_checked(tok, o.render_prompt(t), false, k, V)
                                                 : encode_checked(tok, t, true, k, V);
      if (ids.empty()) bad_line(std::string("'") + k + "' encodes to no tokens");
      (k[1] == 'l' ? ex.clean_ids : ex.corrupted_ids) = std::move(ids);
    }
    const bool has_a = j.contains("answer"), has_w = j.contains("wrong");
    if (has_a != has_w) bad_line(std::string("missing key '") + (has_a ? "wrong" : "answer") + "'");
    if (has_a) {
      int64_t first[2];
      for (int i = 0; i < 2; ++i) {
        const char* k = i == 0 ? "answer" : "wrong";
        const std::string& t = text_value(j, k);
        const std::vector<int64_t> ids = encode_checked(tok, t, false, k, V);
        if (ids.empty()) bad_line(std::string("'") + k + "' encodes to no tokens");
        first[i] = ids[0];
      }
      if (first[0] == first[1])
        bad_line("'answer' (" + text_value(j, "answer") + ") and 'wrong' (" + text_value(j, "wrong") +
                      ") start with the same token " + std::to_string(first[0]) + " (" + tok.id_to_token(first[0]) +
                      "); the metric compares first tokens");
      ex.answer_id = first[0];
      ex.wrong_id = first[1];
    }
    const bool has_cc = j.contains("clean_continuation"), has_xc = j.contains("corrupted_continuation");
    if (has_cc != has_xc)
      bad_line(std::string("missing key '") + (has_cc ? "corrupted_continuation" : "clean_continuation") + "'");
    if (has_cc) {
      const std::vector<int64_t> cc = encode_checked(tok, text_value(j, "clean_continuation"), false, "clean_continuation", V);
      const std::vector<int64_t> xc =
          encode_checked(tok, text_value(j, "corrupted_continuation"), false, "corrupted_continuation", V);
      if (cc.empty()) bad_line("'clean_continuation' encodes to no tokens");
      append(ex.clean_ids, cc);
      append(ex.corrupted_ids, xc);
      ex.n_supervised = static_cast<int64_t>(cc.size());
    }
  } else {
    ex.clean_ids = id_array(j, "clean_ids", V);
    ex.corrupted_ids = id_array(j, "corrupted_ids", V);
    for (const char* key : {"answer_id", "wrong_id"})
      if (j.contains(key)) (key[0] == 'a' ? ex.answer_id : ex.wrong_id) = id_value(j, key, V);
    if ((ex.answer_id >= 0) != (ex.wrong_id >= 0))
      bad_line(std::string("missing key '") + (ex.answer_id >= 0 ? "wrong_id" : "answer_id") + "'");
    if (ex.answer_id >= 0 && ex.answer_id == ex.wrong_id)
      bad_line("'answer_id' and 'wrong_id' are the same token " + std::to_string(ex.answer_id));
    const bool has_cc = j.contains("clean_continuation_ids"), has_xc = j.contains("corrupted_continuation_ids");
    if (has_cc != has_xc)
      bad_line(std::string("missing key '") + (has_cc ? "corrupted_continuation_ids" : "clean_continuation_ids") + "'");
    if (has_cc) {
      const std::vector<int64_t> cc = id_array(j, "clean_continuation_ids", V);
      append(ex.clean_ids, cc);
      append(ex.corrupted_ids, id_array(j, "corrupted_continuation_ids", V, /*allow_empty=*/true));
      ex.n_supervised = static_cast<int64_t>(cc.size());
    }
  }
  if (o.require_answer && ex.answer_id < 0)
    bad_line(text_form ? "missing keys 'answer' and 'wrong' (needed by the metric)"
                            : "missing key 'answer_id' (needed by the metric)");
  if (o.require_continuation && ex.n_supervised == 0)
    bad_line(text_form ? "missing keys 'clean_continuation' and 'corrupted_continuation' (needed by the metric)"
                            : "missing key 'clean_continuation_ids' (needed by the metric)");
  return ex;
}

PairDataset read_pairs_jsonl(const std::string& path, const PairReadOptions& opts) {
  if (opts.vocab_size <= 0) throw Error(ErrorCode::kInternal, "read_pairs_jsonl: vocab_size not set");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot open dataset '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, "read error in dataset '" + path + "'");
  const std::string bytes = ss.str();
  PairDataset ds;
  ds.path = path;
  ds.sha256 = sha256_hex(bytes);
  std::istringstream lines(bytes);
  std::string text;
  int64_t line = 0;
  while (std::getline(lines, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      PairExample ex = parse_pair_line(text, opts);
      ex.line = line;
      ds.examples.push_back(std::move(ex));
    } catch (const std::exception& e) {
      // Tokenizer and chat-template errors are about this line too (e.g. a template that raises).
      const std::string msg = path + ":" + std::to_string(line) + ": " + e.what();
      if (!opts.skip_bad) throw Error(ErrorCode::kInput, msg);
      spdlog::warn("skipping {}", msg);
      ++ds.skipped;
    }
  }
  if (ds.examples.empty() && !opts.allow_empty)
    throw Error(ErrorCode::kInput, "dataset '" + path + "' has no usable pairs (" + std::to_string(ds.skipped) + " skipped)");
  return ds;
}

}  // namespace circuitscope
