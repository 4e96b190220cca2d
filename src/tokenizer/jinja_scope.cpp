// Compile-time scope analysis, after Jinja2's idtracking.py. Jinja2 gives every frame (the
// template, each for-loop iteration, a for-loop's else, a macro call, set/filter/with/call blocks)
// its own variables and decides, from the order of reads and writes in the frame's own
// statements, how each starts:
//   - read before any write in the frame, or first written inside an `if`: from the enclosing
//     frame, or the render context;
//   - written first, and no enclosing frame knows the name: undefined, even if the render context
//     has it (so a nested loop that reads it before the write sees undefined).
// The evaluator looks names up dynamically through nested scopes, which agrees with Jinja2 in
// every other respect; this pass only lists, per frame, the names to seed as undefined.
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/jinja_ast.hpp"

namespace circuitscope::jinja {
namespace {

using NameSet = std::unordered_set<std::string>;

// Name loads of an expression, in the order Jinja2's visitor meets them.
void expr_loads(const Expr* e, std::vector<std::string>& out);

void args_loads(const Args& a, std::vector<std::string>& out) {
  for (const auto& p : a.pos) expr_loads(p.get(), out);
  for (const auto& kv : a.kw) expr_loads(kv.second.get(), out);
  expr_loads(a.star.get(), out);
  expr_loads(a.dstar.get(), out);
}

void expr_loads(const Expr* e, std::vector<std::string>& out) {
  if (!e) return;
  if (auto n = dynamic_cast<const NameExpr*>(e)) {
    out.push_back(n->name);
  } else if (auto l = dynamic_cast<const ListExpr*>(e)) {
    for (const auto& x : l->items) expr_loads(x.get(), out);
  } else if (auto d = dynamic_cast<const DictExpr*>(e)) {
    for (const auto& kv : d->items) {
      expr_loads(kv.first.get(), out);
      expr_loads(kv.second.get(), out);
    }
  } else if (auto g = dynamic_cast<const GetAttrExpr*>(e)) {
    expr_loads(g->obj.get(), out);
  } else if (auto gi = dynamic_cast<const GetItemExpr*>(e)) {
    expr_loads(gi->obj.get(), out);
    expr_loads(gi->key.get(), out);
  } else if (auto s = dynamic_cast<const SliceExpr*>(e)) {
    expr_loads(s->obj.get(), out);
    expr_loads(s->start.get(), out);
    expr_loads(s->stop.get(), out);
    expr_loads(s->step.get(), out);
  } else if (auto c = dynamic_cast<const CallExpr*>(e)) {
    expr_loads(c->callee.get(), out);
    args_loads(c->args, out);
  } else if (auto f = dynamic_cast<const FilterExpr*>(e)) {
    expr_loads(f->value.get(), out);
    args_loads(f->args, out);
  } else if (auto t = dynamic_cast<const TestExpr*>(e)) {
    expr_loads(t->value.get(), out);
    args_loads(t->args, out);
  } else if (auto u = dynamic_cast<const UnaryExpr*>(e)) {
    expr_loads(u->operand.get(), out);
  } else if (auto b = dynamic_cast<const BinaryExpr*>(e)) {
    expr_loads(b->left.get(), out);
    expr_loads(b->right.get(), out);
  } else if (auto cc = dynamic_cast<const ConcatExpr*>(e)) {
    for (const auto& p : cc->parts) expr_loads(p.get(), out);
  } else if (auto cm = dynamic_cast<const CompareExpr*>(e)) {
    expr_loads(cm->first.get(), out);
    for (const auto& r : cm->rest) expr_loads(r.second.get(), out);
  } else if (auto ce = dynamic_cast<const CondExpr*>(e)) {
    expr_loads(ce->cond.get(), out);  // Jinja2 visits the test first
    expr_loads(ce->then.get(), out);
    expr_loads(ce->otherwise.get(), out);
  }
}

enum class Init { kInherit, kUndefined, kParam };

struct FrameState {
  std::unordered_map<std::string, Init> refs;
  NameSet stores;
};

class Analyzer {
 public:
  // Analyses one frame and, after it, the frames nested in it.
  void frame(Body& body, const std::vector<std::string>& params, const std::vector<const Expr*>& first_loads,
             const NameSet& outer, FrameUndefined& result) {
    FrameState f;
    for (const auto& p : params) f.refs[p] = Init::kParam;
    std::vector<std::string> names;
    for (const Expr* e : first_loads) expr_loads(e, names);
    for (const auto& n : names) load(f, n);
    std::vector<std::function<void(const NameSet&)>> nested;
    visit_body(f, body, outer, nested);
    for (const auto& [n, init] : f.refs)
      if (init == Init::kUndefined) result.push_back(n);
    NameSet known = outer;
    for (const auto& kv : f.refs) known.insert(kv.first);
    for (auto& job : nested) job(known);
  }

 private:
  static void load(FrameState& f, const std::string& n) { f.refs.emplace(n, Init::kInherit); }

  static void store(FrameState& f, const std::string& n, const NameSet& outer) {
    f.stores.insert(n);
    f.refs.emplace(n, outer.count(n) ? Init::kInherit : Init::kUndefined);
  }

  static void loads(FrameState& f, const Expr* e) {
    std::vector<std::string> names;
    expr_loads(e, names);
    for (const auto& n : names) load(f, n);
  }

  static void target(FrameState& f, const Target& t, const NameSet& outer) {
    if (t.kind == Target::Kind::kNamespaceAttr) load(f, t.names[0]);  // `set ns.x`: reads ns
    else
      for (const auto& n : t.names) store(f, n, outer);
  }

  static std::vector<std::string> target_names(const Target& t) {
    return t.kind == Target::Kind::kNamespaceAttr ? std::vector<std::string>{} : t.names;
  }

  void visit_body(FrameState& f, Body& body, const NameSet& outer,
                  std::vector<std::function<void(const NameSet&)>>& nested) {
    for (const auto& sp : body) {
      Stmt* s = sp.get();
      if (auto e = dynamic_cast<EmitStmt*>(s)) {
        loads(f, e->expr.get());
      } else if (auto i = dynamic_cast<IfStmt*>(s)) {
        visit_if(f, *i, outer, nested);
      } else if (auto fo = dynamic_cast<ForStmt*>(s)) {
        loads(f, fo->iter.get());
        auto* mut = fo;
        nested.push_back([this, mut](const NameSet& known) {
          std::vector<std::string> params = target_names(mut->target);
          params.push_back("loop");
          frame(mut->body, params, {}, known, mut->body_undefined);
          frame(mut->otherwise, {}, {}, known, mut->otherwise_undefined);
        });
      } else if (auto a = dynamic_cast<AssignStmt*>(s)) {
        loads(f, a->value.get());
        target(f, a->target, outer);
      } else if (auto ab = dynamic_cast<AssignBlockStmt*>(s)) {
        target(f, ab->target, outer);
        auto* mut = ab;
        nested.push_back([this, mut](const NameSet& known) {
          frame(mut->body, {}, {}, known, mut->body_undefined);
        });
      } else if (auto m = dynamic_cast<MacroStmt*>(s)) {
        store(f, m->name, outer);
        auto* mut = m;
        nested.push_back([this, mut](const NameSet& known) {
          std::vector<std::string> params = mut->params;
          params.insert(params.end(), {"varargs", "kwargs", "caller"});
          std::vector<const Expr*> defaults;
          for (const auto& d : mut->defaults) defaults.push_back(d.get());
          frame(mut->body, params, defaults, known, mut->body_undefined);
        });
      } else if (auto fb = dynamic_cast<FilterBlockStmt*>(s)) {
        for (const auto& flt : fb->filters) {
          std::vector<std::string> names;
          args_loads(flt->args, names);
          for (const auto& n : names) load(f, n);
        }
        auto* mut = fb;
        nested.push_back([this, mut](const NameSet& known) {
          frame(mut->body, {}, {}, known, mut->body_undefined);
        });
      } else if (auto w = dynamic_cast<WithStmt*>(s)) {
        for (const auto& kv : w->assignments) loads(f, kv.second.get());
        auto* mut = w;
        nested.push_back([this, mut](const NameSet& known) {
          std::vector<std::string> params;
          for (const auto& kv : mut->assignments)
            for (const auto& n : target_names(kv.first)) params.push_back(n);
          frame(mut->body, params, {}, known, mut->body_undefined);
        });
      } else if (auto sc = dynamic_cast<ScopeStmt*>(s)) {
        auto* mut = sc;
        nested.push_back([this, mut](const NameSet& known) {
          frame(mut->body, {"caller"}, {}, known, mut->body_undefined);
        });
      }
      // OutputStmt and LoopControlStmt name nothing.
    }
  }

  // Jinja2 analyses each branch on a copy of the frame, then merges (Symbols.branch_update): a
  // name first written inside any branch starts out as read from outside.
  void visit_if(FrameState& f, IfStmt& s, const NameSet& outer,
                std::vector<std::function<void(const NameSet&)>>& nested) {
    loads(f, s.branches.front().first.get());
    const NameSet stores_before = f.stores;
    std::vector<FrameState> branches;
    for (size_t b = 0; b < s.branches.size(); ++b) {
      FrameState copy = f;
      if (b > 0) loads(copy, s.branches[b].first.get());  // an elif's test belongs to its branch
      visit_body(copy, s.branches[b].second, outer, nested);
      branches.push_back(std::move(copy));
    }
    FrameState copy = f;
    visit_body(copy, s.otherwise, outer, nested);
    branches.push_back(std::move(copy));
    NameSet new_stores;
    for (const auto& br : branches)
      for (const auto& n : br.stores)
        if (!stores_before.count(n)) new_stores.insert(n);
    for (const auto& br : branches) {
      for (const auto& kv : br.refs) f.refs[kv.first] = kv.second;
      f.stores.insert(br.stores.begin(), br.stores.end());
    }
    for (const auto& n : new_stores)
      if (f.refs[n] != Init::kParam) f.refs[n] = Init::kInherit;
  }
};

}  // namespace

void analyze_scopes(Program& program) {
  Analyzer a;
  a.frame(program.body, {}, {}, NameSet{}, program.body_undefined);
}

}  // namespace circuitscope::jinja
