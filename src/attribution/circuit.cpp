#include "circuitscope/circuit.hpp"

#include <algorithm>
#include <numeric>
#include <queue>

#include "circuitscope/error.hpp"
#include "core/enum_names.hpp"

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

EdgeMask select_greedy(const Graph& g, const std::vector<double>& s, int64_t n, bool absolute) {
  check_scores(g, s);
  if (n < 0) throw Error(ErrorCode::kUsage, "greedy: the number of edges must be >= 0; found " + std::to_string(n));
  const auto own = owners(g);
  // Downstream nodes (inputs) of each upstream node: a head's q/k/v, an MLP's input.
  std::vector<std::vector<int64_t>> inputs(g.n_upstream());
  for (int64_t d = 0; d < g.n_downstream(); ++d)
    for (int64_t u : own[d]) inputs[u].push_back(d);
  // Max-heap on the key; among equal keys the lower edge index first.
  using Item = std::pair<double, int64_t>;
  auto worse = [](const Item& a, const Item& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); };
  std::priority_queue<Item, std::vector<Item>, decltype(worse)> cand(worse);
  std::vector<char> queued(g.n_downstream(), 0);
  auto push_inputs_of = [&](int64_t d) {
    if (queued[d]) return;  // a kv node of a per-kv-head graph is shared by the heads of its group
    queued[d] = 1;
    for (int64_t w = 0; w < g.downstream()[d].n_visible; ++w) {
      const int64_t e = g.edge_index(w, d);
      cand.emplace(absolute ? std::abs(s[e]) : s[e], e);
    }
  };
  push_inputs_of(g.downstream_logits());
  std::vector<char> node_in(g.n_upstream(), 0);
  EdgeMask m(s.size(), 0);
  for (int64_t k = 0; k < n && !cand.empty(); ++k) {
    const int64_t e = cand.top().second;
    cand.pop();
    m[e] = 1;
    const int64_t u = g.edge_nodes(e).first;
    if (node_in[u]) continue;
    node_in[u] = 1;
    for (int64_t d : inputs[u]) push_inputs_of(d);
  }
  return m;
}

namespace {
constexpr detail::NameTable<SelectionKind, 5> kSelectionNames = {{{SelectionKind::kNone, "none"},
                                                                  {SelectionKind::kTopN, "top-n"},
                                                                  {SelectionKind::kThreshold, "threshold"},
                                                                  {SelectionKind::kGreedy, "greedy"},
                                                                  {SelectionKind::kSimplify, "simplify"}}};
}  // namespace

const char* selection_name(SelectionKind k) { return detail::name_of(kSelectionNames, k); }
SelectionKind parse_selection(const std::string& s) {
  return detail::parse_name(kSelectionNames, s, "circuit selection", ErrorCode::kInput);
}

std::vector<double> node_scores_from_edges(const Graph& g, const std::vector<double>& s) {
  check_scores(g, s);
  std::vector<double> out(g.n_upstream(), 0.0);
  for (int64_t e = 0; e < g.n_edges(); ++e) out[g.edge_nodes(e).first] += s[e];
  return out;
}

namespace {
SelectedCircuit select_nodes(const Graph& g, const std::vector<double>& s, const Selection& sel) {
  if (sel.kind != SelectionKind::kTopN && sel.kind != SelectionKind::kThreshold)
    throw Error(ErrorCode::kUsage, std::string("node-level circuits are chosen by top-n or threshold, not ") +
                                       selection_name(sel.kind));
  if (sel.kind == SelectionKind::kTopN && sel.n < 0)
    throw Error(ErrorCode::kUsage, "top-n must be >= 0; found " + std::to_string(sel.n));
  const std::vector<double> ns = node_scores_from_edges(g, s);
  auto key = [&](int64_t u) { return sel.absolute ? std::abs(ns[u]) : ns[u]; };
  std::vector<int64_t> cand;  // heads and MLPs
  for (int64_t u = 1; u < g.n_upstream(); ++u) cand.push_back(u);
  std::stable_sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) { return key(a) > key(b); });
  std::vector<char> keep(g.n_upstream(), 0);
  keep[0] = 1;
  for (size_t i = 0; i < cand.size(); ++i)
    keep[cand[i]] = sel.kind == SelectionKind::kTopN ? static_cast<int64_t>(i) < sel.n : key(cand[i]) >= sel.tau;
  const auto own = owners(g);
  SelectedCircuit out;
  out.mask.assign(g.n_edges(), 0);
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    auto [u, d] = g.edge_nodes(e);
    bool to = own[d].empty();  // logits
    for (int64_t o : own[d]) to = to || keep[o];
    out.mask[e] = keep[u] && to;
  }
  out.selected = count_edges(out.mask);
  out.pruned = prune(g, out.mask);
  return out;
}
}  // namespace

SelectedCircuit select_circuit(const Graph& g, const std::vector<double>& s, const Selection& sel) {
  if (sel.node_level && sel.kind != SelectionKind::kNone) return select_nodes(g, s, sel);
  SelectedCircuit out;
  switch (sel.kind) {
    case SelectionKind::kNone: out.mask.assign(g.n_edges(), 0); return out;
    case SelectionKind::kTopN: out.mask = select_top_n(g, s, sel.n, sel.absolute); break;
    case SelectionKind::kThreshold: out.mask = select_threshold(g, s, sel.tau, sel.absolute); break;
    case SelectionKind::kGreedy: out.mask = select_greedy(g, s, sel.n, sel.absolute); break;
    case SelectionKind::kSimplify: {
      out.mask = select_top_n(g, s, sel.n, sel.absolute);
      const EdgeMask t = select_threshold(g, s, sel.tau, sel.absolute);
      for (size_t e = 0; e < out.mask.size(); ++e) out.mask[e] = out.mask[e] && t[e];
      break;
    }
  }
  out.selected = count_edges(out.mask);
  out.pruned = prune(g, out.mask);
  return out;
}

std::vector<char> upstream_in_circuit(const Graph& g, const EdgeMask& m) {
  if (static_cast<int64_t>(m.size()) != g.n_edges())
    throw Error(ErrorCode::kInput, "circuit mask has " + std::to_string(m.size()) + " entries for a graph of " +
                                       std::to_string(g.n_edges()) + " edges");
  const auto own = owners(g);
  std::vector<char> in(g.n_upstream(), 0);
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    if (!m[e]) continue;
    auto [u, d] = g.edge_nodes(e);
    in[u] = 1;
    if (own[d].size() == 1) in[own[d][0]] = 1;  // a shared kv input does not put its whole group in
  }
  return in;
}

}  // namespace circuitscope
