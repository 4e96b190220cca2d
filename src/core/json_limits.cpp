#include "circuitscope/json_limits.hpp"

#include "circuitscope/error.hpp"

namespace circuitscope {

void check_json_depth(std::string_view text, const std::string& what, bool allow_comments, ErrorCode code) {
  int depth = 0;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (c == '"') {
      // Skip the string; a backslash escapes the next byte whatever it is.
      for (++i; i < n && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error(code, what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                            " levels (at byte " + std::to_string(i) + ")");
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;  // unbalanced text is the parser's to reject
    } else if (allow_comments && c == '/' && i + 1 < n) {
      if (text[i + 1] == '/') {
        while (i < n && text[i] != '\n') ++i;
      } else if (text[i + 1] == '*') {
        i += 2;
        while (i + 1 < n && !(text[i] == '*' && text[i + 1] == '/')) ++i;
        ++i;
      }
    }
  }
}

}  // namespace circuitscope
