// Values of the Jinja engine and the Python semantics Jinja2 inherits (truthiness, str(), repr(),
// ==, <, +, in, json.dumps). Internal to src/tokenizer; the public face is chat_template.hpp.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace circuitscope::jinja {

// Raised by value operations, filters and methods. They do not know where in the template they
// run; the evaluator adds the line and column and turns it into circuitscope::Error.
struct ValueError {
  enum class Kind { kType, kUndefined, kValue, kSecurity, kRaised, kUnsupported };
  Kind kind;
  std::string message;
};
[[noreturn]] void throw_type_error(const std::string& message);
[[noreturn]] void throw_value_error(const std::string& message);
class Value;
[[noreturn]] void throw_undefined(const Value& v);  // with the value's hint (which name was undefined)

class Value;
struct ListData;
struct DictData;
struct NamespaceData;
struct CallableData;
using ListPtr = std::shared_ptr<const ListData>;
using DictPtr = std::shared_ptr<const DictData>;
using NamespacePtr = std::shared_ptr<NamespaceData>;  // the one mutable kind (`set ns.x = ...`)
using CallablePtr = std::shared_ptr<const CallableData>;

// Jinja's Undefined. `hint` is the message Jinja raises when the value is misused
// ("'foo' is undefined", "'dict object' has no attribute 'bar'").
struct Undefined {
  std::shared_ptr<const std::string> hint;
};
struct None {};

class Value {
 public:
  enum class Type : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // undefined without a hint
  static Value undefined(std::string hint) { return Value(Undefined{std::make_shared<const std::string>(std::move(hint))}); }
  static Value none() { return Value(None{}); }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(ListPtr l) : v_(std::move(l)) {}
  Value(DictPtr d) : v_(std::move(d)) {}
  Value(NamespacePtr n) : v_(std::move(n)) {}
  Value(CallablePtr c) : v_(std::move(c)) {}
  static Value list(std::vector<Value> items, bool tuple = false);

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_undefined() const { return type() == Type::kUndefined; }
  bool is_none() const { return type() == Type::kNone; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_float() const { return type() == Type::kFloat; }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python: bool is an int
  bool is_string() const { return type() == Type::kString; }
  bool is_list() const { return type() == Type::kList; }
  bool is_dict() const { return type() == Type::kDict; }
  bool is_namespace() const { return type() == Type::kNamespace; }
  bool is_callable() const { return type() == Type::kCallable; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const ListData& as_list() const { return *std::get<ListPtr>(v_); }
  const DictData& as_dict() const { return *std::get<DictPtr>(v_); }
  NamespaceData& as_namespace() const { return *std::get<NamespacePtr>(v_); }
  const CallableData& as_callable() const { return *std::get<CallablePtr>(v_); }
  const ListPtr& list_ptr() const { return std::get<ListPtr>(v_); }
  const DictPtr& dict_ptr() const { return std::get<DictPtr>(v_); }
  const NamespacePtr& namespace_ptr() const { return std::get<NamespacePtr>(v_); }
  const CallablePtr& callable_ptr() const { return std::get<CallablePtr>(v_); }
  // The message an undefined raises when misused.
  std::string undefined_hint() const;
  // int64 view of bool/int (Python's int(True) == 1).
  int64_t int_value() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  double float_value() const { return is_float() ? as_float() : static_cast<double>(int_value()); }

 private:
  explicit Value(Undefined u) : v_(std::move(u)) {}
  explicit Value(None n) : v_(n) {}
  std::variant<Undefined, None, bool, int64_t, double, std::string, ListPtr, DictPtr, NamespacePtr, CallablePtr> v_;
};

struct ListData {
  std::vector<Value> items;
  bool tuple = false;     // only changes repr() and ==
  const char* view = "";  // "dict_items", "dict_keys", "dict_values": repr() as Python's dict views
};

// Insertion-ordered string-keyed dict (Python dicts keep insertion order, and tojson must too).
struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  std::unordered_map<std::string, size_t> index;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

struct NamespaceData {
  DictData attrs;
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct CallableData {
  std::string name;  // for messages: "str.split", "range", "macro foo"
  std::function<Value(CallArgs&)> fn;
};

Value make_dict(DictData d);
Value make_callable(std::string name, std::function<Value(CallArgs&)> fn);

// Python type name for messages ('str', 'int', 'NoneType', 'dict', ...).
std::string type_name(const Value& v);

// Guards the functions that recurse into nested values (repr, str, ==, <, JSON): past kMaxNesting
// levels they raise instead of overflowing the stack (a namespace that contains itself).
// They also count the values they visit: lists that share items (ns.a = [ns.a, ns.a] in a loop)
// print or compare in time exponential in their depth, so a render may visit at most kMaxVisits.
class NestingGuard {
 public:
  static constexpr int kMaxNesting = 600;  // above kMaxJsonDepth: any context the readers accept converts
  static constexpr int64_t kMaxVisits = 20'000'000;
  NestingGuard();
  ~NestingGuard();
  NestingGuard(const NestingGuard&) = delete;
  NestingGuard& operator=(const NestingGuard&) = delete;
  static void reset_visits() { visits_ = 0; }

 private:
  static thread_local int nesting_;
  static thread_local int64_t visits_;
};
// Widths, counts and fill sizes that decide an allocation ('a'.center(n), indent(n), '%ns', ...) are
// checked against this before allocating: past it they raise instead of exhausting memory.
constexpr int64_t kMaxBuiltinBytes = int64_t{64} << 20;
void check_built_size(int64_t bytes, const char* what);
// A decimal number written in a template ('{12}', '%30s'); raises instead of overflowing.
int64_t parse_small_decimal(const std::string& digits, const char* what);
// Namespaces made during a render, so that the render's end can break the reference cycles they may
// form (a namespace that holds a cycler that holds the namespace).
void track_namespace(const NamespacePtr& ns);
struct NamespaceTracker {
  NamespaceTracker();
  ~NamespaceTracker();  // clears every tracked namespace still alive
  NamespaceTracker(const NamespaceTracker&) = delete;
  NamespaceTracker& operator=(const NamespaceTracker&) = delete;
  std::vector<std::weak_ptr<NamespaceData>> tracked;
  NamespaceTracker* previous = nullptr;
};

// The nesting depth of a value (0 for scalars); raises ValueError past `limit`, or when the value
// contains the namespace `forbidden` (a namespace may not contain itself). Adds the containers it
// visited (each once) to *visited.
int value_depth(const Value& v, int limit, const NamespaceData* forbidden, int64_t* visited);

// ---- Python semantics -------------------------------------------------------------------------
bool truthy(const Value& v);
std::string to_str(const Value& v);  // str(); undefined prints ""
std::string repr(const Value& v);
std::string python_float_repr(double d);
bool equals(const Value& a, const Value& b);
// -1/0/1 as Python's <; throws a TypeError for unorderable operands.
int compare(const Value& a, const Value& b, const char* op);
bool contains(const Value& container, const Value& item);  // Python `item in container`

Value op_add(const Value& a, const Value& b);
Value op_sub(const Value& a, const Value& b);
Value op_mul(const Value& a, const Value& b);
Value op_div(const Value& a, const Value& b);
Value op_floordiv(const Value& a, const Value& b);
Value op_mod(const Value& a, const Value& b);
Value op_pow(const Value& a, const Value& b);
Value op_neg(const Value& a);
Value op_pos(const Value& a);

// Items of a for loop / filter input (list items, dict keys, string characters). Undefined
// iterates as empty; other non-iterables raise a TypeError.
std::vector<Value> iterate(const Value& v);
// len(); raises for values without a length. Strings count code points.
int64_t length(const Value& v);
// printf-style `str % args` (the subset %s %r %d %i %f %x %%, with flags/width/precision).
std::string percent_format(const std::string& fmt, const Value& args);

// ---- attribute and item access (Jinja's sandboxed getattr / getitem) ------------------------
Value get_attr(const Value& obj, const std::string& name);  // obj.name
Value get_item(const Value& obj, const Value& key);         // obj[key]
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// ---- JSON ------------------------------------------------------------------------------------
Value from_json(const nlohmann::ordered_json& j);
struct JsonDumpOptions {
  bool ensure_ascii = false;
  int indent = -1;            // -1: none
  std::string indent_string;  // used when indent given as a string
  bool indent_is_string = false;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonDumpOptions& o);

// ---- UTF-8 / str helpers -----------------------------------------------------------------------
std::u32string utf8_decode(const std::string& s);
std::string utf8_encode(const std::u32string& s);
void utf8_append(std::string& out, char32_t c);
bool is_py_space(char32_t c);  // str.isspace()
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);
std::vector<std::string> py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right);
std::string py_replace(const std::string& s, const std::string& old, const std::string& neu, int64_t count);
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_title(const std::string& s);       // str.title()
std::string py_capitalize(const std::string& s);  // str.capitalize()
bool is_ascii(const std::string& s);

}  // namespace circuitscope::jinja
