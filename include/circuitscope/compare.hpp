// Comparing the head circuits of two attribute reports (a base model and its post-trained
// version): emergent, retained and lost heads, and each head's importance effect
// E = (I_post - I_base) / (I_post + I_base + 1e-6).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace circuitscope {

// The `heads` table of one report, dense: index layer * n_heads + head. Heads the array leaves
// out count as importance 0, not in the circuit.
struct ReportHeads {
  std::string path;         // the report file (for messages)
  std::string model_path;   // model.path of the report ("" if absent)
  std::string fingerprint;  // model.fingerprint ("" if absent)
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  std::vector<double> importance;
  std::vector<bool> in_circuit;
};

// From a parsed report; `origin` names it in errors. n_layers/n_heads come from "model" (or, when
// absent there, from the largest layer/head in "heads"). Throws Error(kFormat) naming the origin
// when "heads" is missing (run attribute with a circuit selection) or malformed.
ReportHeads report_heads_from_json(const nlohmann::json& report, const std::string& origin);
// Reads and parses the file (Error(kIo) / Error(kFormat)).
ReportHeads read_report_heads(const std::string& path);

enum class HeadChange { kNeither, kEmergent, kRetained, kLost };
const char* head_change_name(HeadChange c);  // "neither", "emergent", "retained", "lost"

double importance_effect(double base, double post);

struct HeadComparison {
  int64_t layer = 0, head = 0;
  double base = 0, post = 0;  // importance
  bool in_base = false, in_post = false;
  double effect = 0;          // E
  HeadChange change = HeadChange::kNeither;
};

struct CircuitComparison {
  ReportHeads base, post;
  int64_t n_layers = 0, n_heads = 0;
  std::vector<HeadComparison> heads;  // every head, layer-major
  // Indices into `heads`, each list ordered by decreasing importance (post for emergent and
  // retained, base for lost).
  std::vector<size_t> emergent, retained, lost;
};

// Throws Error(kInput) naming both files when their n_layers/n_heads differ.
CircuitComparison compare_circuits(const ReportHeads& base, const ReportHeads& post);

// schema_version, tool, base/post {path, model_path, fingerprint, circuit_heads}, n_layers, n_heads,
// counts, emergent/retained/lost [{layer, head, importance_base, importance_post, effect}], heads
// (every head with importance_base, importance_post, in_base, in_post, effect, change).
nlohmann::ordered_json comparison_to_json(const CircuitComparison& c);

// The readable form: counts, a layer x head grid of markers (+ emergent, = retained, - lost,
// . neither), a grid of E (blank where both importances are 0), and the lists.
std::string format_comparison(const CircuitComparison& c);

}  // namespace circuitscope
