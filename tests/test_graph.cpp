// Computation graph of edge attribution: node and edge counts worked out by hand, names, index maps.
#include <catch2/catch.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"

using namespace circuitscope;

TEST_CASE("graph counts and names: 2 layers - 2 heads - 1 kv head", "[attribution][graph]") {
  // Upstream: input + 2 layers x (2 heads + MLP) = 7.
  // Per query head, downstream per layer: 2 q + 2 k + 2 v + MLP = 7; 2 layers + logits = 15.
  // Edges: layer 0 attention inputs see input only: 6 x 1 = 6; m0 sees input, a0.h0, a0.h1: 3;
  //        layer 1 attention inputs see input + a0.h0, a0.h1, m0: 6 x 4 = 24; m1 sees 4 + 2 = 6;
  //        logits see all 7. Total 46.
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  REQUIRE(g.n_upstream() == 7);
  REQUIRE(g.n_downstream() == 15);
  REQUIRE(g.n_edges() == 46);
  // Per kv head: layer nodes 2 q + 1 k + 1 v + MLP = 5; 11 downstream.
  // Edges: 4 x 1 + 3 + 4 x 4 + 6 + 7 = 36.
  Graph gk({2, 2, 1, KvEdges::kPerKvHead});
  REQUIRE(gk.n_upstream() == 7);
  REQUIRE(gk.n_downstream() == 11);
  REQUIRE(gk.n_edges() == 36);

  std::vector<std::string> up;
  for (const auto& n : g.upstream()) up.push_back(n.name);
  REQUIRE(up == std::vector<std::string>{"input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1"});
  std::vector<std::string> down;
  for (const auto& n : g.downstream()) down.push_back(n.name);
  REQUIRE(down == std::vector<std::string>{"a0.h0<q>", "a0.h1<q>", "a0.h0<k>", "a0.h1<k>", "a0.h0<v>", "a0.h1<v>", "m0",
                                           "a1.h0<q>", "a1.h1<q>", "a1.h0<k>", "a1.h1<k>", "a1.h0<v>", "a1.h1<v>", "m1",
                                           "logits"});
  std::vector<std::string> downk;
  for (const auto& n : gk.downstream()) downk.push_back(n.name);
  REQUIRE(downk == std::vector<std::string>{"a0.h0<q>", "a0.h1<q>", "a0.kv0<k>", "a0.kv0<v>", "m0", "a1.h0<q>", "a1.h1<q>",
                                            "a1.kv0<k>", "a1.kv0<v>", "m1", "logits"});

  // Every edge name, in order: grouped by downstream node, then by upstream index.
  std::vector<std::string> edges;
  for (int64_t e = 0; e < g.n_edges(); ++e) edges.push_back(g.edge_name(e));
  REQUIRE(edges[0] == "input->a0.h0<q>");
  REQUIRE(edges[5] == "input->a0.h1<v>");
  REQUIRE(edges[6] == "input->m0");
  REQUIRE(edges[7] == "a0.h0->m0");
  REQUIRE(edges[8] == "a0.h1->m0");
  REQUIRE(edges[9] == "input->a1.h0<q>");
  REQUIRE(edges[12] == "m0->a1.h0<q>");
  REQUIRE(edges[39] == "input->logits");
  REQUIRE(edges[45] == "m1->logits");
  // No edge into the same layer's attention, none backwards, none from a head into its own layer's heads.
  REQUIRE_FALSE(g.find_edge("a0.h0->a0.h1<q>").has_value());
  REQUIRE_FALSE(g.find_edge("m0->m0").has_value());
  REQUIRE_FALSE(g.find_edge("a1.h0->a0.h0<q>").has_value());
  REQUIRE_FALSE(g.find_edge("a0.h0->a1.kv0<k>").has_value());  // kv naming belongs to the other mode
  REQUIRE_FALSE(g.find_edge("nonsense").has_value());
  REQUIRE(gk.find_edge("a0.h1->a1.kv0<k>").has_value());
}

TEST_CASE("graph index maps are inverse to each other (qwen2-tiny shape - GQA 4/2)", "[attribution][graph]") {
  // L=4, H=4, K=2. Upstream 1 + 4*5 = 21.
  // Per query head: attention nodes 12 per layer seeing 1+5l: 12*(1+6+11+16) = 408; MLPs see 5+5l: 5+10+15+20 = 50;
  // logits 21. Total 479. Per kv head: attention nodes 4+2+2 = 8 per layer: 8*34 = 272, + 50 + 21 = 343.
  for (KvEdges mode : {KvEdges::kPerQueryHead, KvEdges::kPerKvHead}) {
    Graph g({4, 4, 2, mode});
    REQUIRE(g.n_upstream() == 21);
    REQUIRE(g.n_downstream() == (mode == KvEdges::kPerQueryHead ? 4 * 13 + 1 : 4 * 9 + 1));
    REQUIRE(g.n_edges() == (mode == KvEdges::kPerQueryHead ? 479 : 343));
    for (int64_t e = 0; e < g.n_edges(); ++e) {
      auto [u, d] = g.edge_nodes(e);
      REQUIRE(g.edge_index(u, d) == e);
      auto found = g.find_edge(g.edge_name(e));
      REQUIRE(found.has_value());
      REQUIRE(*found == e);
    }
    // Accessors agree with names.
    REQUIRE(g.upstream()[g.upstream_head(2, 3)].name == "a2.h3");
    REQUIRE(g.upstream()[g.upstream_mlp(3)].name == "m3");
    REQUIRE(g.downstream()[g.downstream_q(2, 3)].name == "a2.h3<q>");
    REQUIRE(g.downstream()[g.downstream_mlp(1)].name == "m1");
    REQUIRE(g.downstream()[g.downstream_logits()].name == "logits");
    if (mode == KvEdges::kPerQueryHead) {
      REQUIRE(g.downstream()[g.downstream_k(2, 3)].name == "a2.h3<k>");
      REQUIRE(g.downstream()[g.downstream_v(1, 2)].name == "a1.h2<v>");
    } else {
      REQUIRE(g.downstream()[g.downstream_k(2, 1)].name == "a2.kv1<k>");
      REQUIRE(g.downstream()[g.downstream_v(1, 0)].name == "a1.kv0<v>");
    }
    REQUIRE(g.find_edge("a0.h1->a2.h3<q>").has_value());
    REQUIRE(g.find_edge("input->m0").has_value());
    REQUIRE(g.find_edge("m3->logits").has_value());
    REQUIRE(g.find_edge("a3.h0->m3").has_value());
    REQUIRE_FALSE(g.find_edge("a3.h0->a3.h1<q>").has_value());
  }
  REQUIRE_THROWS_AS(Graph({2, 3, 2, KvEdges::kPerQueryHead}), Error);
  REQUIRE_THROWS_AS(parse_kv_edges("per-head"), Error);
  REQUIRE(parse_kv_edges("per-kv-head") == KvEdges::kPerKvHead);
}
