// Hugging Face tokenizer.json support and the tokenizer loader.
//
// Supported tokenizer.json components: model BPE (byte-level or with byte_fallback; merges as "a b" or
// [a, b]; ignore_merges, unk_token, fuse_unk, continuing_subword_prefix, end_of_word_suffix); normalizers
// NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, Sequence; pre-tokenizers Split, ByteLevel,
// Digits, Metaspace, Sequence; post-processors TemplateProcessing (single sequence), ByteLevel, Sequence;
// decoders ByteLevel, ByteFallback, Metaspace, Fuse, Strip, Replace, BPEDecoder, Sequence. Added tokens
// honour lstrip, rstrip, single_word, normalized and special. Anything else is refused at load time with
// Error(kUnsupported) naming the type and its JSON path; malformed files give Error(kFormat).
// `truncation` and `padding` are ignored: encode() never truncates or pads.
//
// Text must be valid UTF-8: encode() and normalize() throw Error(kInput) naming the byte offset of the
// first ill-formed sequence. decode() always returns valid UTF-8 (ill-formed byte sequences produced by
// byte-level tokens become U+FFFD, as in Hugging Face) and skips ids that have no token, as Hugging Face
// does.
//
// normalize() applies the normalizer the way encode() does: to the text between the added tokens that
// are matched on the raw text (those are kept as they are), so decode(encode(x)) == normalize(x) for
// byte-level tokenizers such as Qwen's.
//
// Offsets are byte offsets into the input. Where the normalizer changed the text, a token's offsets
// cover the whole input range of the changed characters it overlaps (Hugging Face is finer-grained
// there, pointing at the first character of a composed sequence only).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "circuitscope/tokenizer.hpp"

namespace circuitscope {

// `path` is a model directory (tokenizer.json is used when present, else tokenizer.model through
// SentencePiece) or the path of a tokenizer.json / tokenizer.model file. Error(kIo) when neither exists.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// A tokenizer.json file. A tokenizer_config.json beside it, when present, contributes the entries of its
// added_tokens_decoder that tokenizer.json's added_tokens lacks.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path);

// The same from JSON text; `origin` names it in error messages. `config_json` (may be empty) is the
// content of a tokenizer_config.json.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json_text, const std::string& origin = "tokenizer.json",
                                               std::string_view config_json = {});

// The pre-tokens of a tokenizer.json tokenizer, for tests and debugging: what the model receives after
// the added-token split, the normalizer and the pre-tokenizer (ByteLevel pieces spelled in the ByteLevel
// alphabet, as Hugging Face's pre_tokenize_str shows them), with input byte offsets. Added tokens are
// listed with their id, other pieces with added_id -1. Error(kUnsupported) for other tokenizers.
struct PreToken {
  std::string text;
  size_t begin = 0, end = 0;
  int64_t added_id = -1;
};
std::vector<PreToken> pre_tokenize(const Tokenizer& tokenizer, std::string_view text);

}  // namespace circuitscope
