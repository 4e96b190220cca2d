// Python semantics of Jinja values: what Jinja2 gets for free from running on CPython.
#include "tokenizer/jinja_value.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace circuitscope::jinja {

void throw_type_error(const std::string& message) { throw ValueError{ValueError::Kind::kType, message}; }
void throw_value_error(const std::string& message) { throw ValueError{ValueError::Kind::kValue, message}; }

void throw_undefined(const Value& v) { throw ValueError{ValueError::Kind::kUndefined, v.undefined_hint()}; }

std::string Value::undefined_hint() const {
  const auto& u = std::get<Undefined>(v_);
  return u.hint ? *u.hint : std::string("value is undefined");
}

Value Value::list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<ListData>();
  l->items = std::move(items);
  l->tuple = tuple;
  return Value(ListPtr(std::move(l)));
}

const Value* DictData::find(const std::string& key) const {
  auto it = index.find(key);
  return it == index.end() ? nullptr : &items[it->second].second;
}

void DictData::set(const std::string& key, Value v) {
  auto it = index.find(key);
  if (it != index.end()) {
    items[it->second].second = std::move(v);
    return;
  }
  index.emplace(key, items.size());
  items.emplace_back(key, std::move(v));
}

Value make_dict(DictData d) { return Value(DictPtr(std::make_shared<DictData>(std::move(d)))); }

Value make_callable(std::string name, std::function<Value(CallArgs&)> fn) {
  auto c = std::make_shared<CallableData>();
  c->name = std::move(name);
  c->fn = std::move(fn);
  return Value(CallablePtr(std::move(c)));
}

std::string type_name(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "Undefined";
    case Value::Type::kNone: return "NoneType";
    case Value::Type::kBool: return "bool";
    case Value::Type::kInt: return "int";
    case Value::Type::kFloat: return "float";
    case Value::Type::kString: return "str";
    case Value::Type::kList: return *v.as_list().view ? v.as_list().view : v.as_list().tuple ? "tuple" : "list";
    case Value::Type::kDict: return "dict";
    case Value::Type::kNamespace: return "Namespace";
    case Value::Type::kCallable: return "function";
  }
  return "object";
}

// ---- UTF-8 ---------------------------------------------------------------------------------------

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: keep going with U+FFFD, as Python's 'replace' would
      cp = 0xFFFD;
      n = 1;
    }
    out.push_back(static_cast<char32_t>(cp));
    p += n;
    left -= n;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

bool is_py_space(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E: case 0x1F:
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// ---- str() / repr() -------------------------------------------------------------------------------

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest digit string that reads back as the same double (what Python's repr prints).
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s(buf);
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t epos = s.find('e');
  int exp10 = std::atoi(s.c_str() + epos + 1);
  std::string digits;
  for (size_t i = 0; i < epos; ++i)
    if (s[i] != '.') digits += s[i];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp10 < -4 || exp10 >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += eb;
  } else if (exp10 >= 0) {
    std::string intpart = digits.substr(0, std::min<size_t>(digits.size(), exp10 + 1));
    while (static_cast<int>(intpart.size()) < exp10 + 1) intpart += '0';
    std::string frac = digits.size() > static_cast<size_t>(exp10 + 1) ? digits.substr(exp10 + 1) : "0";
    out += intpart + "." + frac;
  } else {
    out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
  }
  return out;
}

namespace {

bool py_printable(char32_t c) {
  if (c == ' ') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

std::string repr_string(const std::string& s) {
  char quote = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) quote = '"';
  std::string out(1, quote);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !py_printable(c))) {
      char buf[16];
      if (c < 0x100) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000) std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      else std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out += quote;
  return out;
}

}  // namespace

NestingGuard::NestingGuard() {
  if (++visits_ > kMaxVisits)
    throw ValueError{ValueError::Kind::kSecurity, "printing or comparing values visited more than " +
                                                      std::to_string(kMaxVisits) + " items (lists sharing items?)"};
  if (++nesting_ > kMaxNesting) {
    --nesting_;
    throw ValueError{ValueError::Kind::kValue,
                     "value nested deeper than " + std::to_string(kMaxNesting) + " levels (does it contain itself?)"};
  }
}
NestingGuard::~NestingGuard() { --nesting_; }
thread_local int NestingGuard::nesting_ = 0;
thread_local int64_t NestingGuard::visits_ = 0;

std::string repr(const Value& v) {
  NestingGuard guard;
  switch (v.type()) {
    case Value::Type::kString:
      return repr_string(v.as_string());
    case Value::Type::kList: {
      const auto& l = v.as_list();
      std::string out = l.tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        out += repr(l.items[i]);
      }
      if (l.tuple && l.items.size() == 1) out += ",";
      out += l.tuple ? ")" : "]";
      return *l.view ? std::string(l.view) + "(" + out + ")" : out;
    }
    case Value::Type::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : v.as_dict().items) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(k) + ": " + repr(val);
      }
      return out + "}";
    }
    case Value::Type::kNamespace: {
      auto d = std::make_shared<DictData>(v.as_namespace().attrs);
      return "<Namespace " + repr(Value(DictPtr(d))) + ">";
    }
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  NestingGuard guard;
  switch (v.type()) {
    case Value::Type::kUndefined: return "";
    case Value::Type::kNone: return "None";
    case Value::Type::kBool: return v.as_bool() ? "True" : "False";
    case Value::Type::kInt: return std::to_string(v.as_int());
    case Value::Type::kFloat: return python_float_repr(v.as_float());
    case Value::Type::kString: return v.as_string();
    case Value::Type::kCallable: return "<function " + v.as_callable().name + ">";
    default: return repr(v);
  }
}

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return false;
    case Value::Type::kNone: return false;
    case Value::Type::kBool: return v.as_bool();
    case Value::Type::kInt: return v.as_int() != 0;
    case Value::Type::kFloat: return v.as_float() != 0.0;
    case Value::Type::kString: return !v.as_string().empty();
    case Value::Type::kList: return !v.as_list().items.empty();
    case Value::Type::kDict: return !v.as_dict().items.empty();
    default: return true;
  }
}

// ---- comparisons ----------------------------------------------------------------------------------

bool equals(const Value& a, const Value& b) {
  NestingGuard guard;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.float_value() == b.float_value();
    return a.int_value() == b.int_value();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone:
      return true;
    case Value::Type::kString:
      return a.as_string() == b.as_string();
    case Value::Type::kList: {
      if (a.list_ptr() == b.list_ptr()) return true;  // as Python's identity shortcut; saves shared DAGs
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals(x.items[i], y.items[i])) return false;
      return true;
    }
    case Value::Type::kDict: {
      if (a.dict_ptr() == b.dict_ptr()) return true;
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* o = y.find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    }
    case Value::Type::kNamespace:
      return a.namespace_ptr() == b.namespace_ptr();
    case Value::Type::kCallable:
      return a.callable_ptr() == b.callable_ptr();
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b, const char* op) {
  NestingGuard guard;
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.float_value(), y = b.float_value();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.int_value(), y = b.int_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.as_list().tuple == b.as_list().tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i], op);
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  throw_type_error(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
                   type_name(b) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::kUndefined:
      return false;
    case Value::Type::kString:
      if (item.is_undefined()) throw_undefined(item);
      if (!item.is_string())
        throw_type_error("'in <string>' requires string as left operand, not " + type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Type::kList:
      for (const auto& x : container.as_list().items)
        if (equals(x, item)) return true;
      return false;
    case Value::Type::kDict:
      if (item.is_list() && !item.as_list().tuple) throw_type_error("unhashable type: 'list'");
      if (item.is_dict()) throw_type_error("unhashable type: 'dict'");
      return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default:
      throw_type_error("argument of type '" + type_name(container) + "' is not iterable");
  }
}

// ---- arithmetic ----------------------------------------------------------------------------------

namespace {

[[noreturn]] void unsupported(const char* op, const Value& a, const Value& b) {
  throw_type_error(std::string("unsupported operand type(s) for ") + op + ": '" + type_name(a) + "' and '" +
                   type_name(b) + "'");
}

void check_defined(const Value& a, const Value& b) {
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
}

[[noreturn]] void overflow() { throw ValueError{ValueError::Kind::kUnsupported, "integer overflow (beyond 64 bits)"}; }
int64_t add_i(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t sub_i(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
int64_t mul_i(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}

Value repeat(const Value& seq, int64_t n) {
  // Checked before allocating: 'x' * 10**12 must raise, not exhaust memory.
  constexpr int64_t kMaxRepeatBytes = int64_t{64} << 20;
  int64_t unit = 0;
  if (seq.is_string()) {
    unit = static_cast<int64_t>(seq.as_string().size());
  } else {
    for (const Value& item : seq.as_list().items)  // copies of a Value copy its string
      unit += static_cast<int64_t>(sizeof(Value) + (item.is_string() ? item.as_string().size() : 0));
  }
  if (n > 0 && unit > 0 && n > kMaxRepeatBytes / unit)
    throw ValueError{ValueError::Kind::kSecurity, "repetition by " + std::to_string(n) + " would make more than " +
                                                      std::to_string(kMaxRepeatBytes >> 20) + " MiB"};
  if (unit == 0) n = 0;  // '' * 10**18 is '' at once
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(out);
  }
  std::vector<Value> items;
  for (int64_t i = 0; i < n; ++i)
    items.insert(items.end(), seq.as_list().items.begin(), seq.as_list().items.end());
  return Value::list(std::move(items), seq.as_list().tuple);
}

bool is_intlike(const Value& v) { return v.is_int() || v.is_bool(); }
// A list or tuple proper: dict views (items()/keys()/values()) neither concatenate nor repeat.
bool is_sequence_list(const Value& v) { return v.is_list() && !*v.as_list().view; }

}  // namespace

Value op_add(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return Value(a.float_value() + b.float_value());
    return Value(add_i(a.int_value(), b.int_value()));
  }
  if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
  if (is_sequence_list(a) && is_sequence_list(b) && a.as_list().tuple == b.as_list().tuple) {
    std::vector<Value> items = a.as_list().items;
    items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
    return Value::list(std::move(items), a.as_list().tuple);
  }
  if (a.is_string()) throw_type_error("can only concatenate str (not \"" + type_name(b) + "\") to str");
  if (is_sequence_list(a))
    throw_type_error("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
  unsupported("+", a, b);
}

Value op_sub(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) unsupported("-", a, b);
  if (a.is_float() || b.is_float()) return Value(a.float_value() - b.float_value());
  return Value(sub_i(a.int_value(), b.int_value()));
}

Value op_mul(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return Value(a.float_value() * b.float_value());
    return Value(mul_i(a.int_value(), b.int_value()));
  }
  if ((a.is_string() || is_sequence_list(a)) && is_intlike(b)) return repeat(a, b.int_value());
  if ((b.is_string() || is_sequence_list(b)) && is_intlike(a)) return repeat(b, a.int_value());
  if (a.is_string() || is_sequence_list(a) || b.is_string() || is_sequence_list(b))
    throw_type_error("can't multiply sequence by non-int of type '" +
                     type_name(a.is_string() || is_sequence_list(a) ? b : a) + "'");
  unsupported("*", a, b);
}

Value op_div(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) unsupported("/", a, b);
  if (b.float_value() == 0.0) throw ValueError{ValueError::Kind::kValue, "division by zero"};
  return Value(a.float_value() / b.float_value());
}

Value op_floordiv(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) unsupported("//", a, b);
  if (a.is_float() || b.is_float()) {
    if (b.float_value() == 0.0) throw ValueError{ValueError::Kind::kValue, "float floor division by zero"};
    return Value(std::floor(a.float_value() / b.float_value()));
  }
  int64_t x = a.int_value(), y = b.int_value();
  if (y == 0) throw ValueError{ValueError::Kind::kValue, "integer division or modulo by zero"};
  int64_t q = x / y;
  if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
  return Value(q);
}

Value op_mod(const Value& a, const Value& b) {
  if (a.is_string()) return Value(percent_format(a.as_string(), b));  // str.__mod__ wins, even for Undefined
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) unsupported("%", a, b);
  if (a.is_float() || b.is_float()) {
    double x = a.float_value(), y = b.float_value();
    if (y == 0.0) throw ValueError{ValueError::Kind::kValue, "float modulo"};
    double m = std::fmod(x, y);
    if (m != 0) {
      if ((m < 0) != (y < 0)) m += y;
    } else {
      m = std::copysign(0.0, y);  // Python: a zero remainder takes the divisor's sign
    }
    return Value(m);
  }
  int64_t x = a.int_value(), y = b.int_value();
  if (y == 0) throw ValueError{ValueError::Kind::kValue, "integer division or modulo by zero"};
  int64_t m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) m += y;
  return Value(m);
}

Value op_pow(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) unsupported("** or pow()", a, b);
  if (a.is_float() || b.is_float() || b.int_value() < 0) {
    if (a.float_value() == 0.0 && b.float_value() < 0)
      throw ValueError{ValueError::Kind::kValue, "0.0 cannot be raised to a negative power"};
    return Value(std::pow(a.float_value(), b.float_value()));
  }
  int64_t base = a.int_value(), e = b.int_value(), r = 1;
  while (e > 0) {
    if (e & 1) r = mul_i(r, base);
    e >>= 1;
    if (e > 0) base = mul_i(base, base);
  }
  return Value(r);
}

Value op_neg(const Value& a) {
  if (a.is_undefined()) throw_undefined(a);
  if (a.is_float()) return Value(-a.as_float());
  if (a.is_int() || a.is_bool()) {
    return Value(sub_i(0, a.int_value()));
  }
  throw_type_error("bad operand type for unary -: '" + type_name(a) + "'");
}

Value op_pos(const Value& a) {
  if (a.is_undefined()) throw_undefined(a);
  if (a.is_float()) return a;
  if (a.is_int() || a.is_bool()) return Value(a.int_value());
  throw_type_error("bad operand type for unary +: '" + type_name(a) + "'");
}

// ---- iteration / len ---------------------------------------------------------------------------------

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined:
      return {};
    case Value::Type::kList:
      return v.as_list().items;
    case Value::Type::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.as_dict().items.size());
      for (const auto& kv : v.as_dict().items) keys.emplace_back(kv.first);
      return keys;
    }
    case Value::Type::kString: {
      std::vector<Value> chars;
      for (char32_t c : utf8_decode(v.as_string())) {
        std::string s;
        utf8_append(s, c);
        chars.emplace_back(std::move(s));
      }
      return chars;
    }
    default:
      throw_type_error("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return 0;
    case Value::Type::kString: {
      const std::string& s = v.as_string();
      int64_t n = 0;
      for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count lead bytes
      return n;
    }
    case Value::Type::kList: return static_cast<int64_t>(v.as_list().items.size());
    case Value::Type::kDict: return static_cast<int64_t>(v.as_dict().items.size());
    default: throw_type_error("object of type '" + type_name(v) + "' has no len()");
  }
}

// ---- printf-style formatting -----------------------------------------------------------------------

std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> positional;
  const DictData* mapping = nullptr;
  // Python: a tuple supplies the arguments; any other object is the single argument, and one
  // with __getitem__ (dict, list, Undefined) also counts as a mapping, which excuses unused args.
  bool mapping_like = false;
  if (args.is_list() && args.as_list().tuple) {
    positional = args.as_list().items;
  } else {
    positional.push_back(args);
    mapping_like = args.is_dict() || args.is_list() || args.is_undefined();
    if (args.is_dict()) mapping = &args.as_dict();
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throw_value_error("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw_value_error("incomplete format key");
      std::string key = fmt.substr(i + 1, close - i - 1);
      if (!mapping) throw_type_error("format requires a mapping");
      arg = mapping->find(key);
      if (!arg) throw_value_error("format key '" + key + "' not found");
      i = close + 1;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::strchr("-+ #0", fmt[i])) spec += fmt[i++];
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) spec += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      spec += fmt[i++];
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) spec += fmt[i++];
    }
    if (i >= fmt.size()) throw_value_error("incomplete format");
    char conv = fmt[i];
    if (!arg) {
      if (next >= positional.size()) throw_type_error("not enough arguments for format string");
      arg = &positional[next++];
    }
    char buf[512];
    switch (conv) {
      case 's':
      case 'r': {
        std::string s = conv == 's' ? to_str(*arg) : repr(*arg);
        // Width/precision apply to code points in Python; templates rarely pad, so pad by bytes.
        std::string f = spec.substr(1);
        bool left = f.find('-') != std::string::npos;
        size_t dot = f.find('.');
        std::string w = f.substr(0, dot);
        w.erase(std::remove_if(w.begin(), w.end(), [](char c) { return !std::isdigit(static_cast<unsigned char>(c)); }), w.end());
        if (dot != std::string::npos) {
          std::string prec = f.substr(dot + 1);
          prec.erase(std::remove_if(prec.begin(), prec.end(), [](char c) { return !std::isdigit(static_cast<unsigned char>(c)); }),
                     prec.end());
          s = s.substr(0, static_cast<size_t>(parse_small_decimal("0" + prec, "precision")));
        }
        const size_t width = w.empty() ? 0 : static_cast<size_t>(parse_small_decimal(w, "width"));
        if (s.size() < width) s = left ? s + std::string(width - s.size(), ' ') : std::string(width - s.size(), ' ') + s;
        out += s;
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o': {
        if (!arg->is_number()) throw_type_error(std::string("%") + conv + " format: a real number is required, not " + type_name(*arg));
        long long n = arg->is_float() ? static_cast<long long>(arg->as_float()) : arg->int_value();
        std::snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), n);
        out += buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) throw_type_error("must be real number, not " + type_name(*arg));
        std::snprintf(buf, sizeof buf, (spec + conv).c_str(), arg->float_value());
        out += buf;
        break;
      }
      default:
        throw_value_error(std::string("unsupported format character '") + conv + "'");
    }
  }
  if (!mapping_like && next < positional.size()) throw_type_error("not all arguments converted during string formatting");
  return out;
}

// ---- JSON ---------------------------------------------------------------------------------------------

Value from_json(const nlohmann::ordered_json& j) {
  NestingGuard guard;
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw ValueError{ValueError::Kind::kUnsupported, "integer beyond 64 bits in the context"};
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      DictData d;
      for (auto it = j.begin(); it != j.end(); ++it) d.set(it.key(), from_json(it.value()));
      return make_dict(std::move(d));
    }
    default:
      throw ValueError{ValueError::Kind::kUnsupported, "binary JSON values are not supported"};
  }
}

namespace {

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  auto hex4 = [&out](unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", v);
    out += buf;
  };
  auto esc = [&](char32_t c) -> bool {
    switch (c) {
      case '"': out += "\\\""; return true;
      case '\\': out += "\\\\"; return true;
      case '\n': out += "\\n"; return true;
      case '\r': out += "\\r"; return true;
      case '\t': out += "\\t"; return true;
      case '\b': out += "\\b"; return true;
      case '\f': out += "\\f"; return true;
      default:
        if (c < 0x20) {
          hex4(static_cast<unsigned>(c));
          return true;
        }
        return false;
    }
  };
  if (!ensure_ascii || is_ascii(s)) {
    for (char ch : s) {
      if (esc(static_cast<unsigned char>(ch))) continue;
      if (ensure_ascii && ch == 0x7F) hex4(0x7F);  // Python escapes everything outside ' '..'~'
      else out += ch;
    }
  } else {
    for (char32_t c : utf8_decode(s)) {
      if (esc(c)) continue;
      if (c < 0x7F) {
        out += static_cast<char>(c);
      } else if (c < 0x10000) {
        hex4(static_cast<unsigned>(c));
      } else {
        char32_t v = c - 0x10000;
        hex4(0xD800 + static_cast<unsigned>(v >> 10));
        hex4(0xDC00 + static_cast<unsigned>(v & 0x3FF));
      }
    }
  }
  out += '"';
}

void json_dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  NestingGuard guard;
  auto newline = [&](int lvl) {
    if (o.indent < 0 && !o.indent_is_string) return;
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += o.indent_is_string ? o.indent_string : std::string(o.indent, ' ');
  };
  switch (v.type()) {
    case Value::Type::kNone: out += "null"; return;
    case Value::Type::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::kInt: out += std::to_string(v.as_int()); return;
    case Value::Type::kFloat: {
      double d = v.as_float();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += python_float_repr(d);
      return;
    }
    case Value::Type::kString: json_string(out, v.as_string(), o.ensure_ascii); return;
    case Value::Type::kList: {
      if (*v.as_list().view) throw_type_error("Object of type " + type_name(v) + " is not JSON serializable");
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        newline(level + 1);
        json_dump(out, items[i], o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Type::kDict: {
      const auto& d = v.as_dict();
      if (d.items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : d.items) items.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        newline(level + 1);
        json_string(out, items[i]->first, o.ensure_ascii);
        out += o.key_separator;
        json_dump(out, items[i]->second, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default:
      throw_type_error("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonDumpOptions& o) {
  std::string out;
  json_dump(out, v, o, 0);
  return out;
}

// ---- str methods -------------------------------------------------------------------------------------

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  if (!chars.is_none() && !chars.is_undefined() && !chars.is_string())
    throw_type_error("strip arg must be None or str");
  bool ws = !chars.is_string();
  if (is_ascii(s) && (ws || is_ascii(chars.as_string()))) {
    auto strip_me = [&](char c) {
      return ws ? is_py_space(static_cast<unsigned char>(c)) : chars.as_string().find(c) != std::string::npos;
    };
    size_t b = 0, e = s.size();
    if (left)
      while (b < e && strip_me(s[b])) ++b;
    if (right)
      while (e > b && strip_me(s[e - 1])) --e;
    return s.substr(b, e - b);
  }
  std::u32string u = utf8_decode(s);
  std::u32string set = ws ? std::u32string() : utf8_decode(chars.as_string());
  auto strip_me = [&](char32_t c) { return ws ? is_py_space(c) : set.find(c) != std::u32string::npos; };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_me(u[b])) ++b;
  if (right)
    while (e > b && strip_me(u[e - 1])) --e;
  return utf8_encode(u.substr(b, e - b));
}

std::vector<std::string> py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep.is_string()) {
    const std::string& d = sep.as_string();
    if (d.empty()) throw_value_error("empty separator");
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t f = s.find(d, pos);
        if (f == std::string::npos) break;
        parts.push_back(s.substr(pos, f - pos));
        pos = f + d.size();
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        if (end < d.size()) break;
        size_t f = s.rfind(d, end - d.size());
        if (f == std::string::npos) break;
        parts.push_back(s.substr(f + d.size(), end - f - d.size()));
        end = f;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
    return parts;
  }
  if (!sep.is_none() && !sep.is_undefined()) throw_type_error("must be str or None, not " + type_name(sep));
  // Whitespace split: runs of whitespace separate, ends are dropped.
  std::u32string u = utf8_decode(s);
  if (!from_right) {
    size_t i = 0, n = u.size();
    while (true) {
      while (i < n && is_py_space(u[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t e = n;
        while (e > i && is_py_space(u[e - 1])) --e;
        parts.push_back(utf8_encode(u.substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < n && !is_py_space(u[j])) ++j;
      parts.push_back(utf8_encode(u.substr(i, j - i)));
      i = j;
    }
  } else {
    size_t e = u.size();
    while (true) {
      while (e > 0 && is_py_space(u[e - 1])) --e;
      if (e == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t b = 0;
        while (b < e && is_py_space(u[b])) ++b;
        parts.push_back(utf8_encode(u.substr(b, e - b)));
        break;
      }
      size_t j = e;
      while (j > 0 && !is_py_space(u[j - 1])) --j;
      parts.push_back(utf8_encode(u.substr(j, e - j)));
      e = j;
    }
    std::reverse(parts.begin(), parts.end());
  }
  return parts;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& neu, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {  // Python inserts `neu` before every character and at the end
    std::u32string u = utf8_decode(s);
    for (char32_t c : u) {
      if (count < 0 || done < count) {
        out += neu;
        ++done;
      }
      utf8_append(out, c);
    }
    if (count < 0 || done < count) out += neu;
    return out;
  }
  size_t pos = 0;
  while (count < 0 || done < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += neu;
    pos = f + old.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

namespace {
template <typename F>
std::string map_chars(const std::string& s, F f) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : utf8_decode(s)) utf8_append(out, static_cast<char32_t>(f(static_cast<utf8proc_int32_t>(c))));
  return out;
}
bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
}  // namespace

namespace {
// The one-to-many uppercase mappings of Unicode's SpecialCasing.txt that Python applies and
// utf8proc's simple mapping lacks (Latin and Armenian; the Greek iota-subscript forms are not here).
const char* special_upper(char32_t c) {
  switch (c) {
    case 0x00DF: return "SS";
    case 0x0149: return "\u02BCN";
    case 0x01F0: return "J\u030C";
    case 0x0587: return "\u0535\u0552";
    case 0x1E96: return "H\u0331";
    case 0x1E97: return "T\u0308";
    case 0x1E98: return "W\u030A";
    case 0x1E99: return "Y\u030A";
    case 0x1E9A: return "A\u02BE";
    case 0xFB00: return "FF";
    case 0xFB01: return "FI";
    case 0xFB02: return "FL";
    case 0xFB03: return "FFI";
    case 0xFB04: return "FFL";
    case 0xFB05: return "ST";
    case 0xFB06: return "ST";
    case 0xFB13: return "\u0544\u0546";
    case 0xFB14: return "\u0544\u0535";
    case 0xFB15: return "\u0544\u053B";
    case 0xFB16: return "\u054E\u0546";
    case 0xFB17: return "\u0544\u053D";
    default: return nullptr;
  }
}
}  // namespace

std::string py_upper(const std::string& s) {
  if (is_ascii(s)) {
    std::string o = s;
    for (char& c : o) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return o;
  }
  std::string out;
  for (char32_t c : utf8_decode(s)) {
    if (const char* m = special_upper(c)) out += m;
    else utf8_append(out, static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))));
  }
  return out;
}

std::string py_lower(const std::string& s) {
  if (is_ascii(s)) {
    std::string o = s;
    for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
  }
  std::string out;
  for (char32_t c : utf8_decode(s)) {
    if (c == 0x0130) out += "i\u0307";  // İ lowers to i + combining dot, as in Python
    else utf8_append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
  return out;
}

namespace {
// Titlecase of one character; the SpecialCasing expansions keep their first letter upper.
void append_title(std::string& out, char32_t c) {
  if (const char* m = special_upper(c)) {
    std::u32string u = utf8_decode(m);
    utf8_append(out, u[0]);
    out += py_lower(utf8_encode(u.substr(1)));
    return;
  }
  utf8_append(out, static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))));
}
void append_lower(std::string& out, char32_t c) {
  if (c == 0x0130) out += "i\u0307";
  else utf8_append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}
}  // namespace

std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (char32_t c : utf8_decode(s)) {
    if (prev_cased) append_lower(out, c);
    else append_title(out, c);
    prev_cased = is_cased(c);
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (char32_t c : utf8_decode(s)) {
    if (first) append_title(out, c);
    else append_lower(out, c);
    first = false;
  }
  return out;
}


int value_depth(const Value& v, int limit, const NamespaceData* forbidden, int64_t* visited) {
  // Memoized per container: within one walk nothing changes, and shared items (a DAG) cost once.
  std::unordered_map<const void*, int> memo;
  auto too_deep = [&]() {
    return ValueError{ValueError::Kind::kSecurity, "value nested deeper than " + std::to_string(limit) + " levels"};
  };
  std::function<int(const Value&, int)> walk = [&](const Value& x, int level) -> int {
    if (level > limit) throw too_deep();
    const void* key = nullptr;
    if (x.is_list()) key = x.list_ptr().get();
    else if (x.is_dict()) key = x.dict_ptr().get();
    else if (x.is_namespace()) key = x.namespace_ptr().get();
    else return 0;
    if (key == forbidden) throw ValueError{ValueError::Kind::kSecurity, "a namespace cannot contain itself"};
    auto it = memo.find(key);
    if (it != memo.end()) {
      if (level + it->second > limit + 1) throw too_deep();
      return it->second;
    }
    ++*visited;
    int d = 0;
    if (x.is_list()) {
      for (const auto& item : x.as_list().items) d = std::max(d, walk(item, level + 1));
    } else {
      const DictData& dd = x.is_dict() ? x.as_dict() : x.as_namespace().attrs;
      for (const auto& kv : dd.items) d = std::max(d, walk(kv.second, level + 1));
    }
    memo[key] = d + 1;
    return d + 1;
  };
  return walk(v, 1);
}

void check_built_size(int64_t bytes, const char* what) {
  if (bytes > kMaxBuiltinBytes)
    throw ValueError{ValueError::Kind::kSecurity, std::string(what) + " would make " + std::to_string(bytes) +
                                                      " bytes; the limit is " + std::to_string(kMaxBuiltinBytes >> 20) +
                                                      " MiB"};
}

int64_t parse_small_decimal(const std::string& digits, const char* what) {
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') throw_value_error(std::string(what) + ": '" + digits + "' is not a number");
    if (v > (kMaxBuiltinBytes - (c - '0')) / 10)
      throw ValueError{ValueError::Kind::kSecurity, std::string(what) + " " + digits + " is too large"};
    v = v * 10 + (c - '0');
  }
  return v;
}

namespace {
thread_local NamespaceTracker* tl_tracker = nullptr;
}  // namespace

NamespaceTracker::NamespaceTracker() : previous(tl_tracker) { tl_tracker = this; }
NamespaceTracker::~NamespaceTracker() {
  tl_tracker = previous;
  for (const auto& w : tracked)
    if (auto ns = w.lock()) {
      DictData empty;
      std::swap(ns->attrs, empty);  // destroyed here, after the swap: no re-entry into a half-cleared dict
    }
}
void track_namespace(const NamespacePtr& ns) {
  if (tl_tracker) tl_tracker->tracked.push_back(ns);
}

}  // namespace circuitscope::jinja
