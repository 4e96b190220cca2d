// The computation graph that edge attribution scores (issue 4): upstream nodes write into the
// residual stream, downstream nodes read from it, and an edge joins every upstream node to every
// later downstream node. Pure bookkeeping, no tensors.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace circuitscope {

// How key/value edges of grouped-query attention are scored.
//  kPerQueryHead: each query head has its own k and v downstream nodes (`a{l}.h{h}<k>`), as
//                 EAP-IG does after ungrouping: each query head's own use of the shared k/v input.
//  kPerKvHead:    one k and one v node per kv head, named `a{l}.kv{g}<k>` / `a{l}.kv{g}<v>`.
// Without GQA (K == H) the two give the same scores; the names still differ (h vs kv).
enum class KvEdges { kPerQueryHead, kPerKvHead };

KvEdges parse_kv_edges(const std::string& s);  // "per-query-head" | "per-kv-head"
const char* kv_edges_name(KvEdges k);

enum class UpstreamKind { kInput, kHead, kMlp };
enum class DownstreamKind { kQ, kK, kV, kMlp, kLogits };

struct UpstreamNode {
  std::string name;  // "input", "a{l}.h{h}", "m{l}"
  UpstreamKind kind;
  int64_t layer;     // -1 for input
  int64_t head;      // -1 unless a head
};

struct DownstreamNode {
  std::string name;  // "a{l}.h{h}<q>", "a{l}.kv{g}<k>", "m{l}", "logits"
  DownstreamKind kind;
  int64_t layer;     // n_layers for logits
  int64_t head;      // query head (q, and k/v per query head) or kv head (k/v per kv head); -1 otherwise
  int64_t n_visible; // the upstream nodes 0..n_visible-1 feed it (upstream nodes are in topological order)
};

struct GraphSpec {
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  KvEdges kv_edges = KvEdges::kPerQueryHead;
};

// Index layout (stable, used by score matrices [n_upstream, n_downstream]):
//  upstream:   0 = input; layer l: heads at 1 + l*(H+1) + h, its MLP at 1 + l*(H+1) + H.
//  downstream: layer l: q heads (H), k nodes (H or K), v nodes (H or K), MLP; then logits last.
//  edges:      grouped by downstream node in downstream order; within one node by upstream index.
class Graph {
 public:
  explicit Graph(const GraphSpec& spec);

  const GraphSpec& spec() const { return spec_; }
  const std::vector<UpstreamNode>& upstream() const { return upstream_; }
  const std::vector<DownstreamNode>& downstream() const { return downstream_; }
  int64_t n_upstream() const { return static_cast<int64_t>(upstream_.size()); }
  int64_t n_downstream() const { return static_cast<int64_t>(downstream_.size()); }
  int64_t n_edges() const { return n_edges_; }
  // k (or v) nodes per layer: H per query head, K per kv head.
  int64_t kv_nodes_per_layer() const;

  int64_t upstream_input() const { return 0; }
  int64_t upstream_head(int64_t layer, int64_t head) const;
  int64_t upstream_mlp(int64_t layer) const;
  int64_t downstream_q(int64_t layer, int64_t head) const;
  int64_t downstream_k(int64_t layer, int64_t node) const;  // node: query head or kv head, per kv_edges
  int64_t downstream_v(int64_t layer, int64_t node) const;
  int64_t downstream_mlp(int64_t layer) const;
  int64_t downstream_logits() const { return n_downstream() - 1; }

  bool has_edge(int64_t up, int64_t down) const;
  // Edge index <-> (upstream, downstream) and names, e.g. "a0.h1->a2.h3<q>".
  int64_t edge_index(int64_t up, int64_t down) const;  // throws when there is no such edge
  std::pair<int64_t, int64_t> edge_nodes(int64_t edge) const;
  std::string edge_name(int64_t edge) const;
  std::optional<int64_t> find_edge(const std::string& name) const;
  std::optional<int64_t> find_upstream(const std::string& name) const;
  std::optional<int64_t> find_downstream(const std::string& name) const;

 private:
  GraphSpec spec_;
  std::vector<UpstreamNode> upstream_;
  std::vector<DownstreamNode> downstream_;
  std::vector<int64_t> edge_offset_;  // per downstream node, prefix sums of n_visible
  int64_t n_edges_ = 0;
};

}  // namespace circuitscope
