// Normalizers of tokenizer.json: NFC/NFD/NFKC/NFKD, Lowercase, Replace, Prepend, Strip, Sequence.
#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_pipeline.hpp"
#include "tokenizer/hf_regex.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope::hf {
namespace {

enum class Form { kNFC, kNFD, kNFKC, kNFKD };

// Unicode normalization through utf8proc, chunk by chunk so the alignment stays fine-grained: chunks
// start at characters that never interact with what precedes them (a starter that cannot compose
// backwards and whose decomposition also begins with such a starter), so normalizing chunks separately
// equals normalizing the whole text. A chunk the normalizer changes maps, as a whole, to its input range.
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(Form f) : form_(f) {
    compose_ = f == Form::kNFC || f == Form::kNFKC;
    compat_ = f == Form::kNFKC || f == Form::kNFKD;
    options_ = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | (compose_ ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                                              (compat_ ? UTF8PROC_COMPAT : 0));
  }

  void normalize(Piece& p) const override {
    const std::string& t = p.text;
    size_t n = t.size();
    size_t i = 0;
    while (i < n && static_cast<unsigned char>(t[i]) < 0x80) ++i;
    if (i == n) return;  // ASCII is invariant under every form
    // Back up to the chunk that contains the first non-ASCII char (it may follow an ASCII starter).
    size_t chunk_start = i > 0 ? i - 1 : 0;
    bool building = false;
    PieceBuilder b(p);
    size_t pos = chunk_start;
    while (pos < n) {
      // Chunk [pos, end): one boundary char then non-boundary chars.
      size_t end = pos;
      char32_t first = next_code_point(t, end);
      size_t chars = 1;
      while (end < n) {
        size_t k = end;
        char32_t c = next_code_point(t, k);
        if (is_boundary(c)) break;
        end = k;
        ++chars;
      }
      bool stable = chars == 1 && is_stable_alone(first);
      std::string normalized;
      if (!stable) {
        normalized = map(std::string_view(t).substr(pos, end - pos));
        stable = normalized.size() == end - pos && t.compare(pos, end - pos, normalized) == 0;
      }
      if (!stable && !building) {
        building = true;
        b.copy(0, pos);
      }
      if (building) {
        if (stable) {
          b.copy(pos, end);
        } else {
          b.insert(normalized, p.orig_span(pos, end));
        }
      }
      pos = end;
    }
    if (building) p = b.take();
  }

 private:
  bool is_boundary(char32_t c) const {
    if (c < 0x80) return true;
    const utf8proc_property_t* prop = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
    char32_t first = c;
    if (prop->decomp_seqindex != UINT16_MAX) {
      utf8proc_int32_t buf[32];
      int last_bc = 0;
      utf8proc_ssize_t k = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 32,
                                                   static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | (compat_ ? UTF8PROC_COMPAT : 0)),
                                                   &last_bc);
      if (k > 0 && k <= 32) {
        first = static_cast<char32_t>(buf[0]);
        prop = utf8proc_get_property(buf[0]);
      }
    }
    if (prop->combining_class != 0) return false;
    if (prop->comb_index != UINT16_MAX && prop->comb_index >= 0x8000) return false;  // composes backwards
    // Hangul vowel and trailing jamo compose algorithmically with what precedes them.
    if ((first >= 0x1161 && first <= 0x1175) || (first >= 0x11A8 && first <= 0x11C2)) return false;
    return true;
  }

  // A lone char with no decomposition mapping is left as it is by every form (Hangul syllables only
  // by the composing ones).
  bool is_stable_alone(char32_t c) const {
    if (c < 0x80) return true;
    if (!compose_ && c >= 0xAC00 && c <= 0xD7A3) return false;
    return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->decomp_seqindex == UINT16_MAX;
  }

  std::string map(std::string_view s) const {
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                        static_cast<utf8proc_ssize_t>(s.size()), &out, options_);
    if (len < 0) {  // cannot happen on valid UTF-8; keep the text rather than fail
      std::free(out);
      return std::string(s);
    }
    std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(len));
    std::free(out);
    return r;
  }

  Form form_;
  bool compose_ = true, compat_ = false;
  utf8proc_option_t options_;
};

// Rust's char::to_lowercase: the simple mapping, except U+0130 whose full lowercase is two chars.
class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(Piece& p) const override {
    const std::string& t = p.text;
    size_t n = t.size(), i = 0;
    bool building = false;
    PieceBuilder b(p);
    std::string repl;
    while (i < n) {
      size_t start = i;
      char32_t c = next_code_point(t, i);
      char32_t lc = c;
      repl.clear();
      if (c < 0x80) {
        if (c >= 'A' && c <= 'Z') lc = c + 32;
      } else if (c == 0x130) {
        repl = "i\xCC\x87";
      } else {
        lc = static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
      }
      bool changed = !repl.empty() || lc != c;
      if (changed && !building) {
        building = true;
        b.copy(0, start);
      }
      if (!building) continue;
      if (!changed) {
        b.copy(start, i);
      } else {
        if (repl.empty()) append_utf8(repl, lc);
        b.insert(repl, p.orig_span(start, i));
      }
    }
    if (building) p = b.take();
  }
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const json& j, const std::string& path)
      : pattern_(member(j, "pattern", path), path + ".pattern"), content_(get_string(j, "content", path)) {}

  void normalize(Piece& p) const override {
    thread_local std::vector<std::pair<size_t, size_t>> matches;
    matches.clear();
    pattern_.find_all(p.text, matches);
    if (matches.empty()) return;
    PieceBuilder b(p);
    size_t last = 0;
    for (auto [s, e] : matches) {
      b.copy(last, s);
      // The replacement maps to the input range of what it replaces.
      b.insert(content_, p.orig_span(s, e));
      last = e;
    }
    b.copy(last, p.text.size());
    p = b.take();
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string s) : prepend_(std::move(s)) {}
  void normalize(Piece& p) const override {
    if (p.text.empty()) return;
    PieceBuilder b(p);
    b.insert(prepend_, p.orig_char(0));  // as Hugging Face: aligned with the first char
    b.copy(0, p.text.size());
    p = b.take();
  }

 private:
  std::string prepend_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(Piece& p) const override {
    const std::string& t = p.text;
    size_t b = 0, e = t.size();
    if (left_) {
      while (b < e) {
        size_t k = b;
        if (!is_unicode_whitespace(next_code_point(t, k))) break;
        b = k;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && is_utf8_continuation(static_cast<unsigned char>(t[k]))) --k;
        size_t kk = k;
        if (!is_unicode_whitespace(next_code_point(t, kk))) break;
        e = k;
      }
    }
    if (b != 0 || e != t.size()) p = p.slice(b, e);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(Piece& p) const override {
    for (const auto& n : items_) n->normalize(p);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& path) {
  std::string type = component_type(j, path);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(Form::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(Form::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(Form::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(Form::kNFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Replace") return std::make_unique<ReplaceNormalizer>(j, path);
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(get_string(j, "prepend", path));
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(get_bool_or(j, "strip_left", true, path),
                                             get_bool_or(j, "strip_right", true, path));
  }
  if (type == "Sequence") {
    const json& arr = get_array(j, "normalizers", path);
    std::vector<std::unique_ptr<Normalizer>> items;
    for (size_t i = 0; i < arr.size(); ++i) {
      items.push_back(make_normalizer(arr[i], path + ".normalizers[" + std::to_string(i) + "]"));
    }
    return std::make_unique<SequenceNormalizer>(std::move(items));
  }
  unsupported_type("normalizer", type, path + ".type");
}

}  // namespace circuitscope::hf
