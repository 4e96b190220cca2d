// Syntax tree, lexer/parser entry points and the runtime of the Jinja engine. Internal.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.hpp"

namespace circuitscope::jinja {

struct Loc {
  int line = 0;
  int col = 0;
};

class Runtime;

// ---- expressions ----------------------------------------------------------------------------

struct Expr {
  Loc loc;
  virtual ~Expr() = default;
  virtual Value eval(Runtime& rt) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Args {
  std::vector<ExprPtr> pos;
  std::vector<std::pair<std::string, ExprPtr>> kw;
  ExprPtr star;   // *args
  ExprPtr dstar;  // **kwargs
};

// Evaluates `e`, adding its line and column to errors raised by value operations.
Value eval_expr(const Expr& e, Runtime& rt);
CallArgs eval_args(const Args& a, Runtime& rt);

struct ConstExpr : Expr {
  Value value;
  Value eval(Runtime&) const override { return value; }
};
struct NameExpr : Expr {
  std::string name;
  Value eval(Runtime& rt) const override;
};
struct ListExpr : Expr {
  std::vector<ExprPtr> items;
  bool tuple = false;
  Value eval(Runtime& rt) const override;
};
struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  Value eval(Runtime& rt) const override;
};
struct GetAttrExpr : Expr {
  ExprPtr obj;
  std::string name;
  Value eval(Runtime& rt) const override;
};
struct GetItemExpr : Expr {
  ExprPtr obj;
  ExprPtr key;
  Value eval(Runtime& rt) const override;
};
struct SliceExpr : Expr {
  ExprPtr obj, start, stop, step;  // bounds may be null
  Value eval(Runtime& rt) const override;
};
struct CallExpr : Expr {
  ExprPtr callee;
  Args args;
  Value eval(Runtime& rt) const override;
};

using FilterFn = Value (*)(Runtime& rt, const Value& v, CallArgs& args);
using TestFn = bool (*)(Runtime& rt, const Value& v, CallArgs& args);

struct FilterExpr : Expr {
  ExprPtr value;  // null inside `{% filter %}` blocks: the block's output is the input
  std::string name;
  Args args;
  FilterFn fn = nullptr;  // null: unknown, raises when reached (Jinja allows that inside `if`)
  Value eval(Runtime& rt) const override;
  Value apply(Runtime& rt, const Value& input) const;
};
struct TestExpr : Expr {
  ExprPtr value;
  std::string name;
  Args args;
  TestFn fn = nullptr;
  bool negated = false;
  Value eval(Runtime& rt) const override;
};
struct UnaryExpr : Expr {
  enum class Op { kNot, kNeg, kPos } op;
  ExprPtr operand;
  Value eval(Runtime& rt) const override;
};
struct BinaryExpr : Expr {
  enum class Op { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kAnd, kOr } op;
  ExprPtr left, right;
  Value eval(Runtime& rt) const override;
};
struct ConcatExpr : Expr {
  std::vector<ExprPtr> parts;
  Value eval(Runtime& rt) const override;
};
struct CompareExpr : Expr {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };
  ExprPtr first;
  std::vector<std::pair<Op, ExprPtr>> rest;
  Value eval(Runtime& rt) const override;
};
struct CondExpr : Expr {
  ExprPtr cond, then, otherwise;  // otherwise may be null (then the result is undefined)
  Value eval(Runtime& rt) const override;
};

// ---- statements -------------------------------------------------------------------------------

enum class Flow { kNormal, kBreak, kContinue };

struct Stmt {
  Loc loc;
  virtual ~Stmt() = default;
  virtual Flow exec(Runtime& rt) const = 0;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;
Flow exec_body(const Body& body, Runtime& rt);

struct Target {
  enum class Kind { kName, kTuple, kNamespaceAttr } kind = Kind::kName;
  Loc loc;
  std::vector<std::string> names;  // one for kName / kNamespaceAttr (the namespace variable)
  std::string attr;                // kNamespaceAttr
};

struct OutputStmt : Stmt {
  std::string text;
  Flow exec(Runtime& rt) const override;
};
struct EmitStmt : Stmt {
  ExprPtr expr;
  Flow exec(Runtime& rt) const override;
};
struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body otherwise;
  Flow exec(Runtime& rt) const override;
};
// Names a frame assigns before (or without) reading them start out undefined in that frame, even
// when the context or an outer frame has them: Jinja2 decides this at compile time
// (idtracking.py). analyze_scopes() fills these lists; the runtime seeds each new frame with them.
using FrameUndefined = std::vector<std::string>;

struct ForStmt : Stmt {
  Target target;
  ExprPtr iter;
  ExprPtr filter;  // `for x in xs if cond`
  Body body, otherwise;
  FrameUndefined body_undefined, otherwise_undefined;  // `else` is a frame of its own
  Flow exec(Runtime& rt) const override;
};
struct AssignStmt : Stmt {
  Target target;
  ExprPtr value;
  Flow exec(Runtime& rt) const override;
};
struct AssignBlockStmt : Stmt {
  Target target;
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
  FrameUndefined body_undefined;
  Flow exec(Runtime& rt) const override;
};
struct MacroStmt : Stmt {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  Body body;
  FrameUndefined body_undefined;
  Flow exec(Runtime& rt) const override;
};
struct FilterBlockStmt : Stmt {
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
  FrameUndefined body_undefined;
  Flow exec(Runtime& rt) const override;
};
struct WithStmt : Stmt {
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
  FrameUndefined body_undefined;
  Flow exec(Runtime& rt) const override;
};
struct LoopControlStmt : Stmt {
  Flow flow;
  Flow exec(Runtime&) const override { return flow; }
};
// Hugging Face's `{% generation %}` (assistant-token tracking): renders its body unchanged, in its
// own scope (HF runs the body as a call block's caller).
struct ScopeStmt : Stmt {
  Body body;
  FrameUndefined body_undefined;
  Flow exec(Runtime& rt) const override;
};

struct Program {
  std::string name;
  Body body;
  FrameUndefined body_undefined;
};

// Throws circuitscope::Error(kFormat) with line and column on syntax errors.
std::shared_ptr<const Program> parse_program(const std::string& source, const std::string& name);
// Fills the FrameUndefined lists (jinja_scope.cpp).
void analyze_scopes(Program& program);

// ---- runtime --------------------------------------------------------------------------------------

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
};

// What one render may spend. A template from a model hub must end with an error, never hang,
// overflow the stack or exhaust memory; real chat templates stay far below each limit.
struct Budget {
  static constexpr int64_t kMaxSteps = 1'000'000;        // statements run + expressions evaluated
  static constexpr int64_t kMaxBytes = int64_t{2} << 30;    // bytes of string and list results + output
  static constexpr int kMaxDepth = 1500;                  // nested evaluation: expressions, blocks, calls
  static constexpr int kMaxValueDepth = 256;              // nesting of a value stored in a namespace
};

class Runtime {
 public:
  Runtime(const Program& program, const DictData& context, std::string& out);
  // Clears the scopes captured by macros: a macro stored in its own scope is a reference cycle.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  // Each throws ValueError(kSecurity) naming the budget when it is exceeded.
  void enter();  // one more nested evaluation (and one step)
  void step();   // one step (a loop iteration)
  void charge_steps(int64_t n);
  int64_t steps() const { return steps_; }
  int64_t bytes() const { return bytes_; }
  void leave() { --depth_; }
  void charge_bytes(size_t n);
  void keep_closure_scope(const std::shared_ptr<Scope>& s);
  Value lookup(const std::string& name) const;
  void assign(const Target& t, const Value& v);
  void set_local(const std::string& name, Value v) { scope_->vars[name] = std::move(v); }
  void push_scope();
  void pop_scope();
  // Seeds the current scope with the names that start out undefined in this frame.
  void seed_undefined(const FrameUndefined& names);
  const std::shared_ptr<Scope>& scope() const { return scope_; }
  void set_scope(std::shared_ptr<Scope> s) { scope_ = std::move(s); }

  std::string& out() { return *out_; }
  // Renders into a separate buffer (macro calls, set/filter blocks).
  std::string* swap_out(std::string* o) {
    std::string* prev = out_;
    out_ = o;
    return prev;
  }
  // "<template name>, line L, column C" for messages.
  std::string where(const Loc& loc) const;
  // Macro recursion guard: false when the nesting limit is reached.
  bool enter_macro() { return ++macro_depth_ <= kMaxMacroDepth; }
  void leave_macro() { --macro_depth_; }

 private:
  static constexpr int kMaxMacroDepth = 300;  // about where CPython's recursion limit stops Jinja2
  int macro_depth_ = 0;
  int depth_ = 0;
  int64_t steps_ = 0;
  int64_t bytes_ = 0;
  std::vector<std::weak_ptr<Scope>> closure_scopes_;
  NamespaceTracker namespaces_;  // destroyed after ~Runtime's body: clears the render's namespaces
  const Program& program_;
  const DictData& context_;
  std::shared_ptr<Scope> scope_;
  std::string* out_;
};

// ---- builtins (jinja_builtins.cpp) -------------------------------------------------------------------
FilterFn find_filter(const std::string& name);
TestFn find_test(const std::string& name);
bool is_jinja_builtin_filter(const std::string& name);  // a Jinja2 filter circuitscope lacks
const Value* find_global(const std::string& name);  // range, namespace, raise_exception, ...
Value apply_filter_by_name(Runtime& rt, const std::string& name, const Value& v, CallArgs& args);
bool apply_test_by_name(Runtime& rt, const std::string& name, const Value& v, CallArgs& args);

}  // namespace circuitscope::jinja
