// Small accessors for reading tokenizer.json with messages that name the JSON path (internal).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "circuitscope/error.hpp"

namespace circuitscope::hf {

using json = nlohmann::json;

[[noreturn]] inline void format_error(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::kFormat, "at " + path + ": " + what);
}

inline const char* json_kind(const json& j) { return j.type_name(); }

inline const json& require_object(const json& j, const std::string& path) {
  if (!j.is_object()) format_error(path, std::string("expected an object, found ") + json_kind(j));
  return j;
}

// Member that must be present.
inline const json& member(const json& obj, const char* key, const std::string& path) {
  require_object(obj, path);
  auto it = obj.find(key);
  if (it == obj.end()) format_error(path, std::string("missing key '") + key + "'");
  return *it;
}

// Member or nullptr when absent or null.
inline const json* optional_member(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

inline std::string get_string(const json& obj, const char* key, const std::string& path) {
  const json& v = member(obj, key, path);
  if (!v.is_string()) format_error(path + "." + key, std::string("expected a string, found ") + json_kind(v));
  return v.get<std::string>();
}

inline std::string get_string_or(const json& obj, const char* key, const std::string& def, const std::string& path) {
  const json* v = optional_member(obj, key);
  if (!v) return def;
  if (!v->is_string()) format_error(path + "." + key, std::string("expected a string, found ") + json_kind(*v));
  return v->get<std::string>();
}

inline bool get_bool_or(const json& obj, const char* key, bool def, const std::string& path) {
  const json* v = optional_member(obj, key);
  if (!v) return def;
  if (!v->is_boolean()) format_error(path + "." + key, std::string("expected a boolean, found ") + json_kind(*v));
  return v->get<bool>();
}

inline int64_t get_int(const json& obj, const char* key, const std::string& path) {
  const json& v = member(obj, key, path);
  if (!v.is_number_integer()) format_error(path + "." + key, std::string("expected an integer, found ") + json_kind(v));
  return v.get<int64_t>();
}

inline int64_t get_int_or(const json& obj, const char* key, int64_t def, const std::string& path) {
  const json* v = optional_member(obj, key);
  if (!v) return def;
  if (!v->is_number_integer()) format_error(path + "." + key, std::string("expected an integer, found ") + json_kind(*v));
  return v->get<int64_t>();
}

inline const json& get_array(const json& obj, const char* key, const std::string& path) {
  const json& v = member(obj, key, path);
  if (!v.is_array()) format_error(path + "." + key, std::string("expected an array, found ") + json_kind(v));
  return v;
}

// The "type" of a component object.
inline std::string component_type(const json& j, const std::string& path) {
  require_object(j, path);
  return get_string(j, "type", path);
}

[[noreturn]] inline void unsupported_type(const std::string& kind, const std::string& type, const std::string& path) {
  throw Error(ErrorCode::kUnsupported, "at " + path + ": " + kind + " type '" + type + "' is not supported");
}

}  // namespace circuitscope::hf
