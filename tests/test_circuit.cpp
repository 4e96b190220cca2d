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
