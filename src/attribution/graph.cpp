#include "circuitscope/graph.hpp"

#include <algorithm>

#include "circuitscope/error.hpp"
#include "core/enum_names.hpp"

namespace circuitscope {

namespace {
constexpr detail::NameTable<KvEdges, 2> kKvEdgesNames = {
    {{KvEdges::kPerQueryHead, "per-query-head"}, {KvEdges::kPerKvHead, "per-kv-head"}}};
}  // namespace

KvEdges parse_kv_edges(const std::string& s) { return detail::parse_name(kKvEdgesNames, s, "kv edges"); }
const char* kv_edges_name(KvEdges k) { return detail::name_of(kKvEdgesNames, k); }

namespace {
std::string head_name(int64_t l, int64_t h) { return "a" + std::to_string(l) + ".h" + std::to_string(h); }
}  // namespace

Graph::Graph(const GraphSpec& spec) : spec_(spec) {
  const int64_t L = spec.n_layers, H = spec.n_heads, K = spec.n_kv_heads;
  if (L <= 0 || H <= 0 || K <= 0 || H % K != 0)
    throw Error(ErrorCode::kConfig, "graph: need n_layers > 0 and n_heads a positive multiple of n_kv_heads; found " +
                                        std::to_string(L) + " layers, " + std::to_string(H) + " heads, " +
                                        std::to_string(K) + " kv heads");
  upstream_.push_back({"input", UpstreamKind::kInput, -1, -1});
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < H; ++h) upstream_.push_back({head_name(l, h), UpstreamKind::kHead, l, h});
    upstream_.push_back({"m" + std::to_string(l), UpstreamKind::kMlp, l, -1});
  }
  const bool per_q = spec.kv_edges == KvEdges::kPerQueryHead;
  const int64_t nkv = per_q ? H : K;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t attn_vis = 1 + l * (H + 1);  // input and every head and MLP of earlier layers
    for (int64_t h = 0; h < H; ++h) downstream_.push_back({head_name(l, h) + "<q>", DownstreamKind::kQ, l, h, attn_vis});
    for (const char* kv : {"k", "v"}) {
      const DownstreamKind kind = kv[0] == 'k' ? DownstreamKind::kK : DownstreamKind::kV;
      for (int64_t n = 0; n < nkv; ++n) {
        const std::string base = per_q ? head_name(l, n) : "a" + std::to_string(l) + ".kv" + std::to_string(n);
        downstream_.push_back({base + "<" + kv + ">", kind, l, n, attn_vis});
      }
    }
    // The MLP of layer l also sees the heads of layer l.
    downstream_.push_back({"m" + std::to_string(l), DownstreamKind::kMlp, l, -1, attn_vis + H});
  }
  downstream_.push_back({"logits", DownstreamKind::kLogits, L, -1, n_upstream()});
  edge_offset_.reserve(downstream_.size() + 1);
  edge_offset_.push_back(0);
  for (const auto& d : downstream_) edge_offset_.push_back(edge_offset_.back() + d.n_visible);
  n_edges_ = edge_offset_.back();
}

int64_t Graph::kv_nodes_per_layer() const {
  return spec_.kv_edges == KvEdges::kPerQueryHead ? spec_.n_heads : spec_.n_kv_heads;
}

int64_t Graph::upstream_head(int64_t layer, int64_t head) const { return 1 + layer * (spec_.n_heads + 1) + head; }
int64_t Graph::upstream_mlp(int64_t layer) const { return 1 + layer * (spec_.n_heads + 1) + spec_.n_heads; }

namespace {
int64_t layer_stride(const GraphSpec& s, int64_t nkv) { return s.n_heads + 2 * nkv + 1; }
}  // namespace

int64_t Graph::downstream_q(int64_t layer, int64_t head) const {
  return layer * layer_stride(spec_, kv_nodes_per_layer()) + head;
}
int64_t Graph::downstream_k(int64_t layer, int64_t node) const {
  return layer * layer_stride(spec_, kv_nodes_per_layer()) + spec_.n_heads + node;
}
int64_t Graph::downstream_v(int64_t layer, int64_t node) const {
  return layer * layer_stride(spec_, kv_nodes_per_layer()) + spec_.n_heads + kv_nodes_per_layer() + node;
}
int64_t Graph::downstream_mlp(int64_t layer) const {
  const int64_t nkv = kv_nodes_per_layer();
  return layer * layer_stride(spec_, nkv) + spec_.n_heads + 2 * nkv;
}

bool Graph::has_edge(int64_t up, int64_t down) const {
  return down >= 0 && down < n_downstream() && up >= 0 && up < downstream_[down].n_visible;
}

int64_t Graph::edge_index(int64_t up, int64_t down) const {
  if (!has_edge(up, down))
    throw Error(ErrorCode::kInput, "graph has no edge from upstream node " + std::to_string(up) + " to downstream node " +
                                       std::to_string(down));
  return edge_offset_[down] + up;
}

std::pair<int64_t, int64_t> Graph::edge_nodes(int64_t edge) const {
  if (edge < 0 || edge >= n_edges_)
    throw Error(ErrorCode::kInput, "edge index " + std::to_string(edge) + " out of range [0," + std::to_string(n_edges_) + ")");
  auto it = std::upper_bound(edge_offset_.begin(), edge_offset_.end(), edge);
  const int64_t down = (it - edge_offset_.begin()) - 1;
  return {edge - edge_offset_[down], down};
}

std::string Graph::edge_name(int64_t edge) const {
  auto [up, down] = edge_nodes(edge);
  return upstream_[up].name + "->" + downstream_[down].name;
}

std::optional<int64_t> Graph::find_upstream(const std::string& name) const {
  for (size_t i = 0; i < upstream_.size(); ++i)
    if (upstream_[i].name == name) return static_cast<int64_t>(i);
  return std::nullopt;
}

std::optional<int64_t> Graph::find_downstream(const std::string& name) const {
  for (size_t i = 0; i < downstream_.size(); ++i)
    if (downstream_[i].name == name) return static_cast<int64_t>(i);
  return std::nullopt;
}

std::optional<int64_t> Graph::find_edge(const std::string& name) const {
  const auto arrow = name.find("->");
  if (arrow == std::string::npos) return std::nullopt;
  auto up = find_upstream(name.substr(0, arrow));
  auto down = find_downstream(name.substr(arrow + 2));
  if (!up || !down || !has_edge(*up, *down)) return std::nullopt;
  return edge_index(*up, *down);
}

}  // namespace circuitscope
