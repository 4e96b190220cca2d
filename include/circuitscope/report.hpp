// Circuit reports (JSON): the sections that `attribute` and `evaluate` write and `compare`, `graph`
// and `evaluate` read. The layout is fixed by schemas/report.schema.json (schema_version 2):
//   edges {name: {score, in_graph}}, nodes {name: {in_graph[, score]}},
//   heads [{layer, head, importance, in_circuit}], circuit {...}, faithfulness {...}.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "circuitscope/circuit.hpp"
#include "circuitscope/graph.hpp"

namespace circuitscope {

struct ModelConfig;
struct PairDataset;

// The versions of the JSON files circuitscope writes, each raised when its layout changes.
//  attribute/evaluate reports: 2 renamed faithfulness.sweep to faithfulness.sizes (--sizes).
constexpr int kReportSchemaVersion = 2;
// Readers take reports from kReportSchemaVersionMin on (edges, model and method are unchanged).
constexpr int kReportSchemaVersionMin = 1;
constexpr int kPatchSchemaVersion = 1;    // `patch`
constexpr int kCompareSchemaVersion = 1;  // `compare`

// The blocks every report starts with.
std::string tool_name();  // "circuitscope VERSION"
//  model: path, architecture, n_layers, n_heads, n_kv_heads, d_model, fingerprint.
nlohmann::json model_json(const std::string& path, const ModelConfig& config, const std::string& fingerprint);
//  dataset: path, sha256, examples, skipped.
nlohmann::json dataset_json(const PairDataset& dataset);

// Writes edges, nodes, heads and (when sel.kind != kNone) circuit into `report`.
//  edges: every graph edge with its score; in_graph = in the (pruned) circuit, false without one.
//  nodes: input, every head a{l}.h{h}, every MLP m{l}, and logits; in_graph per upstream_in_circuit,
//         logits whenever the circuit has an edge. `node_scores` (optional, same order as the graph's
//         upstream nodes) adds a score to each of those nodes.
//  heads: every (layer, head); importance = sum of |score| over circuit edges leaving the head,
//         normalized to sum 1 over heads (without a circuit: over all edges); in_circuit = the head
//         node is in the circuit.
void set_circuit_sections(nlohmann::json& report, const Graph& g, const std::vector<double>& edge_scores,
                          const Selection& sel, const SelectedCircuit& circuit,
                          const std::vector<double>* node_scores = nullptr);

// The `circuit` block's selection fields (selection, absolute, top_n / threshold / greedy / simplify).
nlohmann::json selection_json(const Selection& sel);

// What evaluate and graph need from a report: the graph it was scored on and its edges.
struct ReportEdges {
  GraphSpec spec;
  std::vector<double> scores;  // by edge index
  EdgeMask in_graph;           // all 0 when the report has no circuit
  bool has_circuit = false;
};
// Throws Error(kInput) naming the file and the key when something is missing or does not fit.
ReportEdges report_edges(const nlohmann::json& report, const std::string& path);

nlohmann::json read_json_file(const std::string& path, bool allow_comments = false);
// The bytes of a file; Error(kIo) naming it when it cannot be read.
std::string read_text_file(const std::string& path);
// Temporary file in the same folder, flushed to disk, then renamed over `path`: readers (and a
// process killed mid-write) find the old file or the new one, never half of one. A killed writer
// may leave its PATH.tmp.* file behind.
void write_file_atomically(const std::string& path, const std::string& text);

// The same for output written as it is produced (JSONL streams): write to stream(), then
// commit(). Destroyed without commit() (an error, an exception), the temporary file is removed
// and `path` is left as it was.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  std::ostream& stream();
  void commit();

 private:
  std::string path_, tmp_;
  std::unique_ptr<std::ofstream> out_;
  bool committed_ = false;
};

}  // namespace circuitscope
