// Enum <-> name tables: one row per value, so that parsing, naming and the list of accepted names in
// an error message cannot drift apart. Private to the library.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <utility>

#include "circuitscope/error.hpp"

namespace circuitscope::detail {

template <typename E, size_t N>
using NameTable = std::array<std::pair<E, const char*>, N>;

template <typename E, size_t N>
const char* name_of(const NameTable<E, N>& table, E value) {
  for (const auto& [e, name] : table)
    if (e == value) return name;
  return "?";
}

// Throws Error(code) "WHAT 'S': expected a, b or c" when `s` names no row.
template <typename E, size_t N>
E parse_name(const NameTable<E, N>& table, const std::string& s, const char* what, ErrorCode code = ErrorCode::kUsage) {
  for (const auto& [e, name] : table)
    if (s == name) return e;
  std::string list;
  for (size_t i = 0; i < N; ++i) list += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + table[i].second;
  throw Error(code, std::string(what) + " '" + s + "': expected " + list);
}

}  // namespace circuitscope::detail
