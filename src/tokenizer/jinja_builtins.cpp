// Jinja2's builtin filters, tests and globals, Python's str/dict/list methods as the sandbox
// exposes them, and Hugging Face's additions (tojson with json.dumps options, raise_exception,
// strftime_now).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <unordered_map>
#include <utf8proc.h>

#include "tokenizer/jinja_ast.hpp"

namespace circuitscope::jinja {
namespace {

[[noreturn]] void throw_unsupported(const std::string& m) { throw ValueError{ValueError::Kind::kUnsupported, m}; }

// Python-style binding of positional and keyword arguments to parameter names.
class Params {
 public:
  Params(const CallArgs& a, std::string fn, std::initializer_list<const char*> names)
      : fn_(std::move(fn)), names_(names), vals_(names.size()), set_(names.size(), false) {
    if (a.pos.size() > names_.size())
      throw_type_error(fn_ + "() takes at most " + std::to_string(names_.size()) + " argument(s) (" +
                       std::to_string(a.pos.size()) + " given)");
    for (size_t i = 0; i < a.pos.size(); ++i) {
      vals_[i] = a.pos[i];
      set_[i] = true;
    }
    for (const auto& [k, v] : a.kw) {
      size_t j = 0;
      while (j < names_.size() && k != names_[j]) ++j;
      if (j == names_.size()) throw_type_error(fn_ + "() got an unexpected keyword argument '" + k + "'");
      if (set_[j]) throw_type_error(fn_ + "() got multiple values for argument '" + k + "'");
      vals_[j] = v;
      set_[j] = true;
    }
  }
  bool has(size_t i) const { return set_[i]; }
  const Value& get(size_t i) const {
    if (!set_[i]) throw_type_error(fn_ + "() missing required argument: '" + names_[i] + "'");
    return vals_[i];
  }
  Value get(size_t i, Value def) const { return set_[i] ? vals_[i] : def; }
  int64_t get_int(size_t i, int64_t def) const {
    if (!set_[i] || vals_[i].is_none()) return def;
    if (!vals_[i].is_int() && !vals_[i].is_bool())
      throw_type_error(fn_ + "(): argument '" + names_[i] + "' must be an integer, not " + type_name(vals_[i]));
    return vals_[i].int_value();
  }
  std::string get_str(size_t i, const std::string& def) const {
    if (!set_[i]) return def;
    if (!vals_[i].is_string())
      throw_type_error(fn_ + "(): argument '" + names_[i] + "' must be str, not " + type_name(vals_[i]));
    return vals_[i].as_string();
  }

 private:
  std::string fn_;
  std::vector<const char*> names_;
  std::vector<Value> vals_;
  std::vector<bool> set_;
};

const std::string& require_str(const Value& v, const char* what) {
  if (!v.is_string()) throw_type_error(std::string(what) + " must be str, not " + type_name(v));
  return v.as_string();
}

// Python's str.splitlines() boundaries.
std::vector<std::string> splitlines(const std::string& s, bool keepends) {
  std::vector<std::string> out;
  std::u32string u = utf8_decode(s);
  size_t start = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    char32_t c = u[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    size_t end = i;
    if (c == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
    out.push_back(utf8_encode(u.substr(start, (keepends ? i + 1 : end) - start)));
    start = i + 1;
  }
  if (start < u.size()) out.push_back(utf8_encode(u.substr(start)));
  return out;
}

Value str_list(const std::vector<std::string>& parts) {
  std::vector<Value> v;
  v.reserve(parts.size());
  for (const auto& p : parts) v.emplace_back(p);
  return Value::list(std::move(v));
}

// Python slice index normalisation (PySlice_AdjustIndices).
void adjust_slice(int64_t len, const Value& a, const Value& b, const Value& c, int64_t& start, int64_t& stop,
                  int64_t& step) {
  auto as_idx = [](const Value& v) -> int64_t {
    if (!v.is_int() && !v.is_bool())
      throw_type_error("slice indices must be integers or None or have an __index__ method");
    return v.int_value();
  };
  step = c.is_none() ? 1 : as_idx(c);
  if (step == 0) throw_value_error("slice step cannot be zero");
  if (a.is_none()) {
    start = step < 0 ? len - 1 : 0;
  } else {
    start = as_idx(a);
    if (start < 0) {
      start += len;
      if (start < 0) start = step < 0 ? -1 : 0;
    } else if (start >= len) {
      start = step < 0 ? len - 1 : len;
    }
  }
  if (b.is_none()) {
    stop = step < 0 ? -1 : len;
  } else {
    stop = as_idx(b);
    if (stop < 0) {
      stop += len;
      if (stop < 0) stop = step < 0 ? -1 : 0;
    } else if (stop >= len) {
      stop = step < 0 ? len - 1 : len;
    }
  }
}

template <typename Seq>
Seq slice_seq(const Seq& s, int64_t start, int64_t stop, int64_t step) {
  Seq out;
  if (step > 0)
    for (int64_t i = start; i < stop; i += step) out.push_back(s[static_cast<size_t>(i)]);
  else
    for (int64_t i = start; i > stop; i += step) out.push_back(s[static_cast<size_t>(i)]);
  return out;
}

bool starts_or_ends(const std::string& s, const Value& affix, const Params& p, bool ends, const char* fn) {
  std::u32string u;
  std::string sub = s;
  if (p.has(1) || p.has(2)) {  // start/end bounds: slice in code points first
    u = utf8_decode(s);
    int64_t a, b, st;
    adjust_slice(static_cast<int64_t>(u.size()), p.get(1, Value::none()), p.get(2, Value::none()), Value::none(), a, b, st);
    sub = b > a ? utf8_encode(u.substr(static_cast<size_t>(a), static_cast<size_t>(b - a))) : std::string();
    if (a > static_cast<int64_t>(u.size())) return false;
  }
  auto test = [&](const std::string& x) {
    if (x.size() > sub.size()) return false;
    return ends ? sub.compare(sub.size() - x.size(), x.size(), x) == 0 : sub.compare(0, x.size(), x) == 0;
  };
  if (affix.is_list() && affix.as_list().tuple) {
    for (const auto& x : affix.as_list().items)
      if (test(require_str(x, fn))) return true;
    return false;
  }
  if (!affix.is_string())
    throw_type_error(std::string(fn) + " first arg must be str or a tuple of str, not " + type_name(affix));
  return test(affix.as_string());
}

// Sandboxed str.format: positional/keyword fields with optional conversion; format specs limited
// to what templates use (none).
std::string str_format(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      size_t close = fmt.find('}', i);
      if (close == std::string::npos) throw_value_error("Single '{' encountered in format string");
      std::string field = fmt.substr(i + 1, close - i - 1);
      std::string conv, spec;
      size_t colon = field.find(':');
      if (colon != std::string::npos) {
        spec = field.substr(colon + 1);
        field = field.substr(0, colon);
      }
      size_t bang = field.find('!');
      if (bang != std::string::npos) {
        conv = field.substr(bang + 1);
        field = field.substr(0, bang);
      }
      if (!spec.empty()) throw_unsupported("str.format specs ('" + spec + "') are not supported");
      Value v;
      if (field.empty()) {
        if (auto_idx >= a.pos.size()) throw ValueError{ValueError::Kind::kValue, "Replacement index out of range"};
        v = a.pos[auto_idx++];
      } else if (std::all_of(field.begin(), field.end(), [](char x) { return std::isdigit(static_cast<unsigned char>(x)); })) {
        const size_t k = static_cast<size_t>(parse_small_decimal(field, "format field"));
        if (k >= a.pos.size()) throw ValueError{ValueError::Kind::kValue, "Replacement index out of range"};
        v = a.pos[k];
      } else {
        bool found = false;
        for (const auto& [k, val] : a.kw)
          if (k == field) {
            v = val;
            found = true;
          }
        if (!found) throw ValueError{ValueError::Kind::kValue, "KeyError: '" + field + "'"};
      }
      out += conv == "r" ? repr(v) : to_str(v);
      i = close;
    } else if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      else throw_value_error("Single '}' encountered in format string");
      out += '}';
    } else {
      out += c;
    }
  }
  return out;
}

bool all_chars(const std::string& s, bool (*pred)(char32_t)) {
  std::u32string u = utf8_decode(s);
  if (u.empty()) return false;
  return std::all_of(u.begin(), u.end(), pred);
}
utf8proc_category_t cat(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }
bool is_alpha(char32_t c) {
  auto k = cat(c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
         k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
}
bool is_digit(char32_t c) { return cat(c) == UTF8PROC_CATEGORY_ND; }
bool is_alnum(char32_t c) {
  auto k = cat(c);
  return is_alpha(c) || k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

// islower/isupper: at least one cased character and none of the other case.
bool case_test(const std::string& s, bool lower) {
  bool any = false;
  for (char32_t c : utf8_decode(s)) {
    auto k = cat(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT) {
      if (lower) return false;
      any = true;
    } else if (k == UTF8PROC_CATEGORY_LL) {
      if (!lower) return false;
      any = true;
    }
  }
  return any;
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, int where) {  // -1 left, 0 center, 1 right
  if (length(Value(fill)) != 1) throw_type_error("The fill character must be exactly one character long");
  int64_t n = length(Value(s));
  if (n >= width) return s;
  int64_t total = width - n;
  check_built_size(total * static_cast<int64_t>(fill.size()) + static_cast<int64_t>(s.size()), "padding");
  int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < total - left; ++i) out += fill;
  return out;
}

Value string_method(const std::string& s, const std::string& name) {
  using F = std::function<Value(CallArgs&)>;
  F f;
  const std::string fn = "str." + name;
  if (name == "split" || name == "rsplit") {
    bool right = name == "rsplit";
    f = [s, fn, right](CallArgs& a) {
      Params p(a, fn, {"sep", "maxsplit"});
      return str_list(py_split(s, p.get(0, Value::none()), p.get_int(1, -1), right));
    };
  } else if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    f = [s, fn, l, r](CallArgs& a) {
      Params p(a, fn, {"chars"});
      return Value(py_strip(s, p.get(0, Value::none()), l, r));
    };
  } else if (name == "startswith" || name == "endswith") {
    bool ends = name == "endswith";
    f = [s, fn, ends](CallArgs& a) {
      if (!a.kw.empty()) throw_type_error(fn + "() takes no keyword arguments");
      Params p(a, fn, {"prefix", "start", "end"});
      return Value(starts_or_ends(s, p.get(0), p, ends, fn.c_str()));
    };
  } else if (name == "replace") {
    f = [s, fn](CallArgs& a) {
      Params p(a, fn, {"old", "new", "count"});
      return Value(py_replace(s, require_str(p.get(0), "replace() argument 1"),
                              require_str(p.get(1), "replace() argument 2"), p.get_int(2, -1)));
    };
  } else if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "casefold" ||
             name == "swapcase") {
    f = [s, fn, name](CallArgs& a) {
      Params p(a, fn, {});
      if (name == "upper") return Value(py_upper(s));
      if (name == "lower" || name == "casefold") return Value(py_lower(s));
      if (name == "title") return Value(py_title(s));
      if (name == "capitalize") return Value(py_capitalize(s));
      std::string o;
      for (char32_t c : utf8_decode(s)) {
        auto k = cat(c);
        auto cp = static_cast<utf8proc_int32_t>(c);
        utf8_append(o, static_cast<char32_t>(k == UTF8PROC_CATEGORY_LU ? utf8proc_tolower(cp)
                                             : k == UTF8PROC_CATEGORY_LL ? utf8proc_toupper(cp)
                                                                         : cp));
      }
      return Value(o);
    };
  } else if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    f = [s, fn, name](CallArgs& a) {
      Params p(a, fn, {"sub", "start", "end"});
      const std::string& sub = require_str(p.get(0), "must be str");
      std::u32string u = utf8_decode(s);
      int64_t st, en, step;
      adjust_slice(static_cast<int64_t>(u.size()), p.get(1, Value::none()), p.get(2, Value::none()), Value::none(), st,
                   en, step);
      std::u32string hay = en > st ? u.substr(static_cast<size_t>(st), static_cast<size_t>(en - st)) : std::u32string();
      std::u32string needle = utf8_decode(sub);
      if (name == "count") {
        if (needle.empty()) return Value(static_cast<int64_t>(hay.size() + 1));
        int64_t n = 0;
        for (size_t pos = hay.find(needle); pos != std::u32string::npos; pos = hay.find(needle, pos + needle.size()))
          ++n;
        return Value(n);
      }
      size_t pos = (name == "find" || name == "index") ? hay.find(needle) : hay.rfind(needle);
      if (pos == std::u32string::npos) {
        if (name == "index" || name == "rindex") throw_value_error("substring not found");
        return Value(-1);
      }
      return Value(static_cast<int64_t>(pos) + st);
    };
  } else if (name == "join") {
    f = [s, fn](CallArgs& a) {
      Params p(a, fn, {"iterable"});
      std::string out;
      bool first = true;
      for (const auto& x : iterate(p.get(0))) {
        if (!x.is_string()) throw_type_error("sequence item: expected str instance, " + type_name(x) + " found");
        if (!first) out += s;
        first = false;
        out += x.as_string();
      }
      return Value(out);
    };
  } else if (name == "splitlines") {
    f = [s, fn](CallArgs& a) {
      Params p(a, fn, {"keepends"});
      return str_list(splitlines(s, truthy(p.get(0, Value(false)))));
    };
  } else if (name == "isdigit" || name == "isdecimal" || name == "isnumeric" || name == "isalpha" ||
             name == "isalnum" || name == "isspace" || name == "islower" || name == "isupper") {
    f = [s, fn, name](CallArgs& a) {
      Params p(a, fn, {});
      if (name == "isalpha") return Value(all_chars(s, is_alpha));
      if (name == "isalnum") return Value(all_chars(s, is_alnum));
      if (name == "isspace") return Value(all_chars(s, is_py_space));
      if (name == "islower") return Value(case_test(s, true));
      if (name == "isupper") return Value(case_test(s, false));
      return Value(all_chars(s, is_digit));
    };
  } else if (name == "center" || name == "ljust" || name == "rjust") {
    int where = name == "center" ? 0 : name == "ljust" ? -1 : 1;
    f = [s, fn, where](CallArgs& a) {
      Params p(a, fn, {"width", "fillchar"});
      return Value(pad(s, p.get_int(0, 0), p.get_str(1, " "), where));
    };
  } else if (name == "zfill") {
    f = [s, fn](CallArgs& a) {
      Params p(a, fn, {"width"});
      int64_t w = p.get_int(0, 0), n = length(Value(s));
      if (n >= w) return Value(s);
      check_built_size(w, "zfill");
      size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
      return Value(s.substr(0, sign) + std::string(static_cast<size_t>(w - n), '0') + s.substr(sign));
    };
  } else if (name == "format") {
    f = [s](CallArgs& a) { return Value(str_format(s, a)); };
  } else if (name == "partition" || name == "rpartition" || name == "expandtabs" || name == "encode" ||
             name == "translate" || name == "maketrans" || name == "istitle" || name == "isidentifier" ||
             name == "isprintable" || name == "isascii" || name == "format_map" || name == "removeprefix" ||
             name == "removesuffix") {
    if (name == "removeprefix" || name == "removesuffix") {
      bool suffix = name == "removesuffix";
      f = [s, fn, suffix](CallArgs& a) {
        Params p(a, fn, {"affix"});
        const std::string& x = require_str(p.get(0), fn.c_str());
        if (x.size() <= s.size() && (suffix ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0))
          return Value(suffix ? s.substr(0, s.size() - x.size()) : s.substr(x.size()));
        return Value(s);
      };
    } else {
      f = [fn](CallArgs&) -> Value { throw_unsupported(fn + "() is not supported by circuitscope's Jinja engine"); };
    }
  } else {
    return Value::undefined("'str object' has no attribute '" + name + "'");
  }
  return make_callable(fn, std::move(f));
}

Value dict_view(std::vector<Value> items, const char* view) {
  auto l = std::make_shared<ListData>();
  l->items = std::move(items);
  l->view = view;
  return Value(ListPtr(std::move(l)));
}

Value dict_method(const DictPtr& d, const std::string& name) {
  if (name == "get")
    return make_callable("dict.get", [d](CallArgs& a) {
      Params p(a, "get", {"key", "default"});
      const Value& k = p.get(0);
      const Value* v = k.is_string() ? d->find(k.as_string()) : nullptr;
      return v ? *v : p.get(1, Value::none());
    });
  if (name == "items")
    return make_callable("dict.items", [d](CallArgs& a) {
      Params p(a, "items", {});
      std::vector<Value> out;
      for (const auto& [k, v] : d->items) out.push_back(Value::list({Value(k), v}, true));
      return dict_view(std::move(out), "dict_items");
    });
  if (name == "keys")
    return make_callable("dict.keys", [d](CallArgs& a) {
      Params p(a, "keys", {});
      std::vector<Value> out;
      for (const auto& kv : d->items) out.emplace_back(kv.first);
      return dict_view(std::move(out), "dict_keys");
    });
  if (name == "values")
    return make_callable("dict.values", [d](CallArgs& a) {
      Params p(a, "values", {});
      std::vector<Value> out;
      for (const auto& kv : d->items) out.push_back(kv.second);
      return dict_view(std::move(out), "dict_values");
    });
  if (name == "copy")
    return make_callable("dict.copy", [d](CallArgs& a) {
      Params p(a, "copy", {});
      return Value(d);
    });
  return Value();  // not a method: the caller looks the key up
}

bool is_mutator(const Value& obj, const std::string& name) {
  static const char* const kDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
  static const char* const kList[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
  if (obj.is_dict()) return std::any_of(std::begin(kDict), std::end(kDict), [&](const char* m) { return name == m; });
  if (obj.is_list() && !obj.as_list().tuple)
    return std::any_of(std::begin(kList), std::end(kList), [&](const char* m) { return name == m; });
  return false;
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
}

std::string object_desc(const Value& obj) {  // Jinja's object_type_repr
  if (obj.is_none()) return "None";
  if (obj.is_namespace()) return "jinja2.utils.Namespace object";
  return type_name(obj) + " object";
}

Value missing_attr(const Value& obj, const std::string& name) {
  return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + name + "'");
}

Value list_method(const Value& obj, const std::string& name) {
  ListPtr l = obj.list_ptr();
  if (name == "index")
    return make_callable("list.index", [l](CallArgs& a) {
      Params p(a, "index", {"value"});
      for (size_t i = 0; i < l->items.size(); ++i)
        if (equals(l->items[i], p.get(0))) return Value(static_cast<int64_t>(i));
      throw_value_error(repr(p.get(0)) + " is not in list");
    });
  if (name == "count")
    return make_callable("list.count", [l](CallArgs& a) {
      Params p(a, "count", {"value"});
      int64_t n = 0;
      for (const auto& x : l->items) n += equals(x, p.get(0));
      return Value(n);
    });
  return Value();
}

}  // namespace

// ---- attribute / item access ---------------------------------------------------------------------

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.type()) {
    case Value::Type::kUndefined:
      throw_undefined(obj);
    case Value::Type::kDict: {
      Value m = dict_method(obj.dict_ptr(), name);
      if (!m.is_undefined()) return m;
      if (is_mutator(obj, name)) return unsafe(obj, name);
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return missing_attr(obj, name);
    }
    case Value::Type::kString:
      return string_method(obj.as_string(), name);
    case Value::Type::kList: {
      Value m = list_method(obj, name);
      if (!m.is_undefined()) return m;
      if (is_mutator(obj, name)) return unsafe(obj, name);
      return missing_attr(obj, name);
    }
    case Value::Type::kNamespace:
      if (const Value* v = obj.as_namespace().attrs.find(name)) return *v;
      return missing_attr(obj, name);
    default:
      return missing_attr(obj, name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) throw_undefined(obj);
  if (key.is_undefined()) {
    // Jinja evaluates obj[undefined] as an ordinary lookup that misses.
    return Value::undefined("'" + object_desc(obj) + "' has no attribute ''");
  }
  auto no_element = [&]() {
    return Value::undefined(object_desc(obj) + " has no element " + repr(key));
  };
  switch (obj.type()) {
    case Value::Type::kDict: {
      if (key.is_string()) {
        if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
        return get_attr(obj, key.as_string());
      }
      return no_element();
    }
    case Value::Type::kList: {
      if (key.is_int() || key.is_bool()) {
        const auto& items = obj.as_list().items;
        int64_t i = key.int_value(), n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return no_element();
        return items[static_cast<size_t>(i)];
      }
      if (key.is_string()) return get_attr(obj, key.as_string());
      return no_element();
    }
    case Value::Type::kString: {
      if (key.is_int() || key.is_bool()) {
        const std::string& s = obj.as_string();
        int64_t i = key.int_value();
        if (is_ascii(s)) {
          int64_t n = static_cast<int64_t>(s.size());
          if (i < 0) i += n;
          if (i < 0 || i >= n) return no_element();
          return Value(std::string(1, s[static_cast<size_t>(i)]));
        }
        std::u32string u = utf8_decode(s);
        int64_t n = static_cast<int64_t>(u.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return no_element();
        std::string out;
        utf8_append(out, u[static_cast<size_t>(i)]);
        return Value(out);
      }
      if (key.is_string()) return get_attr(obj, key.as_string());
      return no_element();
    }
    case Value::Type::kNamespace:
      if (key.is_string()) return get_attr(obj, key.as_string());
      return no_element();
    default:
      if (key.is_string()) return get_attr(obj, key.as_string());
      return no_element();
  }
}

Value get_slice(const Value& obj, const Value& a, const Value& b, const Value& c) {
  if (obj.is_undefined()) throw_undefined(obj);
  int64_t start, stop, step;
  if (obj.is_list()) {
    const auto& items = obj.as_list().items;
    adjust_slice(static_cast<int64_t>(items.size()), a, b, c, start, stop, step);
    return Value::list(slice_seq(items, start, stop, step), obj.as_list().tuple);
  }
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (is_ascii(s)) {
      adjust_slice(static_cast<int64_t>(s.size()), a, b, c, start, stop, step);
      return Value(slice_seq(s, start, stop, step));
    }
    std::u32string u = utf8_decode(s);
    adjust_slice(static_cast<int64_t>(u.size()), a, b, c, start, stop, step);
    return Value(utf8_encode(slice_seq(u, start, stop, step)));
  }
  return Value::undefined(object_desc(obj) + " has no element slice(" + repr(a) + ", " + repr(b) + ", " + repr(c) + ")");
}

// ---- filters --------------------------------------------------------------------------------------------

namespace {

// Jinja's environment.getitem-based attribute path ("a.b.0") used by map/selectattr/sort/...
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char x) { return std::isdigit(static_cast<unsigned char>(x)); });
    int64_t index = 0;
    if (numeric) {
      errno = 0;
      index = std::strtoll(part.c_str(), nullptr, 10);
      if (errno == ERANGE) throw_unsupported("attribute path '" + path + "': index beyond 64 bits");
    }
    cur = numeric ? get_item(cur, Value(index)) : get_item(cur, Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort key comparison with Jinja's case_sensitive=False default (strings compared lowercased).
int key_compare(const Value& a, const Value& b, bool case_sensitive) {
  if (!case_sensitive && a.is_string() && b.is_string()) {
    std::string x = py_lower(a.as_string()), y = py_lower(b.as_string());
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  return compare(a, b, "<");
}

Value ignore_case(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(py_lower(v.as_string())) : v;
}

// Python's int() of a float: truncation toward zero. Its result may be any size; ours must fit in
// 64 bits (converting a double outside that range is undefined behaviour in C++).
Value int_of_double(double d) {
  const double t = std::trunc(d);
  constexpr double kTwo63 = 9223372036854775808.0;
  if (!(t >= -kTwo63 && t < kTwo63))
    throw_unsupported("int(" + std::to_string(d) + "): integers beyond 64 bits are not supported");
  return Value(static_cast<int64_t>(t));
}

Value f_abs(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "abs", {});
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    if (v.int_value() == std::numeric_limits<int64_t>::min()) throw_unsupported("abs(-2**63): integers beyond 64 bits are not supported");
    return Value(static_cast<int64_t>(std::llabs(v.int_value())));
  }
  throw_type_error("bad operand type for abs(): '" + type_name(v) + "'");
}

// Jinja's attr() is Python getattr only: methods and namespace attributes, never dict keys.
Value f_attr(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "attr", {"name"});
  if (v.is_undefined()) throw_undefined(v);
  const std::string name = to_str(p.get(0));
  if (v.is_namespace()) return get_attr(v, name);
  Value m = v.is_dict() ? dict_method(v.dict_ptr(), name)
            : v.is_list() ? list_method(v, name)
            : v.is_string() ? string_method(v.as_string(), name)
                            : Value();
  if (!m.is_undefined()) return m;
  if (is_mutator(v, name)) return unsafe(v, name);
  return missing_attr(v, name);
}

Value f_batch(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "batch", {"linecount", "fill_with"});
  int64_t n = p.get_int(0, 1);
  if (n <= 0) throw_value_error("batch(): linecount must be positive");
  std::vector<Value> out, cur;
  for (auto& x : iterate(v)) {
    cur.push_back(x);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (p.has(1) && !p.get(1).is_none())
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(p.get(1));
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "capitalize", {});
  return Value(py_capitalize(to_str(v)));
}

Value f_center(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "center", {"width"});
  return Value(pad(to_str(v), p.get_int(0, 80), " ", 0));
}

Value f_length(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "length", {});
  return Value(length(v));
}

Value f_default(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "default", {"default_value", "boolean"});
  bool boolean = truthy(p.get(1, Value(false)));
  if (v.is_undefined() || (boolean && !truthy(v))) return p.get(0, Value(""));
  return v;
}

Value f_dictsort(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "dictsort", {"case_sensitive", "by", "reverse"});
  bool cs = truthy(p.get(0, Value(false)));
  std::string by = p.get_str(1, "key");
  bool rev = truthy(p.get(2, Value(false)));
  if (by != "key" && by != "value") throw_value_error("You can only sort by either \"key\" or \"value\"");
  if (v.is_undefined()) throw_undefined(v);
  if (!v.is_dict()) throw_type_error("dictsort: expected a mapping, got " + type_name(v));
  std::vector<Value> items;
  for (const auto& [k, x] : v.as_dict().items) items.push_back(Value::list({Value(k), x}, true));
  size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    int c = key_compare(x.as_list().items[idx], y.as_list().items[idx], cs);
    return rev ? c > 0 : c < 0;
  });
  return Value::list(std::move(items));
}

Value f_escape(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "escape", {});
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(out);
}

Value f_first(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "first", {});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "last", {});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

// Python float(str): optional whitespace, sign, digits with underscores, inf/nan.
bool parse_py_float(const std::string& s0, double& out) {
  std::string s = py_strip(s0, Value::none(), true, true);
  if (s.empty()) return false;
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return false;
      continue;
    }
    t += s[i];
  }
  std::string low = py_lower(t);
  std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  if (body == "inf" || body == "infinity" || body == "nan") {
    out = body == "nan" ? std::nan("") : HUGE_VAL;
    if (low[0] == '-') out = -out;
    return true;
  }
  if (body.empty() || !(std::isdigit(static_cast<unsigned char>(body[0])) || body[0] == '.')) return false;
  if (body.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
  char* end = nullptr;
  out = std::strtod(t.c_str(), &end);
  return end && *end == '\0';
}

bool parse_py_int(const std::string& s0, int base, int64_t& out) {
  std::string s = py_strip(s0, Value::none(), true, true);
  if (s.empty()) return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (base == 16 && s.compare(i, 2, "0x") == 0) i += 2;
  if (i >= s.size()) return false;
  std::string digits;
  for (size_t j = i; j < s.size(); ++j) {
    if (s[j] == '_') {
      if (j == i || j + 1 >= s.size() || s[j + 1] == '_') return false;
      continue;
    }
    digits += s[j];
  }
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (!end || *end != '\0' || errno == ERANGE || digits.empty() || digits[0] == '-' || digits[0] == '+') return false;
  out = neg ? -v : v;
  return true;
}

Value f_float(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "float", {"default"});
  Value def = p.get(0, Value(0.0));
  if (v.is_undefined()) throw_undefined(v);  // Undefined.__float__ raises
  if (v.is_number()) return Value(v.float_value());
  double d = 0;
  if (v.is_string() && parse_py_float(v.as_string(), d)) return Value(d);
  return def;
}

Value f_int(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "int", {"default", "base"});
  Value def = p.get(0, Value(0));
  int base = static_cast<int>(p.get_int(1, 10));
  if (v.is_undefined()) throw_undefined(v);  // Undefined.__int__ raises
  if (v.is_int() || v.is_bool()) return Value(v.int_value());
  if (v.is_float()) {
    double d = v.as_float();
    if (std::isnan(d) || std::isinf(d)) return def;
    return int_of_double(d);
  }
  if (v.is_string()) {
    int64_t i = 0;
    if (parse_py_int(v.as_string(), base, i)) return Value(i);
    double d = 0;
    if (parse_py_float(v.as_string(), d) && !std::isnan(d) && !std::isinf(d)) return int_of_double(d);
  }
  return def;
}

Value f_format(Runtime&, const Value& v, CallArgs& a) {
  if (!a.kw.empty() && !a.pos.empty()) throw_value_error("can't handle positional and keyword arguments at the same time");
  if (!a.kw.empty()) {
    DictData d;
    for (auto& [k, x] : a.kw) d.set(k, x);
    return Value(percent_format(to_str(v), make_dict(std::move(d))));
  }
  return Value(percent_format(to_str(v), Value::list(a.pos, true)));
}

Value f_indent(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "indent", {"width", "first", "blank"});
  Value w = p.get(0, Value(4));
  if (!w.is_string()) check_built_size(w.int_value(), "indent width");
  std::string ind = w.is_string() ? w.as_string() : std::string(static_cast<size_t>(std::max<int64_t>(0, w.int_value())), ' ');
  bool first = truthy(p.get(1, Value(false))), blank = truthy(p.get(2, Value(false)));
  if (v.is_undefined()) throw_undefined(v);  // Jinja appends "\n" to it, which Undefined refuses
  if (!v.is_string()) throw_type_error("indent: expected a string, got " + type_name(v) + " (Jinja does s += '\\n')");
  std::string s = v.as_string() + "\n";  // Jinja's own quirk, for splitlines
  std::vector<std::string> lines = splitlines(s, false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else if (!lines.empty()) {
    rv = lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        rv += lines[i].empty() ? lines[i] : ind + lines[i];
      }
    }
  }
  if (first) rv = ind + rv;
  return Value(rv);
}

Value f_items(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "items", {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) throw_type_error("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.as_dict().items) out.push_back(Value::list({Value(k), x}, true));
  return Value::list(std::move(out));
}

Value f_join(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "join", {"d", "attribute"});
  std::string sep = to_str(p.get(0, Value("")));
  std::string out;
  bool first = true;
  for (const auto& x : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(p.has(1) && !p.get(1).is_none() ? attr_path(x, to_str(p.get(1))) : x);
  }
  return Value(out);
}

Value f_list(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "list", {});
  return Value::list(iterate(v));
}

Value f_lower(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "lower", {});
  return Value(py_lower(to_str(v)));
}

Value f_upper(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "upper", {});
  return Value(py_upper(to_str(v)));
}

Value f_map(Runtime& rt, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  bool by_attr = false;
  std::string attribute;
  Value def;
  bool has_def = false;
  for (auto& [k, x] : a.kw) {
    if (k == "attribute") {
      by_attr = true;
      attribute = to_str(x);
    } else if (k == "default") {
      def = x;
      has_def = true;
    }
  }
  if (by_attr) {
    if (!truthy(v)) return Value::list({});
    for (const auto& x : iterate(v)) {
      Value r = attr_path(x, attribute);
      out.push_back(r.is_undefined() && has_def ? def : r);
    }
    return Value::list(std::move(out));
  }
  if (!truthy(v)) return Value::list({});  // Jinja's map starts with `if value:`
  if (a.pos.empty()) throw_type_error("map requires a filter argument");
  std::string fname = to_str(a.pos[0]);
  CallArgs rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (const auto& x : iterate(v)) {
    CallArgs copy = rest;
    out.push_back(apply_filter_by_name(rt, fname, x, copy));
  }
  return Value::list(std::move(out));
}

Value min_max(const Value& v, CallArgs& a, bool want_max) {
  Params p(a, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  bool cs = truthy(p.get(0, Value(false)));
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  auto key = [&](const Value& x) {
    Value k = p.has(1) && !p.get(1).is_none() ? attr_path(x, to_str(p.get(1))) : x;
    return ignore_case(k, cs);
  };
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    int c = compare(key(items[i]), key(items[best]), want_max ? ">" : "<");
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}
Value f_max(Runtime&, const Value& v, CallArgs& a) { return min_max(v, a, true); }
Value f_min(Runtime&, const Value& v, CallArgs& a) { return min_max(v, a, false); }

// select/reject/selectattr/rejectattr share this.
Value select_impl(Runtime& rt, const Value& v, CallArgs& a, bool by_attr, bool keep_if) {
  size_t i = 0;
  std::string attribute;
  if (by_attr) {
    if (a.pos.empty()) throw_type_error("selectattr/rejectattr need an attribute name");
    attribute = to_str(a.pos[0]);
    i = 1;
  }
  std::string test;
  bool has_test = i < a.pos.size();
  if (has_test) test = to_str(a.pos[i]);
  CallArgs targs;
  if (has_test) targs.pos.assign(a.pos.begin() + static_cast<long>(i) + 1, a.pos.end());
  targs.kw = a.kw;
  std::vector<Value> out;
  if (!truthy(v)) return Value::list({});  // Jinja's select_or_reject starts with `if seq:`
  for (const auto& x : iterate(v)) {
    Value subject = by_attr ? attr_path(x, attribute) : x;
    bool r;
    if (has_test) {
      CallArgs copy = targs;
      r = apply_test_by_name(rt, test, subject, copy);
    } else {
      r = truthy(subject);
    }
    if (r == keep_if) out.push_back(x);
  }
  return Value::list(std::move(out));
}
Value f_select(Runtime& rt, const Value& v, CallArgs& a) { return select_impl(rt, v, a, false, true); }
Value f_reject(Runtime& rt, const Value& v, CallArgs& a) { return select_impl(rt, v, a, false, false); }
Value f_selectattr(Runtime& rt, const Value& v, CallArgs& a) { return select_impl(rt, v, a, true, true); }
Value f_rejectattr(Runtime& rt, const Value& v, CallArgs& a) { return select_impl(rt, v, a, true, false); }

Value f_replace(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "replace", {"old", "new", "count"});
  return Value(py_replace(to_str(v), to_str(p.get(0)), to_str(p.get(1)), p.get_int(2, -1)));
}

Value f_reverse(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "reverse", {});
  if (v.is_string()) return get_slice(v, Value::none(), Value::none(), Value(-1));
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "round", {"precision", "method"});
  int64_t prec = p.get_int(0, 0);
  std::string method = p.get_str(1, "common");
  if (method != "common" && method != "ceil" && method != "floor")
    throw ValueError{ValueError::Kind::kType, "method must be 'common', 'ceil' or 'floor'"};
  if (!v.is_number()) throw_type_error("type " + type_name(v) + " doesn't define __round__ method");
  double scale = std::pow(10.0, static_cast<double>(prec));
  double x = v.float_value() * scale;
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);  // half-even
  if (method == "common" && !v.is_float()) return Value(v.int_value());  // round(int, n) stays int
  return Value(r / scale);
}

Value f_safe(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "safe", {});
  return Value(to_str(v));
}

Value f_sort(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "sort", {"reverse", "case_sensitive", "attribute"});
  bool rev = truthy(p.get(0, Value(false))), cs = truthy(p.get(1, Value(false)));
  std::string attribute = p.has(2) && !p.get(2).is_none() ? to_str(p.get(2)) : "";
  std::vector<Value> items = iterate(v);
  std::vector<Value> keys;
  for (const auto& x : items) keys.push_back(ignore_case(attribute.empty() ? x : attr_path(x, attribute), cs));
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return rev ? compare(keys[y], keys[x], "<") < 0 : compare(keys[x], keys[y], "<") < 0;
  });
  std::vector<Value> out;
  for (size_t i : order) out.push_back(items[i]);
  return Value::list(std::move(out));
}

Value f_string(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "string", {});
  return Value(to_str(v));
}

Value f_sum(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "sum", {"attribute", "start"});
  Value total = p.get(1, Value(0));
  std::string attribute = p.has(0) && !p.get(0).is_none() ? to_str(p.get(0)) : "";
  for (const auto& x : iterate(v)) total = op_add(total, attribute.empty() ? x : attr_path(x, attribute));
  return total;
}

Value f_title(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "title", {});
  // Jinja splits on runs of [-\s({[<] and capitalises each piece's first character.
  std::u32string u = utf8_decode(to_str(v));
  auto is_sep = [](char32_t c) { return is_py_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  std::string out;
  bool at_start = true;
  for (char32_t c : u) {
    if (is_sep(c)) {
      utf8_append(out, c);
      at_start = true;
      continue;
    }
    std::string ch;
    utf8_append(ch, c);
    out += at_start ? py_upper(ch) : py_lower(ch);  // Jinja: item[0].upper() + item[1:].lower()
    at_start = false;
  }
  return Value(out);
}

// Hugging Face's tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value f_tojson(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = truthy(p.get(0, Value(false)));
  Value indent = p.get(1, Value::none());
  if (indent.is_string()) {
    o.indent_is_string = true;
    o.indent_string = indent.as_string();
  } else if (indent.is_int() || indent.is_bool()) {
    check_built_size(indent.int_value(), "tojson indent");  // per level: real indents are 2 or 4
    if (indent.int_value() > 4096) throw_value_error("tojson: indent " + std::to_string(indent.int_value()) + " is too large");
    o.indent = static_cast<int>(std::max<int64_t>(0, indent.int_value()));
  } else if (!indent.is_none()) {
    throw_type_error("tojson: indent must be an int or a string");
  }
  if (o.indent >= 0 || o.indent_is_string) o.item_separator = ",";
  Value seps = p.get(2, Value::none());
  if (!seps.is_none()) {
    std::vector<Value> s = iterate(seps);
    if (s.size() != 2 || !s[0].is_string() || !s[1].is_string())
      throw_value_error("tojson: separators must be a pair of strings");
    o.item_separator = s[0].as_string();
    o.key_separator = s[1].as_string();
  }
  o.sort_keys = truthy(p.get(3, Value(false)));
  return Value(to_json(v, o));
}

Value f_trim(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "trim", {"chars"});
  return Value(py_strip(to_str(v), p.get(0, Value::none()), true, true));
}

Value f_truncate(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "truncate", {"length", "killwords", "end", "leeway"});
  int64_t len = p.get_int(0, 255), leeway = p.get_int(3, 5);
  if (!v.is_string()) {  // Jinja takes len() of anything, and only slices strings
    if (length(v) <= len + leeway) return v;
    throw_type_error("truncate: cannot truncate a " + type_name(v));
  }
  std::string s = v.as_string();
  bool killwords = truthy(p.get(1, Value(false)));
  std::string end = p.get_str(2, "...");
  int64_t end_len = length(Value(end));
  if (len < end_len) throw_value_error("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(len));
  if (leeway < 0) throw_value_error("expected leeway >= 0, got " + std::to_string(leeway));
  if (length(Value(s)) <= len + leeway) return Value(s);
  Value head = get_slice(Value(s), Value::none(), Value(len - end_len), Value::none());
  if (killwords) return Value(head.as_string() + end);
  std::vector<std::string> parts = py_split(head.as_string(), Value(" "), 1, true);
  return Value(parts[0] + end);
}

Value f_unique(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "unique", {"case_sensitive", "attribute"});
  bool cs = truthy(p.get(0, Value(false)));
  std::string attribute = p.has(1) && !p.get(1).is_none() ? to_str(p.get(1)) : "";
  std::vector<Value> out, seen;
  for (const auto& x : iterate(v)) {
    Value k = ignore_case(attribute.empty() ? x : attr_path(x, attribute), cs);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(x);
    }
  }
  return Value::list(std::move(out));
}

Value f_wordcount(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "wordcount", {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(to_str(v))) {
    bool w = is_alnum(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

const std::unordered_map<std::string, FilterFn>& filter_table() {
  static const std::unordered_map<std::string, FilterFn> t = {
      {"abs", f_abs},         {"attr", f_attr},         {"batch", f_batch},         {"capitalize", f_capitalize},
      {"center", f_center},   {"count", f_length},      {"d", f_default},           {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},        {"escape", f_escape},       {"forceescape", f_escape},
      {"first", f_first},     {"float", f_float},       {"format", f_format},       {"indent", f_indent},
      {"int", f_int},         {"items", f_items},       {"join", f_join},           {"last", f_last},
      {"length", f_length},   {"list", f_list},         {"lower", f_lower},         {"map", f_map},
      {"max", f_max},         {"min", f_min},           {"reject", f_reject},       {"rejectattr", f_rejectattr},
      {"replace", f_replace}, {"reverse", f_reverse},   {"round", f_round},         {"safe", f_safe},
      {"select", f_select},   {"selectattr", f_selectattr}, {"sort", f_sort},       {"string", f_string},
      {"sum", f_sum},         {"title", f_title},       {"tojson", f_tojson},       {"trim", f_trim},
      {"truncate", f_truncate}, {"unique", f_unique},   {"upper", f_upper},         {"wordcount", f_wordcount},
  };
  return t;
}

// ---- tests ----------------------------------------------------------------------------------------

bool t_defined(Runtime&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Runtime&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Runtime&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Runtime&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Runtime&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Runtime&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(Runtime&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Runtime&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_number(Runtime&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Runtime&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Runtime&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_iterable(Runtime&, const Value& v, CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_sequence(Runtime&, const Value& v, CallArgs&) {  // len() and __getitem__: dict views have no __getitem__
  return v.is_undefined() || v.is_string() || (v.is_list() && !*v.as_list().view) || v.is_dict();
}
bool t_callable(Runtime&, const Value& v, CallArgs&) { return v.is_callable() || v.is_undefined(); }  // Undefined has __call__
bool t_escaped(Runtime&, const Value&, CallArgs&) { return false; }
bool t_lower(Runtime&, const Value& v, CallArgs&) { return case_test(to_str(v), true); }
bool t_upper(Runtime&, const Value& v, CallArgs&) { return case_test(to_str(v), false); }
bool t_odd(Runtime&, const Value& v, CallArgs&) { return equals(op_mod(v, Value(2)), Value(1)); }   // value % 2 == 1
bool t_even(Runtime&, const Value& v, CallArgs&) { return equals(op_mod(v, Value(2)), Value(0)); }  // value % 2 == 0
bool t_divisibleby(Runtime&, const Value& v, CallArgs& a) {
  Params p(a, "divisibleby", {"num"});
  return !truthy(op_mod(v, p.get(0)));
}
bool t_eq(Runtime&, const Value& v, CallArgs& a) { return equals(v, Params(a, "eq", {"other"}).get(0)); }
bool t_ne(Runtime&, const Value& v, CallArgs& a) { return !equals(v, Params(a, "ne", {"other"}).get(0)); }
bool t_lt(Runtime&, const Value& v, CallArgs& a) { return compare(v, Params(a, "lt", {"other"}).get(0), "<") < 0; }
bool t_le(Runtime&, const Value& v, CallArgs& a) { return compare(v, Params(a, "le", {"other"}).get(0), "<=") <= 0; }
bool t_gt(Runtime&, const Value& v, CallArgs& a) { return compare(v, Params(a, "gt", {"other"}).get(0), ">") > 0; }
bool t_ge(Runtime&, const Value& v, CallArgs& a) { return compare(v, Params(a, "ge", {"other"}).get(0), ">=") >= 0; }
bool t_in(Runtime&, const Value& v, CallArgs& a) { return contains(Params(a, "in", {"seq"}).get(0), v); }
bool t_sameas(Runtime&, const Value& v, CallArgs& a) {
  const Value o = Params(a, "sameas", {"other"}).get(0);  // a copy: the Params temporary dies here
  if (v.type() != o.type()) return false;
  switch (v.type()) {
    case Value::Type::kList: return v.list_ptr() == o.list_ptr();
    case Value::Type::kDict: return v.dict_ptr() == o.dict_ptr();
    case Value::Type::kNamespace: return v.namespace_ptr() == o.namespace_ptr();
    case Value::Type::kCallable: return v.callable_ptr() == o.callable_ptr();
    case Value::Type::kUndefined: return false;
    default: return equals(v, o);
  }
}
bool t_filter(Runtime&, const Value& v, CallArgs&) { return v.is_string() && find_filter(v.as_string()) != nullptr; }
bool t_test(Runtime&, const Value& v, CallArgs&) { return v.is_string() && find_test(v.as_string()) != nullptr; }

const std::unordered_map<std::string, TestFn>& test_table() {
  static const std::unordered_map<std::string, TestFn> t = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},   {"divisibleby", t_divisibleby},
      {"eq", t_eq},           {"equalto", t_eq},        {"==", t_eq},             {"escaped", t_escaped},
      {"even", t_even},       {"false", t_false},       {"filter", t_filter},     {"float", t_float},
      {"ge", t_ge},           {">=", t_ge},             {"gt", t_gt},             {">", t_gt},
      {"greaterthan", t_gt},  {"in", t_in},             {"integer", t_integer},   {"iterable", t_iterable},
      {"le", t_le},           {"<=", t_le},             {"lower", t_lower},       {"lt", t_lt},
      {"<", t_lt},            {"lessthan", t_lt},       {"mapping", t_mapping},   {"ne", t_ne},
      {"!=", t_ne},           {"none", t_none},         {"number", t_number},     {"odd", t_odd},
      {"sameas", t_sameas},   {"sequence", t_sequence}, {"string", t_string},     {"test", t_test},
      {"true", t_true},       {"undefined", t_undefined}, {"upper", t_upper},
  };
  return t;
}

// ---- globals ----------------------------------------------------------------------------------------

Value g_range(CallArgs& a) {
  if (!a.kw.empty()) throw_type_error("range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3) throw_type_error("range expected 1 to 3 arguments");
  for (const auto& x : a.pos)
    if (!x.is_int() && !x.is_bool()) throw_type_error("'" + type_name(x) + "' object cannot be interpreted as an integer");
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = a.pos[0].int_value();
  } else {
    start = a.pos[0].int_value();
    stop = a.pos[1].int_value();
    if (a.pos.size() == 3) step = a.pos[2].int_value();
  }
  if (step == 0) throw_value_error("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 100000)  // the sandbox's MAX_RANGE
      throw ValueError{ValueError::Kind::kSecurity, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."};
    out.emplace_back(i);
  }
  return Value::list(std::move(out));
}

Value g_dict(CallArgs& a) {
  DictData d;
  for (const auto& x : a.pos) {
    if (!x.is_dict()) throw_type_error("dict(): positional argument must be a mapping");
    for (const auto& [k, v] : x.as_dict().items) d.set(k, v);
  }
  for (const auto& [k, v] : a.kw) d.set(k, v);
  return make_dict(std::move(d));
}

Value g_namespace(CallArgs& a) {
  auto ns = std::make_shared<NamespaceData>();
  track_namespace(ns);
  for (const auto& x : a.pos) {
    if (!x.is_dict()) throw_type_error("namespace(): positional argument must be a mapping");
    for (const auto& [k, v] : x.as_dict().items) ns->attrs.set(k, v);
  }
  for (const auto& [k, v] : a.kw) ns->attrs.set(k, v);
  return Value(NamespacePtr(std::move(ns)));
}

Value g_raise_exception(CallArgs& a) {
  Params p(a, "raise_exception", {"message"});
  throw ValueError{ValueError::Kind::kRaised, to_str(p.get(0))};
}

Value g_strftime_now(CallArgs& a) {
  Params p(a, "strftime_now", {"format"});
  std::string fmt = require_str(p.get(0), "strftime_now() format");
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[512];
  size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
  return Value(std::string(buf, n));
}

Value g_joiner(CallArgs& a) {
  Params p(a, "joiner", {"sep"});
  std::string sep = p.get_str(0, ", ");
  auto used = std::make_shared<bool>(false);
  return make_callable("joiner", [sep, used](CallArgs&) {
    if (!*used) {
      *used = true;
      return Value("");
    }
    return Value(sep);
  });
}

Value g_cycler(CallArgs& a) {
  if (a.pos.empty()) throw_type_error("at least one item has to be provided");
  auto ns = std::make_shared<NamespaceData>();
  track_namespace(ns);
  auto items = std::make_shared<std::vector<Value>>(a.pos);
  auto pos = std::make_shared<size_t>(0);
  // `cycler(...).next` may outlive its cycler (Jinja2 allows it): the callables own the state and
  // update `current` only while the namespace lives. A weak pointer: no cycle through the callables.
  std::weak_ptr<NamespaceData> weak = ns;
  ns->attrs.set("current", (*items)[0]);
  ns->attrs.set("next", make_callable("cycler.next", [items, pos, weak](CallArgs&) {
                  Value v = (*items)[*pos];
                  *pos = (*pos + 1) % items->size();
                  if (auto n = weak.lock()) n->attrs.set("current", (*items)[*pos]);
                  return v;
                }));
  ns->attrs.set("reset", make_callable("cycler.reset", [items, pos, weak](CallArgs&) {
                  *pos = 0;
                  if (auto n = weak.lock()) n->attrs.set("current", (*items)[0]);
                  return Value::none();
                }));
  return Value(NamespacePtr(std::move(ns)));
}

const std::unordered_map<std::string, Value>& global_table() {
  static const std::unordered_map<std::string, Value> t = {
      {"range", make_callable("range", g_range)},
      {"dict", make_callable("dict", g_dict)},
      {"namespace", make_callable("namespace", g_namespace)},
      {"joiner", make_callable("joiner", g_joiner)},
      {"cycler", make_callable("cycler", g_cycler)},
      {"raise_exception", make_callable("raise_exception", g_raise_exception)},
      {"strftime_now", make_callable("strftime_now", g_strftime_now)},
  };
  return t;
}

}  // namespace

FilterFn find_filter(const std::string& name) {
  auto it = filter_table().find(name);
  return it == filter_table().end() ? nullptr : it->second;
}

TestFn find_test(const std::string& name) {
  auto it = test_table().find(name);
  return it == test_table().end() ? nullptr : it->second;
}

bool is_jinja_builtin_filter(const std::string& name) {
  static const char* const kAll[] = {"filesizeformat", "groupby", "pprint", "random", "slice", "striptags",
                                     "urlencode", "urlize", "wordwrap", "xmlattr"};
  return std::any_of(std::begin(kAll), std::end(kAll), [&](const char* n) { return name == n; });
}

const Value* find_global(const std::string& name) {
  auto it = global_table().find(name);
  return it == global_table().end() ? nullptr : &it->second;
}

Value apply_filter_by_name(Runtime& rt, const std::string& name, const Value& v, CallArgs& args) {
  FilterFn f = find_filter(name);
  if (!f) {
    if (is_jinja_builtin_filter(name)) throw_unsupported("filter '" + name + "' is not supported by circuitscope's Jinja engine");
    throw ValueError{ValueError::Kind::kValue, "No filter named '" + name + "'."};
  }
  return f(rt, v, args);
}

bool apply_test_by_name(Runtime& rt, const std::string& name, const Value& v, CallArgs& args) {
  TestFn t = find_test(name);
  if (!t) throw ValueError{ValueError::Kind::kValue, "No test named '" + name + "'."};
  return t(rt, v, args);
}

}  // namespace circuitscope::jinja
