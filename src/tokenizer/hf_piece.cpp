#include "tokenizer/hf_pipeline.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope::hf {

Span Piece::orig_char(size_t i) const {
  if (!align.empty()) return align[i];
  // Unchanged copy of the input: the char around byte i, found from the UTF-8 structure.
  size_t s = i;
  while (s > 0 && is_utf8_continuation(static_cast<unsigned char>(text[s]))) --s;
  size_t len = utf8_seq_len(static_cast<unsigned char>(text[s]));
  return {static_cast<uint32_t>(base + s), static_cast<uint32_t>(base + s + len)};
}

Span Piece::orig_span(size_t b, size_t e) const {
  if (text.empty()) return {base, base};
  if (b >= e) {
    if (b >= text.size()) {
      uint32_t end = orig_char(text.size() - 1).end;
      return {end, end};
    }
    uint32_t at = orig_char(b).begin;
    return {at, at};
  }
  return {orig_char(b).begin, orig_char(e - 1).end};
}

Piece Piece::slice(size_t b, size_t e) const {
  Piece p;
  p.text.assign(text, b, e - b);
  p.byte_level = byte_level;
  if (align.empty()) {
    p.base = static_cast<uint32_t>(base + b);
  } else {
    p.align.assign(align.begin() + b, align.begin() + e);
    p.base = e > b ? align[b].begin : base;
  }
  return p;
}

void Piece::materialize_byte_level() {
  if (!byte_level) return;
  const auto& strs = byte_level_strings();
  std::string t;
  std::vector<Span> a;
  t.reserve(text.size() * 2);
  a.reserve(text.size() * 2);
  for (size_t i = 0; i < text.size(); ++i) {
    const std::string& s = strs[static_cast<unsigned char>(text[i])];
    Span o = orig_char(i);
    t += s;
    a.insert(a.end(), s.size(), o);
  }
  text.swap(t);
  align.swap(a);
  byte_level = false;
}

void PieceBuilder::copy(size_t b, size_t e) {
  out_.text.append(src_.text, b, e - b);
  if (!src_.align.empty()) {
    out_.align.insert(out_.align.end(), src_.align.begin() + b, src_.align.begin() + e);
    return;
  }
  size_t i = b;
  while (i < e) {
    Span o = src_.orig_char(i);
    size_t char_end = o.end - src_.base;  // identity: input offsets are text offsets + base
    size_t stop = char_end < e ? char_end : e;
    out_.align.insert(out_.align.end(), stop - i, o);
    i = stop;
  }
}

void PieceBuilder::insert(std::string_view s, Span orig) {
  out_.text.append(s);
  out_.align.insert(out_.align.end(), s.size(), orig);
}

}  // namespace circuitscope::hf
