#include "circuitscope/error.hpp"

namespace circuitscope {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kUsage: return "usage";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kFormat: return "format";
    case ErrorCode::kConfig: return "config";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInput: return "input";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace circuitscope
