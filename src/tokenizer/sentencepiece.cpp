// Placeholder until the SentencePiece module lands (work in progress on branch 'spm').
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer.hpp"

namespace circuitscope {
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path) {
  throw Error(ErrorCode::kUnsupported, "SentencePiece support is not built yet: cannot load '" + model_path + "'");
}
}  // namespace circuitscope
