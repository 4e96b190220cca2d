// Pre-tokenizers of tokenizer.json: Split, ByteLevel, Digits, Metaspace, Sequence.
#include <algorithm>
#include <memory>

#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_pipeline.hpp"
#include "tokenizer/hf_regex.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope::hf {
namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const json& j, const std::string& path) {
  std::string b = get_string(j, "behavior", path);
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  format_error(path + ".behavior", "unknown split behavior '" + b +
                                       "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

struct Seg {
  size_t b, e;
  bool flag;  // is_match before the behavior is applied, `remove` after
};

using Matches = std::vector<std::pair<size_t, size_t>>;

// Hugging Face NormalizedString::split: the matches and the gaps between them cover the text; the
// behavior decides what is kept and what is glued together; empty results are dropped.
void split_piece(Piece& p, const Matches& matches, bool invert, Behavior behavior, std::vector<Piece>& out) {
  size_t n = p.text.size();
  if (n == 0) return;
  thread_local std::vector<Seg> segs, res;
  segs.clear();
  res.clear();
  size_t prev = 0;
  for (auto [s, e] : matches) {
    if (prev != s) segs.push_back({prev, s, invert});
    segs.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != n) segs.push_back({prev, n, invert});

  switch (behavior) {
    case Behavior::kIsolated:
      for (const Seg& s : segs) res.push_back({s.b, s.e, false});
      break;
    case Behavior::kRemoved:
      res = segs;
      break;
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const Seg& s : segs) {
        if (s.flag == previous_match && !res.empty()) {
          res.back().e = s.e;
        } else {
          res.push_back({s.b, s.e, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Seg& s : segs) {
        if (s.flag && !previous_match && !res.empty()) {
          res.back().e = s.e;
        } else {
          res.push_back({s.b, s.e, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t k = segs.size(); k-- > 0;) {
        const Seg& s = segs[k];
        if (s.flag && !previous_match && !res.empty()) {
          res.back().b = s.b;
        } else {
          res.push_back({s.b, s.e, false});
        }
        previous_match = s.flag;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
  }
  if (res.size() == 1 && !res[0].flag && res[0].b == 0 && res[0].e == n) {
    out.push_back(std::move(p));
    return;
  }
  for (const Seg& s : res) {
    if (s.flag || s.e <= s.b) continue;
    out.push_back(p.slice(s.b, s.e));
  }
}

// Runs `fn(piece, out)` on every piece that is not an added token.
template <typename Fn>
void for_each_piece(std::vector<Piece>& pieces, Fn&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2 + 4);
  for (Piece& p : pieces) {
    if (p.added_id >= 0) {
      out.push_back(std::move(p));
    } else {
      fn(p, out);
    }
  }
  pieces.swap(out);
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const json& j, const std::string& path)
      : pattern_(member(j, "pattern", path), path + ".pattern"),
        behavior_(parse_behavior(j, path)),
        invert_(get_bool_or(j, "invert", false, path)) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      p.materialize_byte_level();
      thread_local Matches m;
      m.clear();
      pattern_.find_all(p.text, m);
      split_piece(p, m, invert_, behavior_, out);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

const Regex& gpt2_regex() {
  static const Regex re("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                        "ByteLevel (built-in GPT-2 pattern)");
  return re;
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      p.materialize_byte_level();
      if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') {
        PieceBuilder b(p);
        b.insert(" ", p.orig_char(0));
        b.copy(0, p.text.size());
        p = b.take();
      }
      size_t first = out.size();
      if (use_regex_) {
        thread_local Matches m;
        m.clear();
        gpt2_regex().find_all(p.text, m);
        split_piece(p, m, false, Behavior::kIsolated, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
      for (size_t k = first; k < out.size(); ++k) out[k].byte_level = true;
    });
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      p.materialize_byte_level();
      thread_local Matches m;
      m.clear();
      // Each ASCII digit is one match of the char predicate, as in Hugging Face.
      for (size_t i = 0; i < p.text.size(); ++i) {
        if (p.text[i] >= '0' && p.text[i] <= '9') m.emplace_back(i, i + 1);
      }
      split_piece(p, m, false, individual_ ? Behavior::kIsolated : Behavior::kContiguous, out);
    });
  }

 private:
  bool individual_;
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      p.materialize_byte_level();
      if (p.text.find(' ') != std::string::npos) {
        PieceBuilder b(p);
        size_t last = 0, pos;
        while ((pos = p.text.find(' ', last)) != std::string::npos) {
          b.copy(last, pos);
          b.insert(replacement_, p.orig_char(pos));
          last = pos + 1;
        }
        b.copy(last, p.text.size());
        p = b.take();
      }
      bool needs_prefix = !p.text.empty() && p.text.compare(0, replacement_.size(), replacement_) != 0;
      if (needs_prefix && (scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && p.orig_begin() == 0))) {
        PieceBuilder b(p);
        b.insert(replacement_, p.orig_char(0));
        b.copy(0, p.text.size());
        p = b.take();
      }
      if (!split_) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
      thread_local Matches m;
      m.clear();
      size_t pos = 0;
      while ((pos = p.text.find(replacement_, pos)) != std::string::npos) {
        m.emplace_back(pos, pos + replacement_.size());
        pos += replacement_.size();
      }
      split_piece(p, m, false, Behavior::kMergedWithNext, out);
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

}  // namespace

// Shared with the Metaspace decoder.
std::string metaspace_replacement(const json& j, const std::string& path) {
  std::string r = get_string(j, "replacement", path);
  size_t i = 0;
  if (r.empty() || find_invalid_utf8(r) != std::string::npos || (next_code_point(r, i), i != r.size())) {
    format_error(path + ".replacement", "expected exactly one character, found '" + r + "'");
  }
  return r;
}

// Returns 0 first, 1 always, 2 never.
int metaspace_prepend_scheme(const json& j, const std::string& path) {
  const json* s = optional_member(j, "prepend_scheme");
  const json* legacy = optional_member(j, "add_prefix_space");
  if (legacy && !legacy->is_boolean()) format_error(path + ".add_prefix_space", "expected a boolean");
  if (!s) return legacy && !legacy->get<bool>() ? 2 : 1;  // default (and legacy true): always
  if (!s->is_string()) format_error(path + ".prepend_scheme", "expected a string");
  std::string v = s->get<std::string>();
  if (v == "first") return 0;
  if (v == "always") return 1;
  if (v == "never") return 2;
  format_error(path + ".prepend_scheme", "unknown prepend scheme '" + v + "' (expected first, always or never)");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& path) {
  std::string type = component_type(j, path);
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(j, path);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(get_bool_or(j, "add_prefix_space", true, path),
                                                   get_bool_or(j, "use_regex", true, path));
  }
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(get_bool_or(j, "individual_digits", false, path));
  if (type == "Metaspace") {
    int scheme = metaspace_prepend_scheme(j, path);
    return std::make_unique<MetaspacePreTokenizer>(
        metaspace_replacement(j, path),
        scheme == 0 ? PrependScheme::kFirst : scheme == 1 ? PrependScheme::kAlways : PrependScheme::kNever,
        get_bool_or(j, "split", true, path));
  }
  if (type == "Sequence") {
    const json& arr = get_array(j, "pretokenizers", path);
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (size_t i = 0; i < arr.size(); ++i) {
      items.push_back(make_pre_tokenizer(arr[i], path + ".pretokenizers[" + std::to_string(i) + "]"));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(items));
  }
  unsupported_type("pre-tokenizer", type, path + ".type");
}

}  // namespace circuitscope::hf
