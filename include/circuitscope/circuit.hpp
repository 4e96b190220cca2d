// Circuit selection over a Graph: which edges are kept, by score, then pruned to the edges that lie
// on a path from `input` to `logits`. Pure bookkeeping over edge indices, no tensors.
#pragma once
#include <cstdint>
#include <string>
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

// Greedy search as in the EAP-IG reference (Graph.apply_greedy): start from `logits`; the candidate
// set is every edge into a node already in the circuit; repeatedly take the candidate with the
// highest |score| (or score), add it, and when its upstream node is new, add that node's incoming
// edges (q, k and v inputs of a head, the MLP's input) to the candidates. Stops after n edges or when
// no candidate is left. Not pruned here.
EdgeMask select_greedy(const Graph& g, const std::vector<double>& edge_scores, int64_t n, bool absolute = true);

// How a circuit is chosen from edge scores. Every kind is followed by prune().
//  kTopN:      the n edges with the largest |score|            (--top-n N)
//  kThreshold: every edge with |score| >= tau                  (--threshold TAU)
//  kGreedy:    select_greedy with n edges                      (--greedy N)
//  kSimplify:  the top n edges, of which only those with |score| >= tau stay
//              (--top-n N --simplify TAU; Thinking Sparks: n = 5000, tau = 0.1)
// With absolute = false, score replaces |score| everywhere.
enum class SelectionKind { kNone, kTopN, kThreshold, kGreedy, kSimplify };
const char* selection_name(SelectionKind k);  // "none", "top-n", "threshold", "greedy", "simplify"
SelectionKind parse_selection(const std::string& s);

// node_level (top-n and threshold only): rank the heads and MLPs by their node score (the sum of
// the scores of all edges leaving the node, which for EAP and EAP-IG-inputs is exactly the node's
// own attribution (z_u(clean) - z_u(corrupted)) . dM/dz_u, since z_u enters every later input);
// the circuit is every edge between kept nodes (input and logits always kept), then pruned, as the
// EAP-IG reference's apply_topn(level='node').
struct Selection {
  SelectionKind kind = SelectionKind::kNone;
  int64_t n = 0;      // top-n, greedy, simplify; nodes when node_level
  double tau = 0.0;   // threshold, simplify
  bool absolute = true;
  bool node_level = false;
};

// Per upstream node (graph order): the sum of the scores of the edges leaving it.
std::vector<double> node_scores_from_edges(const Graph& g, const std::vector<double>& edge_scores);

struct SelectedCircuit {
  EdgeMask mask;          // after pruning
  int64_t selected = 0;   // edges chosen before pruning
  int64_t pruned = 0;     // edges removed by pruning
};

SelectedCircuit select_circuit(const Graph& g, const std::vector<double>& edge_scores, const Selection& sel);

// Upstream node u is in the circuit when an in-circuit edge leaves it (input included); heads and
// MLPs are also in when an in-circuit edge enters one of their own inputs (not a kv input shared by a
// group of heads: those heads are in only through their own edges). Per upstream node.
std::vector<char> upstream_in_circuit(const Graph& g, const EdgeMask& m);

}  // namespace circuitscope
