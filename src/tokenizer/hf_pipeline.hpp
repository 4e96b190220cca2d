// Internal building blocks of the Hugging Face tokenizer.json implementation: the text piece that flows
// through normalizers and pre-tokenizers with its map back to the input, and the component interfaces.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "circuitscope/tokenizer.hpp"

namespace circuitscope::hf {

struct Span {
  uint32_t begin = 0, end = 0;
};

// Text on its way through the pipeline. Every byte maps to the [begin,end) byte range of the input
// character it came from (as Hugging Face's NormalizedString alignments do), so token offsets can be
// reported against the input whatever the normalizer and pre-tokenizers did.
struct Piece {
  std::string text;
  // Per byte of `text`. Empty means `text` is an unchanged copy of input[base, base + text.size()), the
  // common case, kept implicit to save the allocation.
  std::vector<Span> align;
  uint32_t base = 0;
  // `text` holds raw bytes that stand for their ByteLevel alphabet characters (the transform of the
  // ByteLevel pre-tokenizer, applied lazily: the BPE model maps bytes to ids through a table).
  bool byte_level = false;
  int32_t added_id = -1;  // >= 0: this piece is an added token, final

  bool identity() const { return align.empty(); }
  Span orig_char(size_t i) const;               // input range of the char byte i belongs to
  Span orig_span(size_t b, size_t e) const;     // input range covered by bytes [b,e)
  uint32_t orig_begin() const { return text.empty() ? base : orig_char(0).begin; }
  Piece slice(size_t b, size_t e) const;
  // Rewrites a lazily byte-level piece into the ByteLevel alphabet spelling, for components that look at
  // the characters.
  void materialize_byte_level();
};

// Builds a new piece from parts of another and inserted text.
class PieceBuilder {
 public:
  explicit PieceBuilder(const Piece& src) : src_(src) {
    out_.byte_level = src.byte_level;
    out_.base = src.base;
    out_.text.reserve(src.text.size() + 8);
    out_.align.reserve(src.text.size() + 8);
  }
  void copy(size_t b, size_t e);                  // src bytes [b,e) with their alignment
  void insert(std::string_view s, Span orig);     // new bytes, all mapped to `orig`
  Piece take() { return std::move(out_); }

 private:
  const Piece& src_;
  Piece out_;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(Piece& p) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits/transforms the pieces that are not added tokens; added tokens pass through untouched.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(Encoding& enc, bool add_special_tokens) const = 0;
  // Error(kFormat) for an id it inserts outside [0, vocab_size) (checked once the vocabulary is known).
  virtual void check_ids(int64_t vocab_size) const {}
};

// Factories: `j` is the component's JSON object, `path` its location in tokenizer.json for messages.
// Unknown types throw Error(kUnsupported), malformed fields Error(kFormat).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& path);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& path);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& path);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& path);

// Metaspace fields shared by the pre-tokenizer and the decoder: the replacement (one char) and the
// prepend scheme (0 first, 1 always, 2 never; legacy add_prefix_space read too).
std::string metaspace_replacement(const nlohmann::json& j, const std::string& path);
int metaspace_prepend_scheme(const nlohmann::json& j, const std::string& path);

}  // namespace circuitscope::hf
