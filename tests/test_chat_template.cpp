// Chat templates against references rendered by Jinja2 (see tests/data/chat/README.md), plus
// tokenizer_config.json handling and the chat-format command.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"

using circuitscope::ChatMessage;
using circuitscope::Error;
using circuitscope::ErrorCode;
using nlohmann::ordered_json;

namespace {

const std::string kChatDir = std::string(CS_TEST_DATA_DIR) + "/chat";

std::vector<ordered_json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<ordered_json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(ordered_json::parse(line));
  return rows;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<bool> thinking_of(const ordered_json& row) {
  if (!row.contains("enable_thinking")) return std::nullopt;
  return row["enable_thinking"].get<bool>();
}

}  // namespace

TEST_CASE("Qwen3 chat template matches Jinja2 on every reference row", "[chat]") {
  auto cfg = circuitscope::load_tokenizer_config(kChatDir + "/qwen3");
  REQUIRE(cfg.chat_template.has_value());
  auto rows = read_jsonl(kChatDir + "/qwen3/chat_template_reference.jsonl");
  REQUIRE(rows.size() == 24);
  int matched = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    INFO("row " << i);
    std::string got = circuitscope::apply_chat_template_json(cfg, row["messages"], row["add_generation_prompt"].get<bool>(),
                                                             thinking_of(row));
    CHECK(got == row["text"].get<std::string>());
    matched += got == row["text"].get<std::string>();
  }
  CHECK(matched == 24);
}
