// Decoders (ByteLevel, ByteFallback, Metaspace, Fuse, Strip, Replace, BPEDecoder, Sequence) and
// post-processors (TemplateProcessing, ByteLevel, Sequence) of tokenizer.json.
#include <algorithm>
#include <memory>
#include <unordered_map>

#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_pipeline.hpp"
#include "tokenizer/hf_regex.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope::hf {
namespace {

// Maps each token's ByteLevel chars back to bytes (a token with a char outside the alphabet, such as
// an added token, contributes its own UTF-8) and joins everything into one lossily-decoded string.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      size_t mark = bytes.size();
      size_t i = 0;
      bool ok = true;
      while (i < t.size()) {
        int b = byte_level_byte(next_code_point(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes += static_cast<char>(b);
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

// Runs of "<0xXX>" tokens become the bytes they name; a run that is not valid UTF-8 becomes one
// U+FFFD per byte (Hugging Face ByteFallback).
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (find_invalid_utf8(run) == std::string::npos) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run_len; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_len = 0;
    };
    for (std::string& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        run += static_cast<char>(byte);
        ++run_len;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

// The replacement char becomes a space; in the first token it is dropped instead unless the prepend
// scheme is "never".
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_first) : replacement_(std::move(replacement)), drop_first_(drop_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (t.find(replacement_) == std::string::npos) continue;
      std::string r;
      size_t last = 0, pos;
      while ((pos = t.find(replacement_, last)) != std::string::npos) {
        r.append(t, last, pos - last);
        if (!(i == 0 && drop_first_)) r += ' ';
        last = pos + replacement_.size();
      }
      r.append(t, last, std::string::npos);
      t.swap(r);
    }
  }

 private:
  std::string replacement_;
  bool drop_first_;
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing occurrences of one char from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const size_t w = content_.size();
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && b + w <= e && t.compare(b, w, content_) == 0; ++k) b += w;
      for (size_t k = 0; k < stop_ && e >= b + w && t.compare(e - w, w, content_) == 0; ++k) e -= w;
      if (b != 0 || e != t.size()) t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const json& j, const std::string& path)
      : pattern_(member(j, "pattern", path), path + ".pattern"), content_(get_string(j, "content", path)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for (std::string& t : tokens) {
      m.clear();
      pattern_.find_all(t, m);
      if (m.empty()) continue;
      std::string r;
      size_t last = 0;
      for (auto [s, e] : m) {
        r.append(t, last, s - last);
        r += content_;
        last = e;
      }
      r.append(t, last, std::string::npos);
      t.swap(r);
    }
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// BPEDecoder: the end-of-word suffix becomes a space, or nothing in the last token.
class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      const char* with = i + 1 == tokens.size() ? "" : " ";
      std::string r;
      size_t last = 0, pos;
      while ((pos = t.find(suffix_, last)) != std::string::npos) {
        r.append(t, last, pos - last);
        r += with;
        last = pos + suffix_.size();
      }
      r.append(t, last, std::string::npos);
      t.swap(r);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

// ---- post-processors ----

struct TemplateSpecial {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
};

// Single-sequence template: special tokens around the sequence, with offsets (0,0) like Hugging Face.
class TemplateProcessor : public PostProcessor {
 public:
  TemplateProcessor(const json& j, const std::string& path) : path_(path) {
    std::unordered_map<std::string, TemplateSpecial> specials;
    if (const json* st = optional_member(j, "special_tokens")) {
      require_object(*st, path + ".special_tokens");
      for (auto it = st->begin(); it != st->end(); ++it) {
        std::string p = path + ".special_tokens[\"" + it.key() + "\"]";
        TemplateSpecial s;
        const json& ids = get_array(it.value(), "ids", p);
        const json& toks = get_array(it.value(), "tokens", p);
        for (const auto& v : ids) {
          if (!v.is_number_integer()) format_error(p + ".ids", "expected integer ids, found " + v.dump());
          s.ids.push_back(v.get<int64_t>());
        }
        for (const auto& v : toks) {
          if (!v.is_string()) format_error(p + ".tokens", "expected strings, found " + v.dump());
          s.tokens.push_back(v.get<std::string>());
        }
        if (s.ids.size() != s.tokens.size()) format_error(p, "'ids' and 'tokens' differ in length");
        specials[it.key()] = std::move(s);
      }
    }
    const json& single = get_array(j, "single", path);
    for (size_t i = 0; i < single.size(); ++i) {
      std::string p = path + ".single[" + std::to_string(i) + "]";
      const json& item = single[i];
      require_object(item, p);
      if (const json* sp = optional_member(item, "SpecialToken")) {
        std::string id = get_string(*sp, "id", p + ".SpecialToken");
        auto it = specials.find(id);
        if (it == specials.end()) format_error(p, "special token '" + id + "' is not listed in special_tokens");
        items_.push_back({false, it->second});
      } else if (const json* sq = optional_member(item, "Sequence")) {
        std::string id = get_string(*sq, "id", p + ".Sequence");
        if (id != "A") format_error(p, "the single-sequence template can only hold sequence A, found '" + id + "'");
        items_.push_back({true, {}});
      } else {
        format_error(p, "expected a 'SpecialToken' or 'Sequence' item");
      }
    }
  }

  void process(Encoding& enc, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    Encoding out;
    for (const Item& it : items_) {
      if (it.is_sequence) {
        out.ids.insert(out.ids.end(), enc.ids.begin(), enc.ids.end());
        out.tokens.insert(out.tokens.end(), enc.tokens.begin(), enc.tokens.end());
        out.offsets.insert(out.offsets.end(), enc.offsets.begin(), enc.offsets.end());
      } else {
        out.ids.insert(out.ids.end(), it.special.ids.begin(), it.special.ids.end());
        out.tokens.insert(out.tokens.end(), it.special.tokens.begin(), it.special.tokens.end());
        out.offsets.insert(out.offsets.end(), it.special.ids.size(), {0, 0});
      }
    }
    enc = std::move(out);
  }

  void check_ids(int64_t vocab_size) const override {
    for (const Item& it : items_)
      for (size_t i = 0; i < it.special.ids.size(); ++i)
        if (it.special.ids[i] < 0 || it.special.ids[i] >= vocab_size)
          format_error(path_ + ".special_tokens", "special token '" + it.special.tokens[i] + "' has id " +
                                                      std::to_string(it.special.ids[i]) + ", outside the vocabulary of " +
                                                      std::to_string(vocab_size) + " ids");
  }

 private:
  struct Item {
    bool is_sequence;
    TemplateSpecial special;
  };
  std::string path_;
  std::vector<Item> items_;
};

// ByteLevel post-processor: only trims offsets (when trim_offsets) so they exclude the spaces a token
// starts or ends with; ids are untouched.
class ByteLevelProcessor : public PostProcessor {
 public:
  ByteLevelProcessor(bool trim_offsets, bool add_prefix_space) : trim_(trim_offsets), add_prefix_space_(add_prefix_space) {}
  void process(Encoding& enc, bool) const override {
    if (!trim_) return;
    for (size_t i = 0; i < enc.tokens.size(); ++i) {
      const std::string& t = enc.tokens[i];
      auto& off = enc.offsets[i];
      auto is_space = [](char32_t c) { return c == 0x120 || is_unicode_whitespace(c); };  // U+0120 'Ġ' is the space byte
      size_t leading = 0, trailing = 0, k = 0;
      while (k < t.size() && is_space(next_code_point(t, k))) ++leading;
      for (size_t end = t.size(); end > 0;) {  // walk back char by char
        size_t start = end - 1;
        while (start > 0 && is_utf8_continuation(static_cast<unsigned char>(t[start]))) --start;
        size_t q = start;
        if (!is_space(next_code_point(t, q))) break;
        ++trailing;
        end = start;
      }
      if (leading > 0) {
        bool is_first = i == 0 || off.first == 0;
        if (is_first && add_prefix_space_ && leading == 1) leading = 0;
        off.first = std::min(off.first + leading, off.second);
      }
      if (trailing > 0 && off.second >= trailing) off.second = std::max(off.second - trailing, off.first);
    }
  }

 private:
  bool trim_, add_prefix_space_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> items) : items_(std::move(items)) {}
  void process(Encoding& enc, bool add_special_tokens) const override {
    for (const auto& p : items_) p->process(enc, add_special_tokens);
  }
  void check_ids(int64_t vocab_size) const override {
    for (const auto& p : items_) p->check_ids(vocab_size);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& path) {
  std::string type = component_type(j, path);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Metaspace") {
    return std::make_unique<MetaspaceDecoder>(metaspace_replacement(j, path), metaspace_prepend_scheme(j, path) != 2);
  }
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = get_string(j, "content", path);
    size_t i = 0;
    if (content.empty() || find_invalid_utf8(content) != std::string::npos || (next_code_point(content, i), i != content.size())) {
      format_error(path + ".content", "expected exactly one character, found '" + content + "'");
    }
    int64_t start = get_int_or(j, "start", 0, path), stop = get_int_or(j, "stop", 0, path);
    if (start < 0 || stop < 0) format_error(path, "start and stop must be non-negative");
    return std::make_unique<StripDecoder>(content, static_cast<size_t>(start), static_cast<size_t>(stop));
  }
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(j, path);
  if (type == "BPEDecoder") return std::make_unique<BpeSuffixDecoder>(get_string_or(j, "suffix", "</w>", path));
  if (type == "Sequence") {
    const json& arr = get_array(j, "decoders", path);
    std::vector<std::unique_ptr<Decoder>> items;
    for (size_t i = 0; i < arr.size(); ++i) {
      items.push_back(make_decoder(arr[i], path + ".decoders[" + std::to_string(i) + "]"));
    }
    return std::make_unique<SequenceDecoder>(std::move(items));
  }
  unsupported_type("decoder", type, path + ".type");
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& path) {
  std::string type = component_type(j, path);
  if (type == "TemplateProcessing") return std::make_unique<TemplateProcessor>(j, path);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelProcessor>(get_bool_or(j, "trim_offsets", true, path),
                                                get_bool_or(j, "add_prefix_space", true, path));
  }
  if (type == "Sequence") {
    const json& arr = get_array(j, "processors", path);
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (size_t i = 0; i < arr.size(); ++i) {
      items.push_back(make_post_processor(arr[i], path + ".processors[" + std::to_string(i) + "]"));
    }
    return std::make_unique<SequenceProcessor>(std::move(items));
  }
  unsupported_type("post-processor", type, path + ".type");
}

}  // namespace circuitscope::hf
