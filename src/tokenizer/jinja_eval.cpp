// Tree-walking evaluator of the Jinja engine. Scoping follows Jinja2: `for` bodies (each iteration),
// macros, `with` and set/filter blocks get their own scope; `if` does not. Assignments inside a
// loop are therefore invisible after it (templates use namespace() for that).
#include <algorithm>

#include "circuitscope/error.hpp"
#include "tokenizer/jinja_ast.hpp"

namespace circuitscope::jinja {
namespace {

const char* kind_name(ValueError::Kind k) {
  switch (k) {
    case ValueError::Kind::kType: return "TypeError";
    case ValueError::Kind::kUndefined: return "UndefinedError";
    case ValueError::Kind::kValue: return "ValueError";
    case ValueError::Kind::kSecurity: return "SecurityError";
    case ValueError::Kind::kRaised: return "TemplateError";
    case ValueError::Kind::kUnsupported: return "unsupported";
  }
  return "error";
}

[[noreturn]] void rethrow_located(const Runtime& rt, const Loc& loc, const ValueError& e) {
  ErrorCode code = e.kind == ValueError::Kind::kUnsupported ? ErrorCode::kUnsupported : ErrorCode::kInput;
  throw Error(code, rt.where(loc) + ": " + kind_name(e.kind) + ": " + e.message);
}

struct ScopeGuard {
  Runtime& rt;
  explicit ScopeGuard(Runtime& r) : rt(r) { rt.push_scope(); }
  ~ScopeGuard() { rt.pop_scope(); }
};

struct OutGuard {
  Runtime& rt;
  std::string* prev;
  OutGuard(Runtime& r, std::string* buf) : rt(r), prev(r.swap_out(buf)) {}
  ~OutGuard() { rt.swap_out(prev); }
};

// Jinja's `loop` for one for-statement. Building a fresh 12-key dict per iteration was most of an
// empty loop's cost (a hostile 5M-iteration loop took minutes under ASan), so the dict is updated in
// place while nothing but the loop holds it; once the template keeps it (`set ns.l = loop`, or
// `loop.cycle` stored) the kept copy stays as it was and a new dict is built.
class LoopObject {
 public:
  LoopObject(size_t n, const std::vector<Value>& items)
      : n_(n), items_(items), no_prev_(Value::undefined("there is no previous item")),
        no_next_(Value::undefined("there is no next item")) {}

  Value at(size_t i) {
    if (!dict_ || dict_.use_count() > 1 || cycle_.use_count() > 2) build();
    const auto ii = static_cast<int64_t>(i), nn = static_cast<int64_t>(n_);
    auto& it = dict_->items;  // the order build() created
    it[0].second = Value(ii);
    it[1].second = Value(ii + 1);
    it[2].second = Value(nn - ii - 1);
    it[3].second = Value(nn - ii);
    it[4].second = Value(i == 0);
    it[5].second = Value(i + 1 == n_);
    it[9].second = i > 0 ? items_[i - 1] : no_prev_;
    it[10].second = i + 1 < n_ ? items_[i + 1] : no_next_;
    *cycle_pos_ = i;
    return Value(DictPtr(dict_));
  }

 private:
  void build() {
    dict_ = std::make_shared<DictData>();
    for (const char* key : {"index0", "index", "revindex0", "revindex", "first", "last"}) dict_->set(key, Value());
    dict_->set("length", Value(static_cast<int64_t>(n_)));
    dict_->set("depth", Value(1));
    dict_->set("depth0", Value(0));
    dict_->set("previtem", Value());
    dict_->set("nextitem", Value());
    cycle_pos_ = std::make_shared<size_t>(0);
    std::shared_ptr<size_t> pos = cycle_pos_;
    Value cycle = make_callable("loop.cycle", [pos](CallArgs& a) -> Value {
      if (a.pos.empty()) throw ValueError{ValueError::Kind::kType, "no items for cycling given"};
      return a.pos[*pos % a.pos.size()];
    });
    cycle_ = cycle.callable_ptr();  // held here and by the dict: a third holder is a copy the template kept
    dict_->set("cycle", std::move(cycle));
  }

  size_t n_;
  const std::vector<Value>& items_;
  Value no_prev_, no_next_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<size_t> cycle_pos_;
  CallablePtr cycle_;
};

}  // namespace

// ---- runtime --------------------------------------------------------------------------------------

Runtime::Runtime(const Program& program, const DictData& context, std::string& out)
    : program_(program), context_(context), scope_(std::make_shared<Scope>()), out_(&out) {}

Runtime::~Runtime() {
  for (const auto& w : closure_scopes_)
    if (auto s = w.lock()) s->vars.clear();
  scope_->vars.clear();
}

void Runtime::step() {
  if (++steps_ > Budget::kMaxSteps)
    throw ValueError{ValueError::Kind::kSecurity, "the template ran more than " + std::to_string(Budget::kMaxSteps) +
                                                      " steps (an endless loop or recursion?)"};
}

void Runtime::charge_steps(int64_t n) {
  steps_ += n - 1;
  step();
}

void Runtime::enter() {
  step();
  if (++depth_ > Budget::kMaxDepth) {
    --depth_;
    throw ValueError{ValueError::Kind::kSecurity,
                     "evaluation nested deeper than " + std::to_string(Budget::kMaxDepth) + " levels"};
  }
}

void Runtime::charge_bytes(size_t n) {
  bytes_ += static_cast<int64_t>(n);
  if (bytes_ > Budget::kMaxBytes)
    throw ValueError{ValueError::Kind::kSecurity, "the template produced more than " +
                                                      std::to_string(Budget::kMaxBytes >> 20) + " MiB of text and lists"};
}

void Runtime::keep_closure_scope(const std::shared_ptr<Scope>& s) {
  if (!closure_scopes_.empty() && closure_scopes_.back().lock() == s) return;
  if (closure_scopes_.size() >= 1024)  // macros defined in a loop: forget the scopes that died
    closure_scopes_.erase(std::remove_if(closure_scopes_.begin(), closure_scopes_.end(),
                                         [](const std::weak_ptr<Scope>& w) { return w.expired(); }),
                          closure_scopes_.end());
  closure_scopes_.push_back(s);
}

Value Runtime::lookup(const std::string& name) const {
  for (const Scope* s = scope_.get(); s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  if (const Value* v = context_.find(name)) return *v;
  if (const Value* g = find_global(name)) return *g;
  return Value::undefined("'" + name + "' is undefined");
}

void Runtime::push_scope() {
  auto s = std::make_shared<Scope>();
  s->parent = scope_;
  scope_ = std::move(s);
}

void Runtime::pop_scope() { scope_ = scope_->parent; }

void Runtime::seed_undefined(const FrameUndefined& names) {
  for (const auto& n : names) scope_->vars[n] = Value::undefined("'" + n + "' is undefined");
}

std::string Runtime::where(const Loc& loc) const {
  return program_.name + ", line " + std::to_string(loc.line) + ", column " + std::to_string(loc.col);
}

void Runtime::assign(const Target& t, const Value& v) {
  try {
    switch (t.kind) {
      case Target::Kind::kName:
        set_local(t.names[0], v);
        return;
      case Target::Kind::kTuple: {
        if (v.is_undefined()) throw ValueError{ValueError::Kind::kUndefined, v.undefined_hint()};
        std::vector<Value> items = iterate(v);
        if (items.size() > t.names.size())
          throw_value_error("too many values to unpack (expected " + std::to_string(t.names.size()) + ")");
        if (items.size() < t.names.size())
          throw_value_error("not enough values to unpack (expected " + std::to_string(t.names.size()) + ", got " +
                            std::to_string(items.size()) + ")");
        for (size_t i = 0; i < items.size(); ++i) set_local(t.names[i], items[i]);
        return;
      }
      case Target::Kind::kNamespaceAttr: {
        Value ns = lookup(t.names[0]);
        if (!ns.is_namespace())
          throw ValueError{ValueError::Kind::kType, "cannot assign attribute on non-namespace object"};
        // A namespace carries values across loop iterations: the one place nesting can grow without
        // bound, or a namespace come to contain itself.
        // Only the new value is walked: the namespace's other attributes passed this check already.
        int64_t visited = 0;
        value_depth(v, Budget::kMaxValueDepth, &ns.as_namespace(), &visited);
        charge_steps(visited);
        ns.as_namespace().attrs.set(t.attr, v);
        return;
      }
    }
  } catch (const ValueError& e) {
    rethrow_located(*this, t.loc, e);
  }
}

namespace {
struct EvalDepth {
  Runtime& rt;
  explicit EvalDepth(Runtime& r) : rt(r) { rt.enter(); }
  ~EvalDepth() { rt.leave(); }
};

// Lookups and branches hand on values that already exist; everything else computed a new one,
// which the byte budget pays for.
bool computes_new_value(const Expr& e) {
  return !(dynamic_cast<const NameExpr*>(&e) || dynamic_cast<const ConstExpr*>(&e) ||
           dynamic_cast<const GetAttrExpr*>(&e) || dynamic_cast<const GetItemExpr*>(&e) ||
           dynamic_cast<const CondExpr*>(&e));
}
}  // namespace

Value eval_expr(const Expr& e, Runtime& rt) {
  try {
    EvalDepth depth(rt);
    Value v = e.eval(rt);
    // Every string or list result is charged, a lookup too: evaluating it copies it (a 40 MB string
    // indexed in a loop must run out of budget, not run for hours). A computed one must also fit
    // kMaxBuiltinBytes, which bounds the memory one value holds.
    if (v.is_string()) {
      rt.charge_bytes(v.as_string().size());
      if (computes_new_value(e)) check_built_size(static_cast<int64_t>(v.as_string().size()), "a string");
    } else if (v.is_list()) {
      rt.charge_bytes(v.as_list().items.size() * sizeof(Value));
    }
    return v;
  } catch (const ValueError& err) {
    rethrow_located(rt, e.loc, err);
  }
}

CallArgs eval_args(const Args& a, Runtime& rt) {
  CallArgs out;
  out.pos.reserve(a.pos.size());
  for (const auto& p : a.pos) out.pos.push_back(eval_expr(*p, rt));
  if (a.star) {
    Value s = eval_expr(*a.star, rt);
    for (auto& v : iterate(s)) out.pos.push_back(std::move(v));
  }
  for (const auto& [k, e] : a.kw) out.kw.emplace_back(k, eval_expr(*e, rt));
  if (a.dstar) {
    Value d = eval_expr(*a.dstar, rt);
    if (!d.is_dict()) throw_type_error("argument after ** must be a mapping, not " + type_name(d));
    for (const auto& [k, v] : d.as_dict().items) out.kw.emplace_back(k, v);
  }
  return out;
}

// ---- expressions -------------------------------------------------------------------------------------

Value NameExpr::eval(Runtime& rt) const { return rt.lookup(name); }

Value ListExpr::eval(Runtime& rt) const {
  std::vector<Value> v;
  v.reserve(items.size());
  for (const auto& e : items) v.push_back(eval_expr(*e, rt));
  return Value::list(std::move(v), tuple);
}

Value DictExpr::eval(Runtime& rt) const {
  DictData d;
  for (const auto& [k, v] : items) {
    Value key = eval_expr(*k, rt);
    if (!key.is_string())
      throw ValueError{ValueError::Kind::kUnsupported, "dict keys other than strings are not supported (got " +
                                                           type_name(key) + ")"};
    d.set(key.as_string(), eval_expr(*v, rt));
  }
  return make_dict(std::move(d));
}

Value GetAttrExpr::eval(Runtime& rt) const { return get_attr(eval_expr(*obj, rt), name); }

Value GetItemExpr::eval(Runtime& rt) const {
  Value o = eval_expr(*obj, rt);
  return get_item(o, eval_expr(*key, rt));
}

Value SliceExpr::eval(Runtime& rt) const {
  Value o = eval_expr(*obj, rt);
  Value a = start ? eval_expr(*start, rt) : Value::none();
  Value b = stop ? eval_expr(*stop, rt) : Value::none();
  Value c = step ? eval_expr(*step, rt) : Value::none();
  return get_slice(o, a, b, c);
}

Value CallExpr::eval(Runtime& rt) const {
  Value f = eval_expr(*callee, rt);
  CallArgs a = eval_args(args, rt);
  if (f.is_undefined()) throw ValueError{ValueError::Kind::kUndefined, f.undefined_hint()};
  if (!f.is_callable()) throw_type_error("'" + type_name(f) + "' object is not callable");
  return f.as_callable().fn(a);
}

Value FilterExpr::apply(Runtime& rt, const Value& input) const {
  CallArgs a = eval_args(args, rt);
  if (!fn) throw ValueError{ValueError::Kind::kValue, "No filter named '" + name + "' found."};
  return fn(rt, input, a);
}

Value FilterExpr::eval(Runtime& rt) const { return apply(rt, eval_expr(*value, rt)); }

Value TestExpr::eval(Runtime& rt) const {
  Value v = eval_expr(*value, rt);
  CallArgs a = eval_args(args, rt);
  if (!fn) throw ValueError{ValueError::Kind::kValue, "No test named '" + name + "' found."};
  bool r = fn(rt, v, a);
  return Value(negated ? !r : r);
}

Value UnaryExpr::eval(Runtime& rt) const {
  Value v = eval_expr(*operand, rt);
  switch (op) {
    case Op::kNot: return Value(!truthy(v));
    case Op::kNeg: return op_neg(v);
    case Op::kPos: return op_pos(v);
  }
  return v;
}

Value BinaryExpr::eval(Runtime& rt) const {
  Value l = eval_expr(*left, rt);
  if (op == Op::kAnd) return truthy(l) ? eval_expr(*right, rt) : l;
  if (op == Op::kOr) return truthy(l) ? l : eval_expr(*right, rt);
  Value r = eval_expr(*right, rt);
  switch (op) {
    case Op::kAdd: return op_add(l, r);
    case Op::kSub: return op_sub(l, r);
    case Op::kMul: return op_mul(l, r);
    case Op::kDiv: return op_div(l, r);
    case Op::kFloorDiv: return op_floordiv(l, r);
    case Op::kMod: return op_mod(l, r);
    case Op::kPow: return op_pow(l, r);
    default: return l;
  }
}

Value ConcatExpr::eval(Runtime& rt) const {
  std::string s;
  for (const auto& p : parts) s += to_str(eval_expr(*p, rt));
  return Value(std::move(s));
}

Value CompareExpr::eval(Runtime& rt) const {
  Value l = eval_expr(*first, rt);
  for (const auto& [op, e] : rest) {
    Value r = eval_expr(*e, rt);
    bool ok = false;
    switch (op) {
      case Op::kEq: ok = equals(l, r); break;
      case Op::kNe: ok = !equals(l, r); break;
      case Op::kLt: ok = compare(l, r, "<") < 0; break;
      case Op::kLe: ok = compare(l, r, "<=") <= 0; break;
      case Op::kGt: ok = compare(l, r, ">") > 0; break;
      case Op::kGe: ok = compare(l, r, ">=") >= 0; break;
      case Op::kIn: ok = contains(r, l); break;
      case Op::kNotIn: ok = !contains(r, l); break;
    }
    if (!ok) return Value(false);
    l = std::move(r);
  }
  return Value(true);
}

Value CondExpr::eval(Runtime& rt) const {
  if (truthy(eval_expr(*cond, rt))) return eval_expr(*then, rt);
  if (otherwise) return eval_expr(*otherwise, rt);
  return Value::undefined("the inline if-expression on line " + std::to_string(loc.line) +
                          " evaluated to false and no else section was defined.");
}

// ---- statements ---------------------------------------------------------------------------------------

Flow exec_body(const Body& body, Runtime& rt) {
  for (const auto& s : body) {
    Flow f;
    try {
      EvalDepth depth(rt);
      f = s->exec(rt);
    } catch (const ValueError& err) {
      rethrow_located(rt, s->loc, err);
    }
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Flow OutputStmt::exec(Runtime& rt) const {
  rt.charge_bytes(text.size());
  rt.out() += text;
  return Flow::kNormal;
}

Flow EmitStmt::exec(Runtime& rt) const {
  Value v = eval_expr(*expr, rt);
  std::string s;
  try {
    s = to_str(v);
    rt.charge_bytes(s.size());
  } catch (const ValueError& err) {
    rethrow_located(rt, expr->loc, err);
  }
  rt.out() += s;
  return Flow::kNormal;
}

Flow IfStmt::exec(Runtime& rt) const {
  for (const auto& [cond, body] : branches)
    if (truthy(eval_expr(*cond, rt))) return exec_body(body, rt);
  return exec_body(otherwise, rt);
}

Flow ForStmt::exec(Runtime& rt) const {
  Value seq = eval_expr(*iter, rt);
  std::vector<Value> items;
  try {
    items = iterate(seq);
  } catch (const ValueError& e) {
    rethrow_located(rt, iter->loc, e);
  }
  if (filter) {
    std::vector<Value> kept;
    for (auto& item : items) {
      rt.step();
      ScopeGuard g(rt);
      rt.assign(target, item);
      if (truthy(eval_expr(*filter, rt))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    ScopeGuard g(rt);
    rt.seed_undefined(otherwise_undefined);
    exec_body(otherwise, rt);
    return Flow::kNormal;
  }
  const size_t n = items.size();
  LoopObject loop(n, items);
  for (size_t i = 0; i < n; ++i) {
    try {
      rt.step();
    } catch (const ValueError& e) {
      rethrow_located(rt, loc, e);
    }
    ScopeGuard g(rt);
    rt.seed_undefined(body_undefined);
    rt.assign(target, items[i]);
    rt.set_local("loop", loop.at(i));
    if (exec_body(body, rt) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Flow AssignStmt::exec(Runtime& rt) const {
  rt.assign(target, eval_expr(*value, rt));
  return Flow::kNormal;
}

// Renders a block body into a string in its own scope, then applies the block's filters
// ({% set x | f %}...{% endset %} and {% filter f %}...{% endfilter %}).
static Value render_filtered_block(Runtime& rt, const Body& body, const FrameUndefined& body_undefined,
                                   const std::vector<std::unique_ptr<FilterExpr>>& filters) {
  std::string buf;
  {
    OutGuard o(rt, &buf);
    ScopeGuard g(rt);
    rt.seed_undefined(body_undefined);
    exec_body(body, rt);
  }
  Value v(std::move(buf));
  for (const auto& f : filters) {
    try {
      v = f->apply(rt, v);
    } catch (const ValueError& e) {
      rethrow_located(rt, f->loc, e);
    }
  }
  return v;
}

Flow AssignBlockStmt::exec(Runtime& rt) const {
  Value v = render_filtered_block(rt, body, body_undefined, filters);
  rt.assign(target, v);
  return Flow::kNormal;
}

Flow MacroStmt::exec(Runtime& rt) const {
  const MacroStmt* self = this;
  Runtime* rtp = &rt;
  std::shared_ptr<Scope> def_scope = rt.scope();
  rt.keep_closure_scope(def_scope);
  Value macro = make_callable("macro " + name, [self, rtp, def_scope](CallArgs& a) -> Value {
    Runtime& r = *rtp;
    if (!r.enter_macro()) {
      r.leave_macro();
      throw ValueError{ValueError::Kind::kValue, "macro calls nested deeper than 300"};
    }
    auto scope = std::make_shared<Scope>();
    scope->parent = def_scope;
    std::shared_ptr<Scope> saved = r.scope();
    r.set_scope(scope);
    r.seed_undefined(self->body_undefined);
    std::string buf;
    std::string* prev = r.swap_out(&buf);
    try {
      const size_t np = self->params.size();
      std::vector<bool> given(np, false);
      std::vector<Value> extra;
      for (size_t i = 0; i < a.pos.size(); ++i) {
        if (i < np) {
          r.set_local(self->params[i], a.pos[i]);
          given[i] = true;
        } else {
          extra.push_back(a.pos[i]);
        }
      }
      DictData kwargs;
      for (auto& [k, v] : a.kw) {
        size_t j = 0;
        while (j < np && self->params[j] != k) ++j;
        if (j < np) {
          if (given[j]) throw_type_error("macro '" + self->name + "' got multiple values for argument '" + k + "'");
          r.set_local(k, v);
          given[j] = true;
        } else {
          kwargs.set(k, v);
        }
      }
      const size_t first_default = np - self->defaults.size();
      for (size_t j = 0; j < np; ++j) {
        if (given[j]) continue;
        if (j >= first_default) r.set_local(self->params[j], eval_expr(*self->defaults[j - first_default], r));
        else r.set_local(self->params[j], Value::undefined("parameter '" + self->params[j] + "' was not provided"));
      }
      r.set_local("varargs", Value::list(std::move(extra)));
      r.set_local("kwargs", make_dict(std::move(kwargs)));
      exec_body(self->body, r);
    } catch (...) {
      r.leave_macro();
      r.swap_out(prev);
      r.set_scope(saved);
      throw;
    }
    r.leave_macro();
    r.swap_out(prev);
    r.set_scope(saved);
    return Value(std::move(buf));
  });
  rt.set_local(name, macro);
  return Flow::kNormal;
}

Flow FilterBlockStmt::exec(Runtime& rt) const {
  Value v = render_filtered_block(rt, body, body_undefined, filters);
  rt.out() += to_str(v);
  return Flow::kNormal;
}

Flow ScopeStmt::exec(Runtime& rt) const {
  ScopeGuard g(rt);
  rt.seed_undefined(body_undefined);
  exec_body(body, rt);
  return Flow::kNormal;
}

Flow WithStmt::exec(Runtime& rt) const {
  std::vector<Value> values;
  for (const auto& [t, e] : assignments) values.push_back(eval_expr(*e, rt));
  ScopeGuard g(rt);
  rt.seed_undefined(body_undefined);
  for (size_t i = 0; i < values.size(); ++i) rt.assign(assignments[i].first, values[i]);
  return exec_body(body, rt);
}

}  // namespace circuitscope::jinja
