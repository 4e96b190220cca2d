// circuitscope tokenize DIR "text" [--json] [--no-special-tokens]
// circuitscope tokenize DIR --input-jsonl F      one {"text", "ids"} line per {"text"} input line
// circuitscope tokenize DIR --decode 1,2,3 [--skip-special-tokens]
#include <spdlog/spdlog.h>

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "circuitscope/json_limits.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct TokenizeOptions {
  std::string dir;
  std::string text;
  bool has_text = false;
  bool json = false;
  bool no_special = false;
  std::string input_jsonl;
  std::string decode_ids;
  bool skip_special = false;
  bool pre_tokens = false;
};

// Printable form for the table: control characters and spaces made visible.
std::string visible(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

// Pads to `width` terminal columns, counting wide (CJK) characters as two.
std::string pad(const std::string& s, size_t width) {
  size_t cols = 0;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    utf8proc_int32_t cp = -1;
    utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    cols += cp >= 0 ? static_cast<size_t>(std::max(0, utf8proc_charwidth(cp))) : 1;
    i += len;
  }
  return cols >= width ? s : s + std::string(width - cols, ' ');
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

int run_batch(const Tokenizer& tok, const TokenizeOptions& o) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (o.input_jsonl != "-") {
    file.open(o.input_jsonl);
    if (!file) throw Error(ErrorCode::kIo, "cannot read --input-jsonl file '" + o.input_jsonl + "'");
    in = &file;
  }
  std::string line;
  size_t n = 0, count = 0;
  while (std::getline(*in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = o.input_jsonl + ":" + std::to_string(n);
    nlohmann::json j;
    check_json_depth(line, where, false, ErrorCode::kInput);
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kInput, where + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      throw Error(ErrorCode::kInput, where + ": expected an object with a string \"text\"");
    }
    std::string text = j["text"].get<std::string>();
    Encoding e;
    try {
      e = tok.encode(text, !o.no_special);
    } catch (const Error& err) {
      throw Error(err.code(), where + ": " + err.what());
    }
    nlohmann::json out;
    out["text"] = text;
    out["ids"] = e.ids;
    std::cout << dump(out) << "\n";
    ++count;
  }
  spdlog::debug("tokenized {} lines", count);
  return 0;
}

int run_decode(const Tokenizer& tok, const TokenizeOptions& o) {
  std::vector<int64_t> ids = parse_id_list(o.decode_ids, "--decode");
  for (int64_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) {
      spdlog::warn("--decode: id {} is outside the vocabulary (size {}); it is skipped", id, tok.vocab_size());
    }
  }
  std::string text = tok.decode(ids, o.skip_special);
  if (o.json) {
    nlohmann::json j;
    j["ids"] = ids;
    j["text"] = text;
    std::cout << dump(j) << "\n";
  } else {
    std::cout << text << "\n";
  }
  return 0;
}

int run_tokenize(const TokenizeOptions& o) {
  int modes = int(o.has_text) + int(!o.input_jsonl.empty()) + int(!o.decode_ids.empty());
  if (modes != 1) throw Error(ErrorCode::kUsage, "tokenize: give exactly one of TEXT, --input-jsonl or --decode");
  auto tok = load_tokenizer(o.dir);
  if (!o.input_jsonl.empty()) return run_batch(*tok, o);
  if (!o.decode_ids.empty()) return run_decode(*tok, o);

  if (o.pre_tokens) {
    for (const PreToken& p : pre_tokenize(*tok, o.text)) {
      std::string range = "[" + std::to_string(p.begin) + "," + std::to_string(p.end) + ")";
      std::printf("%s  %s%s\n", pad(range, 11).c_str(), visible(p.text).c_str(),
                  p.added_id >= 0 ? ("  (added token " + std::to_string(p.added_id) + ")").c_str() : "");
    }
    return 0;
  }
  Encoding e = tok->encode(o.text, !o.no_special);
  if (o.json) {
    nlohmann::json j;
    j["text"] = o.text;
    j["ids"] = e.ids;
    j["tokens"] = e.tokens;
    nlohmann::json offs = nlohmann::json::array();
    for (auto [b, en] : e.offsets) offs.push_back({b, en});
    j["offsets"] = offs;
    std::cout << dump(j) << "\n";
    return 0;
  }
  std::printf("%5s  %8s  %s  %s  %s\n", "#", "id", pad("token", 24).c_str(), pad("bytes", 11).c_str(), "text");
  for (size_t i = 0; i < e.ids.size(); ++i) {
    auto [b, en] = e.offsets[i];
    std::string piece = visible(e.tokens[i]);
    std::string slice = en > b && en <= o.text.size() ? visible(o.text.substr(b, en - b)) : "";
    std::string range = "[" + std::to_string(b) + "," + std::to_string(en) + ")";
    std::printf("%5zu  %8lld  %s  %s  %s%s\n", i, static_cast<long long>(e.ids[i]), pad(piece, 24).c_str(),
                pad(range, 11).c_str(), slice.c_str(), tok->is_special(e.ids[i]) ? "  (special)" : "");
  }
  std::printf("%zu tokens, %zu bytes\n", e.ids.size(), o.text.size());
  return 0;
}

CommandRegistrar reg_cmd_tokenize({"tokenize", "Tokenize text (ids, pieces, byte offsets), a JSONL file of texts, or decode ids",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<TokenizeOptions>();
                        sub->add_option("model_dir", o->dir, "model directory (tokenizer.json or tokenizer.model) or tokenizer file")
                            ->required();
                        sub->add_option("text", o->text, "text to tokenize")->each([o](const std::string&) { o->has_text = true; });
                        sub->add_flag("--json", o->json, "print JSON instead of a table");
                        sub->add_flag("--no-special-tokens", o->no_special,
                                      "do not add the post-processor's special tokens (e.g. Llama-3's BOS)");
                        sub->add_option("--input-jsonl", o->input_jsonl,
                                        "read {\"text\": ...} lines (- for stdin), write {\"text\", \"ids\"} lines");
                        sub->add_option("--decode", o->decode_ids, "decode comma- or space-separated ids instead");
                        sub->add_flag("--skip-special-tokens", o->skip_special, "with --decode: drop special tokens");
                        sub->add_flag("--pre-tokens", o->pre_tokens,
                                      "show the pre-tokens the model receives instead (tokenizer.json only)");
                        return [o] { return run_tokenize(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
