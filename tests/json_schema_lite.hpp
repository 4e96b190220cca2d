// A small JSON Schema validator for the keywords schemas/report.schema.json uses: type (a name or a
// list), required, properties, additionalProperties (bool or schema), items, enum, minimum, maximum. Any
// other keyword except annotations ($schema, $id, title, description) is reported as an error, so
// the schema cannot silently grow past what is checked.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cs_test {

inline bool json_has_type(const nlohmann::json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "integer") return v.is_number_integer();
  if (t == "number") return v.is_number();
  return false;
}

// Appends "path: problem" for every violation; returns whether there was none.
inline bool validate_schema(const nlohmann::json& v, const nlohmann::json& s, const std::string& path,
                            std::vector<std::string>& errors) {
  const size_t before = errors.size();
  for (const auto& [k, unused] : s.items()) {
    static const char* known[] = {"$schema", "$id", "title", "description", "type", "required", "properties",
                                  "additionalProperties", "items", "enum", "minimum", "maximum"};
    bool ok = false;
    for (const char* n : known) ok = ok || k == n;
    if (!ok) errors.push_back(path + ": schema keyword '" + k + "' is not supported by the test validator");
  }
  if (s.contains("type")) {
    std::vector<std::string> types;
    if (s["type"].is_string()) types.push_back(s["type"]);
    else for (const auto& t : s["type"]) types.push_back(t);
    bool any = false;
    for (const auto& t : types) any = any || json_has_type(v, t);
    if (!any) {
      errors.push_back(path + ": expected type " + s["type"].dump() + ", found " + v.dump().substr(0, 60));
      return false;  // the other keywords assume the type
    }
  }
  if (s.contains("enum")) {
    bool found = false;
    for (const auto& e : s["enum"]) found = found || e == v;
    if (!found) errors.push_back(path + ": " + v.dump() + " is not one of " + s["enum"].dump());
  }
  if (s.contains("minimum") && v.is_number() && v.get<double>() < s["minimum"].get<double>())
    errors.push_back(path + ": " + v.dump() + " < minimum " + s["minimum"].dump());
  if (s.contains("maximum") && v.is_number() && v.get<double>() > s["maximum"].get<double>())
    errors.push_back(path + ": " + v.dump() + " > maximum " + s["maximum"].dump());
  if (v.is_object()) {
    if (s.contains("required"))
      for (const auto& r : s["required"])
        if (!v.contains(r.get<std::string>())) errors.push_back(path + ": missing required key '" + r.get<std::string>() + "'");
    for (const auto& [k, child] : v.items()) {
      const std::string p = path + "." + k;
      if (s.contains("properties") && s["properties"].contains(k)) {
        validate_schema(child, s["properties"][k], p, errors);
      } else if (s.contains("additionalProperties")) {
        const auto& ap = s["additionalProperties"];
        if (ap.is_boolean()) {
          if (!ap.get<bool>()) errors.push_back(p + ": key not allowed here");
        } else {
          validate_schema(child, ap, p, errors);
        }
      }
    }
  }
  if (v.is_array() && s.contains("items"))
    for (size_t i = 0; i < v.size(); ++i) validate_schema(v[i], s["items"], path + "[" + std::to_string(i) + "]", errors);
  return errors.size() == before;
}

}  // namespace cs_test
