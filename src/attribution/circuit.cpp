#include "circuitscope/circuit.hpp"

#include <algorithm>
#include <numeric>

#include "circuitscope/error.hpp"

namespace circuitscope {

namespace {

void check_scores(const Graph& g, const std::vector<double>& s) {
  if (static_cast<int64_t>(s.size()) != g.n_edges())
    throw Error(ErrorCode::kInput, "circuit selection: " + std::to_string(s.size()) + " edge scores for a graph of " +
                                       std::to_string(g.n_edges()) + " edges");
}

// Upstream component of each downstream node (-1 for logits), and the downstream inputs of each upstream node.
std::vector<std::vector<int64_t>> owners(const Graph& g) {  // per downstream node: upstream indices it belongs to
  const auto& s = g.spec();
  const int64_t G = s.n_heads / s.n_kv_heads;
  std::vector<std::vector<int64_t>> out(g.n_downstream());
  for (int64_t d = 0; d < g.n_downstream(); ++d) {
    const DownstreamNode& n = g.downstream()[d];
    switch (n.kind) {
      case DownstreamKind::kQ: out[d] = {g.upstream_head(n.layer, n.head)}; break;
      case DownstreamKind::kK:
      case DownstreamKind::kV:
        if (s.kv_edges == KvEdges::kPerQueryHead) {
          out[d] = {g.upstream_head(n.layer, n.head)};
        } else {
          for (int64_t j = 0; j < G; ++j) out[d].push_back(g.upstream_head(n.layer, n.head * G + j));
        }
        break;
      case DownstreamKind::kMlp: out[d] = {g.upstream_mlp(n.layer)}; break;
      case DownstreamKind::kLogits: break;
    }
  }
  return out;
}

}  // namespace

EdgeMask select_top_n(const Graph& g, const std::vector<double>& s, int64_t n, bool absolute) {
  check_scores(g, s);
  if (n < 0) throw Error(ErrorCode::kUsage, "top-n must be >= 0; found " + std::to_string(n));
  std::vector<int64_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto key = [&](int64_t e) { return absolute ? std::abs(s[e]) : s[e]; };
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
  EdgeMask m(s.size(), 0);
  for (int64_t i = 0; i < std::min<int64_t>(n, static_cast<int64_t>(idx.size())); ++i) m[idx[i]] = 1;
  return m;
}

EdgeMask select_threshold(const Graph& g, const std::vector<double>& s, double tau, bool absolute) {
  check_scores(g, s);
  EdgeMask m(s.size(), 0);
  for (size_t e = 0; e < s.size(); ++e) m[e] = (absolute ? std::abs(s[e]) : s[e]) >= tau;
  return m;
}

int64_t prune(const Graph& g, EdgeMask& m) {
  if (static_cast<int64_t>(m.size()) != g.n_edges())
    throw Error(ErrorCode::kInput, "circuit mask has " + std::to_string(m.size()) + " entries for a graph of " +
                                       std::to_string(g.n_edges()) + " edges");
  const auto own = owners(g);
  const int64_t U = g.n_upstream(), N = g.n_downstream();
  // Forward: upstream nodes in index order are topologically ordered.
  std::vector<char> reached(U, 0);
  reached[0] = 1;
  std::vector<std::vector<int64_t>> inputs(U);  // downstream nodes owned by each upstream node
  for (int64_t d = 0; d < N; ++d)
    for (int64_t u : own[d]) inputs[u].push_back(d);
  for (int64_t u = 1; u < U; ++u)
    for (int64_t d : inputs[u])
      for (int64_t w = 0; w < g.downstream()[d].n_visible && !reached[u]; ++w)
        if (reached[w] && m[g.edge_index(w, d)]) reached[u] = 1;
  // Backward: a downstream node reaches logits when it is logits or one of its owners does.
  std::vector<char> reaches(U, 0);
  auto down_reaches = [&](int64_t d) {
    if (g.downstream()[d].kind == DownstreamKind::kLogits) return true;
    for (int64_t u : own[d])
      if (reaches[u]) return true;
    return false;
  };
  for (int64_t u = U - 1; u >= 0; --u)
    for (int64_t d = 0; d < N && !reaches[u]; ++d)
      if (u < g.downstream()[d].n_visible && m[g.edge_index(u, d)] && down_reaches(d)) reaches[u] = 1;
  int64_t removed = 0;
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    if (!m[e]) continue;
    auto [u, d] = g.edge_nodes(e);
    if (!reached[u] || !down_reaches(d)) {
      m[e] = 0;
      ++removed;
    }
  }
  return removed;
}

int64_t count_edges(const EdgeMask& m) { return std::count(m.begin(), m.end(), 1); }

}  // namespace circuitscope
