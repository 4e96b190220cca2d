// Limits applied to every JSON text circuitscope reads (configs, tokenizer.json, datasets,
// reports, sweep specs, safetensors headers). nlohmann's parser is iterative, but dumping and
// every reader that walks a value recurse once per level: a hostile file nested 100,000 deep
// would overflow the stack there. So nesting is checked on the raw text before parsing.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "circuitscope/error.hpp"

namespace circuitscope {

// Deeper than any real config, tokenizer, template context or report (they stay under 10).
constexpr int kMaxJsonDepth = 512;

// Throws Error(code) "<what>: JSON nested deeper than 512 levels (at byte N)": kFormat for files,
// kInput for the lines of a dataset-like JSONL file (as their other malformed lines). Brackets inside
// strings do not count; with allow_comments, neither do those inside // and /* */ comments.
// Linear in the text and allocation-free.
void check_json_depth(std::string_view text, const std::string& what, bool allow_comments = false,
                      ErrorCode code = ErrorCode::kFormat);

}  // namespace circuitscope
