// Circuit selection and pruning on small graphs worked out by hand.
#include <catch2/catch.hpp>

#include "circuitscope/circuit.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"

using namespace circuitscope;

namespace {
EdgeMask mask_of(const Graph& g, std::initializer_list<const char*> names) {
  EdgeMask m(g.n_edges(), 0);
  for (const char* n : names) {
    auto e = g.find_edge(n);
    REQUIRE(e.has_value());
    m[*e] = 1;
  }
  return m;
}
std::vector<std::string> names_of(const Graph& g, const EdgeMask& m) {
  std::vector<std::string> out;
  for (int64_t e = 0; e < g.n_edges(); ++e)
    if (m[e]) out.push_back(g.edge_name(e));
  return out;
}
}  // namespace

TEST_CASE("top-n and threshold selection", "[attribution][circuit]") {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});  // 46 edges
  std::vector<double> s(g.n_edges(), 0.0);
  s[3] = -5.0;
  s[10] = 4.0;
  s[20] = 3.0;
  s[30] = -3.0;  // ties with s[20] on |score|: the lower index wins
  s[40] = 1.0;
  REQUIRE(names_of(g, select_top_n(g, s, 2)) == std::vector<std::string>{g.edge_name(3), g.edge_name(10)});
  EdgeMask t3 = select_top_n(g, s, 3);
  REQUIRE(t3[20] == 1);
  REQUIRE(t3[30] == 0);
  EdgeMask signed2 = select_top_n(g, s, 2, /*absolute=*/false);
  REQUIRE(names_of(g, signed2) == std::vector<std::string>{g.edge_name(10), g.edge_name(20)});
  REQUIRE(count_edges(select_top_n(g, s, 1000)) == g.n_edges());
  REQUIRE(count_edges(select_threshold(g, s, 3.0)) == 4);
  REQUIRE(count_edges(select_threshold(g, s, 3.0, false)) == 2);
  REQUIRE_THROWS_AS(select_top_n(g, std::vector<double>(5, 0.0), 2), Error);
}

TEST_CASE("pruning keeps exactly the edges on input-to-logits paths", "[attribution][circuit]") {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  // A path input -> a0.h0 -> m1 -> logits, plus dangling pieces:
  //  a0.h1 -> logits: a0.h1 has no incoming edge;       input -> a1.h0<k>: a1.h0 feeds nothing;
  //  a0.h0 -> a1.h1<v> and a1.h1 -> m1 would make a1.h1 live: added in the second part.
  EdgeMask m = mask_of(g, {"input->a0.h0<q>", "a0.h0->m1", "m1->logits", "a0.h1->logits", "input->a1.h0<k>", "a0.h0->a1.h1<v>"});
  REQUIRE(prune(g, m) == 3);
  REQUIRE(names_of(g, m) == std::vector<std::string>{"input->a0.h0<q>", "a0.h0->m1", "m1->logits"});

  EdgeMask m2 = mask_of(g, {"input->a0.h0<q>", "a0.h0->a1.h1<v>", "a1.h1->m1", "m1->logits", "m0->logits"});
  // m0 has no incoming edge: its edge goes; the path through a1.h1 stays.
  REQUIRE(prune(g, m2) == 1);
  REQUIRE(names_of(g, m2) ==
          std::vector<std::string>{"input->a0.h0<q>", "a0.h0->a1.h1<v>", "a1.h1->m1", "m1->logits"});

  // Per kv head: the kv node a1.kv0<k> belongs to both a1.h0 and a1.h1.
  Graph gk({2, 2, 1, KvEdges::kPerKvHead});
  EdgeMask m3 = mask_of(gk, {"input->a1.kv0<k>", "a1.h1->logits", "input->logits"});
  REQUIRE(prune(gk, m3) == 0);
  EdgeMask m4 = mask_of(gk, {"input->a1.h0<q>", "a1.h1->logits"});  // a1.h1 has no input: both go
  REQUIRE(prune(gk, m4) == 2);
  EdgeMask empty(g.n_edges(), 0);
  REQUIRE(prune(g, empty) == 0);
}

TEST_CASE("greedy grows backwards from logits by the best edge into the circuit", "[attribution][circuit]") {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  std::vector<double> s(g.n_edges(), 0.0);
  auto set = [&](const char* n, double v) { s[*g.find_edge(n)] = v; };
  set("m1->logits", 5.0);
  set("a0.h1->logits", -4.0);          // |score| counts
  set("input->m1", 3.5);
  set("input->a0.h1<v>", 2.0);
  set("a0.h0->m1", 1.0);
  set("a1.h0->logits", 0.5);
  set("a0.h0->a1.h0<q>", 10.0);        // the best edge, but a1.h0 only becomes a candidate's parent late
  // Step by step: m1->logits (m1 joins: its inputs become candidates), a0.h1->logits (a0.h1 joins),
  // input->m1, input->a0.h1<v>, a0.h0->m1 (a0.h0 joins, its inputs score 0), a1.h0->logits, then 10.
  REQUIRE(names_of(g, select_greedy(g, s, 4)) ==
          std::vector<std::string>{"input->a0.h1<v>", "input->m1", "a0.h1->logits", "m1->logits"});
  EdgeMask six = select_greedy(g, s, 6);
  REQUIRE(count_edges(six) == 6);
  REQUIRE(six[*g.find_edge("a1.h0->logits")] == 1);
  REQUIRE(six[*g.find_edge("a0.h0->a1.h0<q>")] == 0);
  REQUIRE(select_greedy(g, s, 7)[*g.find_edge("a0.h0->a1.h0<q>")] == 1);
  // Top-n by contrast takes the 10 at once.
  REQUIRE(select_top_n(g, s, 4)[*g.find_edge("a0.h0->a1.h0<q>")] == 1);
  // Pruned: a0.h0->m1 and a1.h0->logits dangle (their heads have no scored input in the circuit).
  Selection sel;
  sel.kind = SelectionKind::kGreedy;
  sel.n = 6;
  const SelectedCircuit c = select_circuit(g, s, sel);
  REQUIRE(c.selected == 6);
  REQUIRE(c.pruned == 2);
  // Signed: a0.h1->logits (-4) ranks below every zero-score edge; the second pick is input->m1.
  EdgeMask sg = select_greedy(g, s, 2, /*absolute=*/false);
  REQUIRE(sg[*g.find_edge("m1->logits")] == 1);
  REQUIRE(sg[*g.find_edge("a0.h1->logits")] == 0);
  REQUIRE(sg[*g.find_edge("input->m1")] == 1);
  // More than there are reachable edges: everything reachable (all of them here), no error.
  REQUIRE(count_edges(select_greedy(g, s, 1000)) == g.n_edges());
  REQUIRE_THROWS_AS(select_greedy(g, s, -1), Error);

  // Per kv head: a kv node shared by a group's heads is queued once (no duplicate edges).
  Graph gk({2, 2, 1, KvEdges::kPerKvHead});
  std::vector<double> sk(gk.n_edges(), 1.0);
  REQUIRE(count_edges(select_greedy(gk, sk, gk.n_edges())) == gk.n_edges());
}

TEST_CASE("simplify: top n - then |score| >= tau - selection names", "[attribution][circuit]") {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  std::vector<double> s(g.n_edges(), 0.0);
  s[3] = -5.0;
  s[10] = 4.0;
  s[20] = 3.0;
  s[30] = -3.0;
  s[40] = 1.0;
  Selection sel;
  sel.kind = SelectionKind::kSimplify;
  sel.n = 4;
  sel.tau = 3.5;
  REQUIRE(select_circuit(g, s, sel).selected == 2);  // top 4 = {3,10,20,30}; |s| >= 3.5: {3,10}
  sel.n = 1;
  sel.tau = 0.5;
  REQUIRE(select_circuit(g, s, sel).selected == 1);  // the top edge only, though 5 pass tau
  sel.n = 4;
  sel.tau = 3.5;
  sel.absolute = false;
  REQUIRE(select_circuit(g, s, sel).selected == 1);  // signed top 4 = {10,20,40,0}; >= 3.5: {10}
  sel.kind = SelectionKind::kThreshold;
  sel.absolute = true;
  sel.tau = 3.0;
  REQUIRE(select_circuit(g, s, sel).selected == 4);
  sel.kind = SelectionKind::kNone;
  REQUIRE(count_edges(select_circuit(g, s, sel).mask) == 0);
  for (auto k : {SelectionKind::kNone, SelectionKind::kTopN, SelectionKind::kThreshold, SelectionKind::kGreedy,
                 SelectionKind::kSimplify})
    REQUIRE(parse_selection(selection_name(k)) == k);
  REQUIRE_THROWS_AS(parse_selection("best"), Error);
}

TEST_CASE("node-level circuits: node score = sum of outgoing edge scores - edges between kept nodes",
          "[attribution][circuit]") {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  std::vector<double> s(g.n_edges(), 0.0);
  auto set = [&](const char* n, double v) { s[*g.find_edge(n)] = v; };
  set("a0.h1->logits", 2.0);
  set("a0.h1->m1", -1.5);  // a0.h1: 0.5
  set("m0->logits", -3.0);  // m0: -3
  set("a1.h0->logits", 1.0);
  set("a1.h0->m1", 0.5);  // a1.h0: 1.5
  set("m1->logits", 0.7);  // m1: 0.7
  set("input->a0.h0<q>", 9.0);  // input's score is not a candidate
  const std::vector<double> ns = node_scores_from_edges(g, s);
  REQUIRE(ns[0] == 9.0);
  REQUIRE(ns[g.upstream_head(0, 1)] == 0.5);
  REQUIRE(ns[g.upstream_mlp(0)] == -3.0);
  REQUIRE(ns[g.upstream_head(1, 0)] == 1.5);
  Selection sel;
  sel.kind = SelectionKind::kTopN;
  sel.node_level = true;
  sel.n = 2;  // |score|: m0 3, a1.h0 1.5
  SelectedCircuit c = select_circuit(g, s, sel);
  // Every edge among {input, m0, a1.h0, logits}: input->m0, input->a1.h0<q,k,v>, m0->a1.h0<q,k,v>,
  // input->logits, m0->logits, a1.h0->logits = 10; none dangles.
  REQUIRE(c.selected == 10);
  REQUIRE(c.pruned == 0);
  REQUIRE(c.mask[*g.find_edge("m0->a1.h0<k>")] == 1);
  REQUIRE(c.mask[*g.find_edge("a0.h1->logits")] == 0);
  sel.n = 3;  // + m1 (0.7 > 0.5)
  c = select_circuit(g, s, sel);
  REQUIRE(c.mask[*g.find_edge("a1.h0->m1")] == 1);
  REQUIRE(c.mask[*g.find_edge("a0.h1->m1")] == 0);
  sel.absolute = false;  // signed: a1.h0 1.5, m1 0.7, a0.h1 0.5
  c = select_circuit(g, s, sel);
  REQUIRE(c.mask[*g.find_edge("a0.h1->m1")] == 1);
  REQUIRE(c.mask[*g.find_edge("m0->logits")] == 0);
  sel.kind = SelectionKind::kThreshold;
  sel.absolute = true;
  sel.tau = 1.0;  // m0, a1.h0
  REQUIRE(select_circuit(g, s, sel).selected == 10);
  sel.kind = SelectionKind::kGreedy;
  REQUIRE_THROWS_AS(select_circuit(g, s, sel), Error);
}

TEST_CASE("nodes in the circuit: own inputs count - a shared kv input does not", "[attribution][circuit]") {
  Graph gk({2, 2, 1, KvEdges::kPerKvHead});
  EdgeMask m = mask_of(gk, {"input->a1.kv0<k>", "a1.h1->logits"});
  REQUIRE(prune(gk, m) == 0);
  const std::vector<char> in = upstream_in_circuit(gk, m);
  REQUIRE(in[0] == 1);
  REQUIRE(in[gk.upstream_head(1, 1)] == 1);
  REQUIRE(in[gk.upstream_head(1, 0)] == 0);  // shares the kv input, but writes nothing in the circuit
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  EdgeMask q = mask_of(g, {"input->a0.h1<v>"});  // unpruned: the head whose input it is counts
  const std::vector<char> qi = upstream_in_circuit(g, q);
  REQUIRE(qi[g.upstream_head(0, 1)] == 1);
  REQUIRE(qi[g.upstream_head(0, 0)] == 0);
}
