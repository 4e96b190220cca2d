// The real Qwen3 tokenizer.json against reference ids, plus decode/normalize round trips.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"

using namespace circuitscope;

namespace {

const std::string kQwenDir = std::string(CS_TEST_DATA_DIR) + "/tokenizers/qwen3";

const Tokenizer& qwen() {
  static std::unique_ptr<Tokenizer> tok = load_tokenizer(kQwenDir);
  return *tok;
}

struct RefLine {
  std::string text;
  std::vector<int64_t> ids;
};

std::vector<RefLine> reference() {
  std::ifstream in(kQwenDir + "/reference.jsonl");
  REQUIRE(in);
  std::vector<RefLine> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int64_t>>()});
  }
  return out;
}

void append_utf8(std::string& s, char32_t c) {
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xF0 | (c >> 18));
    s += char(0x80 | ((c >> 12) & 0x3F));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
}

// Random text mixing the scripts and shapes that stress a byte-level BPE.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::vector<char32_t>> pools = {
      {U'a', U'b', U'e', U'x', U'T', U'Z', U'.', U',', U'!', U'?', U'\'', U'"', U'(', U')', U'{', U'}', U'\\', U'$',
       U'_', U'-', U'+', U'=', U'<', U'>', U'/', U'*', U'#'},
      {0xE9, 0xFC, 0xDF, 0xF1, 0xC0, 0xA9, 0xB5, 0xBD, 0xA0, 0xD7},                         // Latin-1
      {0x4E2D, 0x6587, 0x5B57, 0x3042, 0x30AB, 0xAC00, 0xD55C, 0x3002, 0xFF0C, 0x9F8D},     // CJK, kana, Hangul
      {0x1F600, 0x1F916, 0x1F680, 0x2764, 0xFE0F, 0x200D, 0x1F1F0, 0x1F1F7, 0x1F44D},       // emoji, ZWJ, flags
      {0x301, 0x308, 0x327, 0x30A, 0x1100, 0x1161, 0x11A8},                                 // combining, jamo
      {U' ', U' ', U'\t', U'\n', U'\r', 0x3000, 0x2003, 0x85},                              // whitespace
      {U'0', U'1', U'2', U'3', U'4', U'5', U'6', U'7', U'8', U'9', 0x663, 0xFF11},          // digits
      {0xFB01, 0x212B, 0x2126, 0x1E9B, 0xFF21, 0x2460, 0x3300, 0xFE64},                     // NFC/NFKC-sensitive
  };
  std::string s;
  int len = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < len; ++i) {
    const auto& pool = pools[std::uniform_int_distribution<size_t>(0, pools.size() - 1)(rng)];
    char32_t c = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
    int repeat = std::uniform_int_distribution<int>(0, 9)(rng) == 0 ? std::uniform_int_distribution<int>(2, 6)(rng) : 1;
    for (int r = 0; r < repeat; ++r) append_utf8(s, c);
  }
  return s;
}

}  // namespace

TEST_CASE("Qwen3 tokenizer.json matches the reference ids on every line", "[tokenizer]") {
  const auto ref = reference();
  REQUIRE(ref.size() == 176);
  size_t matched = 0;
  for (const auto& r : ref) {
    Encoding e = qwen().encode(r.text);
    INFO("text: " << r.text);
    CHECK(e.ids == r.ids);
    if (e.ids == r.ids) ++matched;
  }
  CHECK(matched == ref.size());
}

TEST_CASE("Qwen3 decode(encode(x)) == normalize(x) on the reference corpus", "[tokenizer]") {
  for (const auto& r : reference()) {
    Encoding e = qwen().encode(r.text);
    INFO("text: " << r.text);
    CHECK(qwen().decode(e.ids) == qwen().normalize(r.text));
  }
}

TEST_CASE("Qwen3 decode(encode(x)) == normalize(x) on seeded random Unicode", "[tokenizer]") {
  std::mt19937 rng(20241125);
  for (int i = 0; i < 3000; ++i) {
    std::string s = random_text(rng);
    Encoding e = qwen().encode(s);
    INFO("case " << i << ": " << s);
    REQUIRE(qwen().decode(e.ids) == qwen().normalize(s));
    // Offsets are non-decreasing, inside the text, and every token covers something.
    size_t prev = 0;
    for (auto [b, en] : e.offsets) {
      REQUIRE(b <= en);
      REQUIRE(en <= s.size());
      REQUIRE(b >= prev - std::min(prev, size_t(4)));  // tokens of one char share its range
      prev = b;
    }
  }
}

TEST_CASE("Qwen3 encode is safe to call from several threads at once", "[tokenizer]") {
  const auto ref = reference();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = t; i < ref.size(); i += 1 + t % 2) {
          if (qwen().encode(ref[i].text).ids != ref[i].ids) ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("Qwen3 vocabulary lookups - special tokens and offsets", "[tokenizer]") {
  const Tokenizer& t = qwen();
  CHECK(t.vocab_size() == 151669);
  CHECK(t.token_to_id("<|im_end|>") == 151645);
  CHECK(t.token_to_id("Hello") == 9707);
  CHECK_FALSE(t.token_to_id("definitely not a token").has_value());
  CHECK(t.id_to_token(151645) == "<|im_end|>");
  CHECK(t.id_to_token(1879) == "Ġworld");
  CHECK(t.is_special(151645));
  CHECK_FALSE(t.is_special(151657));  // <tool_call> is an added token but not special
  CHECK_FALSE(t.is_special(9707));
  CHECK_THROWS_AS(t.id_to_token(151669), Error);
  Encoding e = t.encode("Hello world<|im_end|>");
  CHECK(e.ids == std::vector<int64_t>{9707, 1879, 151645});
  CHECK(e.offsets == std::vector<std::pair<size_t, size_t>>{{0, 5}, {5, 11}, {11, 21}});
  CHECK(t.decode(e.ids, true) == "Hello world");
  CHECK(t.encode("").ids.empty());
  // NFC: e + U+0301 is tokenized as é; the token covers both input chars.
  Encoding c = t.encode("e\u0301");
  CHECK(c.ids == t.encode("\u00e9").ids);
  CHECK(c.offsets.back().second == 3);
}
