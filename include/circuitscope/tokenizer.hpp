// Tokenizers behind one interface: Hugging Face tokenizer.json (implemented in the project) and
// SentencePiece tokenizer.model (through libsentencepiece, isolated in a separately loaded module).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace circuitscope {

struct Encoding {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;                  // vocabulary pieces, as the vocabulary spells them
  std::vector<std::pair<size_t, size_t>> offsets;   // [begin,end) byte offsets into the input text
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special_tokens: apply the post-processor (e.g. BOS for Llama-3), as HF `encode` does.
  virtual Encoding encode(std::string_view text, bool add_special_tokens = true) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const = 0;
  virtual int64_t vocab_size() const = 0;  // including added tokens
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;
  virtual bool is_special(int64_t id) const = 0;
  // The text after the tokenizer's normalizer (identity when it has none).
  virtual std::string normalize(std::string_view text) const = 0;
};

// SentencePiece model file (tokenizer.model). Defined in src/tokenizer/sentencepiece.cpp.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path);

}  // namespace circuitscope
