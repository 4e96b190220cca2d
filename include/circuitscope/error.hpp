// The one exception type of circuitscope. Library code throws it; `main` catches it and
// exits with the code's number, so shell scripts can tell failures apart.
#pragma once
#include <stdexcept>
#include <string>

namespace circuitscope {

enum class ErrorCode : int {
  kUsage = 2,        // bad command-line arguments or option values
  kIo = 3,           // a file could not be opened, read or written
  kFormat = 4,       // a file exists but its content is malformed (JSON, safetensors, tokenizer)
  kConfig = 5,       // a model config is missing keys or has inconsistent values
  kUnsupported = 6,  // valid input that circuitscope does not handle (architecture, dtype, device)
  kInput = 7,        // user data out of range (token id >= vocab, bad dataset line)
  kInternal = 10,    // a bug in circuitscope
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }
  int exit_code() const noexcept { return static_cast<int>(code_); }

 private:
  ErrorCode code_;
};

const char* error_code_name(ErrorCode code) noexcept;

// "[64,128]" for messages.
template <typename Container>
std::string shape_str(const Container& shape) {
  std::string s = "[";
  bool first = true;
  for (auto d : shape) {
    if (!first) s += ",";
    s += std::to_string(d);
    first = false;
  }
  return s + "]";
}

}  // namespace circuitscope
