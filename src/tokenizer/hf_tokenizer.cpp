// The Hugging Face tokenizer.json tokenizer: added tokens, normalizer, pre-tokenizer, BPE model,
// post-processor and decoder, plus the loaders.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "tokenizer/hf_bpe.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_json_load.hpp"
#include "tokenizer/hf_pipeline.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope {
namespace hf {
namespace {

struct AddedToken {
  int64_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

AddedToken parse_added_token(const json& j, const std::string& path, bool with_id) {
  require_object(j, path);
  AddedToken t;
  if (with_id) {
    t.id = get_int(j, "id", path);
    if (t.id < 0) format_error(path + ".id", "expected a non-negative id");
  }
  t.content = get_string(j, "content", path);
  t.special = get_bool_or(j, "special", false, path);
  t.single_word = get_bool_or(j, "single_word", false, path);
  t.lstrip = get_bool_or(j, "lstrip", false, path);
  t.rstrip = get_bool_or(j, "rstrip", false, path);
  t.normalized = get_bool_or(j, "normalized", !t.special, path);
  return t;
}

// Leftmost-longest, non-overlapping matching of the added tokens (the Aho-Corasick LeftmostLongest
// semantics Hugging Face uses), with a byte trie.
class TokenMatcher {
 public:
  struct Match {
    size_t b, e;
    int32_t token;  // index into the added-token table
  };
  void add(std::string_view pattern, int32_t token) {
    if (pattern.empty()) return;
    int32_t node = 0;
    for (unsigned char c : pattern) {
      int32_t next = child(node, c);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[node].next.emplace_back(c, next);
        nodes_.emplace_back();
      }
      node = next;
    }
    if (nodes_[node].token < 0) nodes_[node].token = token;  // the first of duplicate spellings wins
    first_[static_cast<unsigned char>(pattern[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }

  void find_all(std::string_view s, std::vector<Match>& out) const {
    size_t n = s.size(), pos = 0;
    while (pos < n) {
      while (pos < n && !first_[static_cast<unsigned char>(s[pos])]) ++pos;
      if (pos == n) break;
      int32_t node = 0, best = -1;
      size_t best_len = 0;
      for (size_t k = pos; k < n; ++k) {
        node = child(node, static_cast<unsigned char>(s[k]));
        if (node < 0) break;
        if (nodes_[node].token >= 0) {
          best = nodes_[node].token;
          best_len = k - pos + 1;
        }
      }
      if (best >= 0) {
        out.push_back({pos, pos + best_len, best});
        pos += best_len;
      } else {
        ++pos;
      }
    }
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t token = -1;
  };
  int32_t child(int32_t node, unsigned char c) const {
    for (const auto& [k, v] : nodes_[node].next)
      if (k == c) return v;
    return -1;
  }
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_[256] = {};
  bool empty_ = true;
};

// Length in bytes of the whitespace run that ends `s` / starts `s`.
size_t trailing_whitespace(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t k = e - 1;
    while (k > 0 && is_utf8_continuation(static_cast<unsigned char>(s[k]))) --k;
    size_t kk = k;
    if (!is_unicode_whitespace(next_code_point(s, kk))) break;
    e = k;
  }
  return s.size() - e;
}

size_t leading_whitespace(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t k = b;
    if (!is_unicode_whitespace(next_code_point(s, k))) break;
    b = k;
  }
  return b;
}

[[noreturn]] void invalid_utf8(std::string_view text, size_t at) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned char>(text[at]));
  throw Error(ErrorCode::kInput, "text is not valid UTF-8: ill-formed sequence starting with byte " + std::string(buf) +
                                     " at byte offset " + std::to_string(at) + " (of " + std::to_string(text.size()) + ")");
}

void check_utf8(std::string_view text) {
  size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) invalid_utf8(text, bad);
}

class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(const json& root, ModelTables* tables, const json* config, const std::string& config_origin) {
    require_object(root, "$");
    const json& model = member(root, "model", "$");
    std::string model_type = model.is_object() && model.contains("type") ? component_type(model, "$.model") : "BPE";
    if (model_type != "BPE") unsupported_type("model", model_type, "$.model.type");
    model_ = std::make_unique<BpeModel>(model, "$.model", tables);

    if (const json* n = optional_member(root, "normalizer")) normalizer_ = make_normalizer(*n, "$.normalizer");
    if (const json* p = optional_member(root, "pre_tokenizer")) pre_tokenizer_ = make_pre_tokenizer(*p, "$.pre_tokenizer");
    if (const json* p = optional_member(root, "post_processor")) post_processor_ = make_post_processor(*p, "$.post_processor");
    if (const json* d = optional_member(root, "decoder")) decoder_ = make_decoder(*d, "$.decoder");

    if (const json* a = optional_member(root, "added_tokens")) {
      if (!a->is_array()) format_error("$.added_tokens", std::string("expected an array, found ") + json_kind(*a));
      for (size_t i = 0; i < a->size(); ++i) {
        add_token(parse_added_token((*a)[i], "$.added_tokens[" + std::to_string(i) + "]", true));
      }
    }
    if (config) add_config_tokens(*config, config_origin);

    // Matchers: tokens with normalized=false are found in the raw text, the others in the normalized
    // text, spelled as the normalizer writes them.
    for (size_t i = 0; i < added_.size(); ++i) {
      const AddedToken& t = added_[i];
      if (!t.normalized) {
        raw_matcher_.add(t.content, static_cast<int32_t>(i));
      } else {
        Piece p;
        p.text = t.content;
        if (normalizer_) normalizer_->normalize(p);
        norm_matcher_.add(p.text, static_cast<int32_t>(i));
      }
    }
    max_id_ = model_->max_id();
    for (const AddedToken& t : added_) max_id_ = std::max(max_id_, t.id);
    if (post_processor_) post_processor_->check_ids(max_id_ + 1);
  }

  Encoding encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<Piece> pieces = pre_tokenized(text);
    Encoding enc;
    enc.ids.reserve(text.size() / 3 + 4);
    enc.tokens.reserve(text.size() / 3 + 4);
    enc.offsets.reserve(text.size() / 3 + 4);
    thread_local std::vector<BpeModel::Sym> syms;
    for (const Piece& p : pieces) {
      if (p.added_id >= 0) {
        const AddedToken& t = added_[static_cast<size_t>(p.added_id)];
        Span o = p.orig_span(0, p.text.size());
        enc.ids.push_back(t.id);
        enc.tokens.push_back(t.content);
        enc.offsets.emplace_back(o.begin, o.end);
        continue;
      }
      syms.clear();
      model_->tokenize(p, syms);
      for (const BpeModel::Sym& s : syms) {
        Span o = p.orig_span(s.b, s.e);
        enc.ids.push_back(s.id);
        enc.tokens.push_back(*model_->id_to_token(s.id));
        enc.offsets.emplace_back(o.begin, o.end);
      }
    }
    if (post_processor_) post_processor_->process(enc, add_special_tokens);
    return enc;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
      auto it = added_by_id_.find(id);
      if (it != added_by_id_.end()) {
        const AddedToken& t = added_[it->second];
        if (skip_special_tokens && t.special) continue;
        tokens.push_back(t.content);
      } else if (const std::string* s = model_->id_to_token(id)) {
        tokens.push_back(*s);
      }  // ids without a token are skipped, as in Hugging Face
    }
    if (!decoder_) {
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (i) out += ' ';
        out += tokens[i];
      }
      return out;
    }
    decoder_->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  int64_t vocab_size() const override { return max_id_ + 1; }

  std::optional<int64_t> token_to_id(std::string_view token) const override {
    auto it = added_by_content_.find(std::string(token));
    if (it != added_by_content_.end()) return it->second;
    if (auto id = model_->token_to_id(token)) return *id;
    return std::nullopt;
  }

  std::string id_to_token(int64_t id) const override {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return added_[it->second].content;
    if (const std::string* s = model_->id_to_token(id)) return *s;
    throw Error(ErrorCode::kInput, "token id " + std::to_string(id) + " is not in the vocabulary (size " +
                                       std::to_string(vocab_size()) + ")");
  }

  bool is_special(int64_t id) const override {
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && added_[it->second].special;
  }

  std::string normalize(std::string_view text) const override {
    check_utf8(text);
    std::string out;
    for (const Piece& p : split_and_normalize(text)) out += p.text;
    return out;
  }

  std::vector<PreToken> pre_tokens(std::string_view text) const {
    std::vector<PreToken> out;
    for (Piece& p : pre_tokenized(text)) {
      Span o = p.orig_span(0, p.text.size());
      int64_t id = p.added_id >= 0 ? added_[static_cast<size_t>(p.added_id)].id : -1;
      p.materialize_byte_level();
      out.push_back({p.text, o.begin, o.end, id});
    }
    return out;
  }

 private:
  void add_token(AddedToken t) {
    if (t.content.empty()) return;  // Hugging Face ignores empty added tokens
    auto it = added_by_id_.find(t.id);
    if (it != added_by_id_.end()) {
      added_[it->second] = t;  // a later entry for the same id replaces the earlier one
    } else {
      added_by_id_[t.id] = added_.size();
      added_.push_back(t);
    }
    added_by_content_[t.content] = t.id;
  }

  // tokenizer_config.json: added_tokens_decoder entries missing from tokenizer.json.
  void add_config_tokens(const json& config, const std::string& origin) {
    try {
      require_object(config, "$");
      const json* dec = optional_member(config, "added_tokens_decoder");
      if (!dec) return;
      require_object(*dec, "$.added_tokens_decoder");
      for (auto it = dec->begin(); it != dec->end(); ++it) {
        std::string path = "$.added_tokens_decoder[\"" + it.key() + "\"]";
        int64_t id = -1;
        try {
          size_t used = 0;
          id = std::stoll(it.key(), &used);
          if (used != it.key().size() || id < 0) id = -1;
        } catch (const std::exception&) {
          id = -1;
        }
        if (id < 0) format_error(path, "the key must be a non-negative token id");
        if (added_by_id_.count(id)) continue;
        AddedToken t = parse_added_token(it.value(), path, false);
        t.id = id;
        add_token(t);
      }
    } catch (const Error& e) {
      throw Error(e.code(), origin + ": " + e.what());
    }
  }

  // Splits `p` on the added tokens `m` finds (Hugging Face AddedVocabulary::find_matches, with the
  // single_word, lstrip and rstrip rules) and appends the parts to `out`.
  void split_added(Piece& p, const TokenMatcher& m, std::vector<Piece>& out) const {
    if (p.text.empty()) return;
    if (m.empty()) {
      out.push_back(std::move(p));
      return;
    }
    thread_local std::vector<TokenMatcher::Match> matches;
    matches.clear();
    m.find_all(p.text, matches);
    if (matches.empty()) {
      out.push_back(std::move(p));
      return;
    }
    std::string_view s = p.text;
    size_t n = s.size(), start_offset = 0;
    for (const auto& mt : matches) {
      const AddedToken& t = added_[static_cast<size_t>(mt.token)];
      size_t b = mt.b, e = mt.e;
      if (t.single_word) {
        bool start_space = b == 0 || !is_word_char(last_code_point(s.substr(0, b)));
        size_t k = e;
        bool stop_space = e == n || !is_word_char(next_code_point(s, k));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) b = std::max(b - trailing_whitespace(s.substr(0, b)), start_offset);
      if (t.rstrip) e += leading_whitespace(s.substr(e));
      if (b < start_offset) continue;  // overlaps what the previous token stripped
      if (start_offset < b) out.push_back(p.slice(start_offset, b));
      Piece tok = p.slice(b, e);
      tok.added_id = mt.token;
      out.push_back(std::move(tok));
      start_offset = e;
    }
    if (start_offset < n) out.push_back(p.slice(start_offset, n));
  }

  // Added-token split on the raw text, normalizer on the rest, added-token split on the normalized text.
  std::vector<Piece> split_and_normalize(std::string_view text) const {
    Piece root;
    root.text.assign(text.data(), text.size());
    std::vector<Piece> segments, out;
    split_added(root, raw_matcher_, segments);
    out.reserve(segments.size());
    for (Piece& seg : segments) {
      if (seg.added_id >= 0) {
        out.push_back(std::move(seg));
        continue;
      }
      if (normalizer_) normalizer_->normalize(seg);
      split_added(seg, norm_matcher_, out);
    }
    return out;
  }

  std::vector<Piece> pre_tokenized(std::string_view text) const {
    check_utf8(text);
    if (text.size() > 0xFFFFFFF0u) throw Error(ErrorCode::kInput, "text of " + std::to_string(text.size()) + " bytes is too long (4 GiB at most)");
    std::vector<Piece> pieces = split_and_normalize(text);
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    return pieces;
  }

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int64_t, size_t> added_by_id_;
  std::unordered_map<std::string, int64_t> added_by_content_;
  TokenMatcher raw_matcher_, norm_matcher_;
  int64_t max_id_ = -1;
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, std::string("cannot open ") + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, std::string("cannot read ") + what + " '" + path + "'");
  return ss.str();
}

json parse_json(std::string_view text, const std::string& origin) {
  check_json_depth(text, origin);
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat, origin + ": not valid JSON: " + e.what());
  }
}

}  // namespace
}  // namespace hf

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json_text, const std::string& origin,
                                               std::string_view config_json) {
  hf::ModelTables tables;
  hf::json root = hf::parse_tokenizer_json(json_text, origin, tables);
  hf::json config;
  std::string config_origin = "tokenizer_config.json";
  if (!config_json.empty()) config = hf::parse_json(config_json, config_origin);
  try {
    return std::make_unique<hf::HfTokenizer>(root, &tables, config_json.empty() ? nullptr : &config, config_origin);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(config_origin, 0) == 0) throw;  // already names the config file
    throw Error(e.code(), origin + ": " + msg);
  }
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path) {
  namespace fs = std::filesystem;
  auto t0 = std::chrono::steady_clock::now();
  std::string text = hf::read_file(path, "tokenizer file");
  hf::ModelTables tables;
  hf::json root = hf::parse_tokenizer_json(text, path, tables);
  text.clear();
  text.shrink_to_fit();
  fs::path config_path = fs::path(path).parent_path() / "tokenizer_config.json";
  hf::json config;
  bool has_config = false;
  std::error_code ec;
  if (fs::is_regular_file(config_path, ec)) {
    config = hf::parse_json(hf::read_file(config_path.string(), "tokenizer config"), config_path.string());
    has_config = true;
  }
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = std::make_unique<hf::HfTokenizer>(root, &tables, has_config ? &config : nullptr, config_path.string());
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(config_path.string(), 0) == 0) throw;
    throw Error(e.code(), path + ": " + msg);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::debug("loaded tokenizer {} ({} tokens) in {:.3f} s", path, tok->vocab_size(), secs);
  return tok;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p / "tokenizer.json", ec)) return load_tokenizer_json((p / "tokenizer.json").string());
    if (fs::is_regular_file(p / "tokenizer.model", ec)) {
      return load_sentencepiece_tokenizer((p / "tokenizer.model").string());
    }
    throw Error(ErrorCode::kIo, "no tokenizer in '" + path + "': expected tokenizer.json or tokenizer.model");
  }
  if (fs::is_regular_file(p, ec)) {
    if (p.extension() == ".json") return load_tokenizer_json(path);
    return load_sentencepiece_tokenizer(path);
  }
  throw Error(ErrorCode::kIo, "tokenizer path '" + path + "' does not exist");
}

std::vector<PreToken> pre_tokenize(const Tokenizer& tokenizer, std::string_view text) {
  const auto* hf = dynamic_cast<const hf::HfTokenizer*>(&tokenizer);
  if (!hf) throw Error(ErrorCode::kUnsupported, "pre_tokenize: only tokenizer.json tokenizers expose their pre-tokens");
  return hf->pre_tokens(text);
}

}  // namespace circuitscope
