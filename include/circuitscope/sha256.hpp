// SHA-256 (FIPS 180-4), for dataset hashes in reports.
#pragma once
#include <string>
#include <string_view>

namespace circuitscope {

// Lowercase hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace circuitscope
