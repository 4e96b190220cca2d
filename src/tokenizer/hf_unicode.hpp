// UTF-8 and Unicode helpers for the tokenizer.json implementation (internal).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace circuitscope::hf {

// Byte length of the UTF-8 sequence a lead byte starts (1 for continuation/invalid bytes, so loops advance).
inline size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return lead < 0xC0 ? 1 : 2;
  if (lead < 0xF0) return 3;
  return 4;
}

inline bool is_utf8_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Decodes the code point at s[i] of valid UTF-8 and advances i past it.
inline char32_t next_code_point(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  unsigned char c = p[0];
  if (c < 0x80) {
    i += 1;
    return c;
  }
  if (c < 0xE0) {
    i += 2;
    return (char32_t(c & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (c < 0xF0) {
    i += 3;
    return (char32_t(c & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  i += 4;
  return (char32_t(c & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// Code point of the last char of valid UTF-8 text (0 when empty).
char32_t last_code_point(std::string_view s);

void append_utf8(std::string& out, char32_t cp);

// Byte offset of the first ill-formed UTF-8 sequence (overlongs, surrogates and values above U+10FFFF
// are ill-formed), or npos when the whole text is valid.
size_t find_invalid_utf8(std::string_view s);

// Well-formed UTF-8 from arbitrary bytes: each maximal ill-formed subsequence becomes one U+FFFD, the
// rule Rust's String::from_utf8_lossy (and so the Hugging Face decoders) follows.
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (Rust char::is_whitespace, regex \s).
bool is_unicode_whitespace(char32_t c);
// Rust regex \w: alphabetic, marks, decimal digits, connector punctuation (approximated by category).
bool is_word_char(char32_t c);

// The GPT-2 byte-level alphabet: each byte stands for one printable code point.
const std::array<char32_t, 256>& byte_level_chars();
// The UTF-8 spelling of each byte's stand-in.
const std::array<std::string, 256>& byte_level_strings();
// The byte a byte-level code point stands for, or -1.
int byte_level_byte(char32_t c);

}  // namespace circuitscope::hf
