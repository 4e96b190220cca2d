#include "circuitscope/report.hpp"

#include <atomic>
#include <random>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/config.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"

namespace circuitscope {

std::string tool_name() { return std::string("circuitscope ") + CIRCUITSCOPE_VERSION; }

nlohmann::json model_json(const std::string& path, const ModelConfig& c, const std::string& fingerprint) {
  return {{"path", path},          {"architecture", c.architecture}, {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},  {"n_kv_heads", c.n_kv_heads},     {"d_model", c.d_model},
          {"fingerprint", fingerprint}};
}

nlohmann::json dataset_json(const PairDataset& ds) {
  return {{"path", ds.path}, {"sha256", ds.sha256}, {"examples", ds.examples.size()}, {"skipped", ds.skipped}};
}

nlohmann::json selection_json(const Selection& sel) {
  nlohmann::json j = {{"selection", selection_name(sel.kind)}, {"absolute", sel.absolute}};
  if (sel.node_level) j["level"] = "node";
  switch (sel.kind) {
    case SelectionKind::kNone: break;
    case SelectionKind::kTopN: j["top_n"] = sel.n; break;
    case SelectionKind::kThreshold: j["threshold"] = sel.tau; break;
    case SelectionKind::kGreedy: j["greedy"] = sel.n; break;
    case SelectionKind::kSimplify:
      j["top_n"] = sel.n;
      j["simplify"] = sel.tau;
      break;
  }
  return j;
}

void set_circuit_sections(nlohmann::json& report, const Graph& g, const std::vector<double>& s, const Selection& sel,
                          const SelectedCircuit& c, const std::vector<double>* node_scores) {
  if (static_cast<int64_t>(s.size()) != g.n_edges() || static_cast<int64_t>(c.mask.size()) != g.n_edges())
    throw Error(ErrorCode::kInternal, "report: scores or circuit mask do not match the graph's edge count");
  if (node_scores && static_cast<int64_t>(node_scores->size()) != g.n_upstream())
    throw Error(ErrorCode::kInternal, "report: node scores do not match the graph's upstream node count");
  const bool has = sel.kind != SelectionKind::kNone;
  nlohmann::json edges = nlohmann::json::object();
  for (int64_t e = 0; e < g.n_edges(); ++e) edges[g.edge_name(e)] = {{"score", s[e]}, {"in_graph", c.mask[e] != 0}};

  const std::vector<char> up_in = upstream_in_circuit(g, c.mask);
  const int64_t n_in = count_edges(c.mask);
  nlohmann::json nodes = nlohmann::json::object();
  int64_t nodes_in = 0;
  for (int64_t u = 0; u < g.n_upstream(); ++u) {
    nlohmann::json n = {{"in_graph", up_in[u] != 0}};
    if (node_scores) n["score"] = (*node_scores)[u];
    nodes[g.upstream()[u].name] = std::move(n);
    nodes_in += up_in[u] != 0;
  }
  nodes["logits"] = {{"in_graph", n_in > 0}};
  nodes_in += n_in > 0;

  const auto& sp = g.spec();
  std::vector<double> imp(sp.n_layers * sp.n_heads, 0.0);
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    if (has && !c.mask[e]) continue;
    const UpstreamNode& n = g.upstream()[g.edge_nodes(e).first];
    if (n.kind == UpstreamKind::kHead) imp[n.layer * sp.n_heads + n.head] += std::abs(s[e]);
  }
  double total = 0.0;
  for (double v : imp) total += v;
  nlohmann::json heads = nlohmann::json::array();
  for (int64_t l = 0; l < sp.n_layers; ++l)
    for (int64_t h = 0; h < sp.n_heads; ++h)
      heads.push_back({{"layer", l},
                       {"head", h},
                       {"importance", total > 0 ? imp[l * sp.n_heads + h] / total : 0.0},
                       {"in_circuit", up_in[g.upstream_head(l, h)] != 0}});

  report["edges"] = std::move(edges);
  report["nodes"] = std::move(nodes);
  report["heads"] = std::move(heads);
  if (has) {
    nlohmann::json cj = selection_json(sel);
    cj["selected"] = c.selected;
    cj["pruned"] = c.pruned;
    cj["edges"] = n_in;
    cj["nodes"] = nodes_in;
    report["circuit"] = std::move(cj);
  } else {
    report.erase("circuit");
  }
}

namespace {
const nlohmann::json& need(const nlohmann::json& j, const char* key, const std::string& where, const std::string& path) {
  if (!j.is_object() || !j.contains(key))
    throw Error(ErrorCode::kFormat, path + ": missing key '" + where + (where.empty() ? "" : ".") + key + "'");
  return j.at(key);
}
int64_t need_int(const nlohmann::json& j, const char* key, const std::string& where, const std::string& path) {
  const nlohmann::json& v = need(j, key, where, path);
  if (!v.is_number_integer() || v.get<int64_t>() < 0)
    throw Error(ErrorCode::kFormat, path + ": '" + where + "." + key + "' must be a non-negative integer; found " + v.dump());
  return v.get<int64_t>();
}
}  // namespace

ReportEdges report_edges(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) throw Error(ErrorCode::kFormat, path + ": a report must be a JSON object");
  const nlohmann::json& sv = need(j, "schema_version", "", path);
  if (!sv.is_number_integer() || sv.get<int64_t>() < kReportSchemaVersionMin || sv.get<int64_t>() > kReportSchemaVersion)
    throw Error(ErrorCode::kFormat, path + ": schema_version " + sv.dump() + " is not supported (expected " +
                                       std::to_string(kReportSchemaVersionMin) + " to " +
                                       std::to_string(kReportSchemaVersion) + ")");
  const nlohmann::json& model = need(j, "model", "", path);
  ReportEdges r;
  r.spec.n_layers = need_int(model, "n_layers", "model", path);
  r.spec.n_heads = need_int(model, "n_heads", "model", path);
  r.spec.n_kv_heads = need_int(model, "n_kv_heads", "model", path);
  if (r.spec.n_layers < 1 || r.spec.n_heads < 1 || r.spec.n_kv_heads < 1 || r.spec.n_heads % r.spec.n_kv_heads != 0)
    throw Error(ErrorCode::kFormat, path + ": model dims n_layers/n_heads/n_kv_heads do not describe a graph");
  const nlohmann::json& kv = need(need(j, "method", "", path), "kv_edges", "method", path);
  if (!kv.is_string()) throw Error(ErrorCode::kFormat, path + ": 'method.kv_edges' must be a string");
  try {
    r.spec.kv_edges = parse_kv_edges(kv.get<std::string>());
  } catch (const Error& e) {
    throw Error(ErrorCode::kFormat, path + ": method.kv_edges: " + e.what());
  }
  const Graph g(r.spec);
  const nlohmann::json& edges = need(j, "edges", "", path);
  if (!edges.is_object()) throw Error(ErrorCode::kFormat, path + ": 'edges' must be an object");
  r.scores.assign(g.n_edges(), 0.0);
  r.in_graph.assign(g.n_edges(), 0);
  std::vector<char> seen(g.n_edges(), 0);
  for (const auto& [name, e] : edges.items()) {
    const auto idx = g.find_edge(name);
    if (!idx) throw Error(ErrorCode::kFormat, path + ": edge '" + name + "' is not an edge of the report's graph");
    // A named `where`: GCC 13's -Wdangling-reference flags a returned reference whenever a temporary
    // is passed by reference. The warning was a false positive (the result refers into `e`, not into
    // `where`), but the temporary gave it no way to tell.
    const std::string where = "edges." + name;
    const nlohmann::json& sc = need(e, "score", where, path);
    if (!sc.is_number()) throw Error(ErrorCode::kFormat, path + ": 'edges." + name + ".score' must be a number");
    r.scores[*idx] = sc.get<double>();
    if (e.contains("in_graph")) {
      if (!e["in_graph"].is_boolean())
        throw Error(ErrorCode::kFormat, path + ": 'edges." + name + ".in_graph' must be true or false");
      r.in_graph[*idx] = e["in_graph"].get<bool>();
    }
    seen[*idx] = 1;
  }
  for (int64_t e = 0; e < g.n_edges(); ++e)
    if (!seen[e]) throw Error(ErrorCode::kFormat, path + ": edge '" + g.edge_name(e) + "' of the graph is missing");
  r.has_circuit = j.contains("circuit");
  return r;
}

nlohmann::json read_json_file(const std::string& path, bool allow_comments) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorCode::kIo, "cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  check_json_depth(text, path, allow_comments);
  try {
    return nlohmann::json::parse(text, nullptr, true, allow_comments);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kFormat, path + ": malformed JSON: " + e.what());
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

// Unique across the nodes and containers of a cluster writing to one shared folder (PIDs repeat).
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  char host[64] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return path + ".tmp." + host + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
         std::to_string(std::random_device{}());
}

// fsync before the rename: after a crash of the machine the name holds the old file or the whole
// new one (the folder itself is not synced, so which of the two is not guaranteed).
void sync_and_rename(const std::string& tmp, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    std::remove(tmp.c_str());
    throw Error(ErrorCode::kIo, "cannot flush '" + tmp + "' to disk: " + std::strerror(err));
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(ErrorCode::kIo, "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(err));
  }
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = temp_name_for(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(ErrorCode::kIo, "cannot write '" + tmp + "'");
    f << text;
    f.close();  // a quota or NFS error may only show here
    if (f.fail()) {
      std::remove(tmp.c_str());
      throw Error(ErrorCode::kIo, "write to '" + tmp + "' failed");
    }
  }
  sync_and_rename(tmp, path);
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)), tmp_(temp_name_for(path_)) {
  out_ = std::make_unique<std::ofstream>(tmp_, std::ios::binary | std::ios::trunc);
  if (!*out_) throw Error(ErrorCode::kIo, "cannot write '" + path_ + "' (temporary file '" + tmp_ + "')");
}

AtomicFileWriter::~AtomicFileWriter() {
  if (committed_) return;
  out_.reset();
  std::remove(tmp_.c_str());
}

std::ostream& AtomicFileWriter::stream() { return *out_; }

void AtomicFileWriter::commit() {
  if (committed_) return;
  out_->close();  // flushes; a quota or NFS error may only show here
  if (out_->fail()) throw Error(ErrorCode::kIo, "write to '" + tmp_ + "' failed");
  sync_and_rename(tmp_, path_);
  committed_ = true;
}

}  // namespace circuitscope
