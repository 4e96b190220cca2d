// Circuit selection over a Graph: which edges are kept, by score, then pruned to the edges that lie
// on a path from `input` to `logits`. Pure bookkeeping over edge indices, no tensors.
#pragma once
#include <cstdint>
#include <vector>

#include "circuitscope/graph.hpp"

namespace circuitscope {

// in_circuit[e] for every edge index e of the graph (char, not vector<bool>, for speed and clarity).
using EdgeMask = std::vector<char>;

// The n edges with the highest |score| (absolute) or score (signed); ties by edge index.
EdgeMask select_top_n(const Graph& g, const std::vector<double>& edge_scores, int64_t n, bool absolute = true);
// Edges with |score| >= tau (absolute) or score >= tau (signed).
EdgeMask select_threshold(const Graph& g, const std::vector<double>& edge_scores, double tau, bool absolute = true);

// Keeps an edge u->v only if u is reached from `input` through kept edges and v's component
// (the head owning a q/k/v input, the MLP, or logits) reaches `logits` through kept edges. A kv
// node of a per-kv-head graph belongs to every query head of its group. Returns the number removed.
int64_t prune(const Graph& g, EdgeMask& in_circuit);

int64_t count_edges(const EdgeMask& m);

}  // namespace circuitscope
