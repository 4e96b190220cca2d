#include "circuitscope/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/runtime.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "core/enum_names.hpp"

namespace circuitscope {

namespace {
constexpr detail::NameTable<AttributionMethod, 4> kMethodNames = {
    {{AttributionMethod::kEap, "eap"},
     {AttributionMethod::kEapIgInputs, "eap-ig-inputs"},
     {AttributionMethod::kEapIgActivations, "eap-ig-activations"},
     {AttributionMethod::kCleanCorrupted, "clean-corrupted"}}};
}  // namespace

AttributionMethod parse_attribution_method(const std::string& s) { return detail::parse_name(kMethodNames, s, "method"); }
const char* attribution_method_name(AttributionMethod m) { return detail::name_of(kMethodNames, m); }

bool is_integrated_gradients(AttributionMethod m) {
  return m == AttributionMethod::kEapIgInputs || m == AttributionMethod::kEapIgActivations;
}

void AttributeSpec::validate() const {
  if (is_integrated_gradients(method) && ig_steps < 1)
    throw Error(ErrorCode::kUsage, std::string("ig steps (--ig-steps) must be at least 1 for ") +
                                       attribution_method_name(method) + "; found " + std::to_string(ig_steps));
  if (batch_size < 1)
    throw Error(ErrorCode::kUsage, "batch size must be positive; found " + std::to_string(batch_size));
  for (int64_t n : faithfulness.sizes)
    if (n < 0) throw Error(ErrorCode::kUsage, "faithfulness sizes must be >= 0; found " + std::to_string(n));
}

EapOptions AttributeSpec::eap_options() const {
  EapOptions eo;
  eo.metric = metric;
  eo.loss = loss;
  eo.ig_steps = is_integrated_gradients(method) ? ig_steps : 0;
  eo.ig_mode = method == AttributionMethod::kEapIgActivations ? IgMode::kActivations : IgMode::kInputs;
  eo.clean_corrupted = method == AttributionMethod::kCleanCorrupted;
  return eo;
}

std::vector<double> edge_scores_from_matrix(const Graph& graph, const at::Tensor& matrix) {
  if (matrix.dim() != 2 || matrix.size(0) != graph.n_upstream() || matrix.size(1) != graph.n_downstream())
    throw Error(ErrorCode::kInternal, "edge scores: matrix has shape " + shape_str(matrix.sizes()) + "; expected [" +
                                          std::to_string(graph.n_upstream()) + "," +
                                          std::to_string(graph.n_downstream()) + "]");
  const at::Tensor m = matrix.to(at::kCPU, at::kFloat).contiguous();
  auto acc = m.accessor<float, 2>();
  std::vector<double> out(graph.n_edges());
  for (int64_t e = 0; e < graph.n_edges(); ++e) {
    const auto [u, d] = graph.edge_nodes(e);
    out[e] = acc[u][d];
  }
  return out;
}

namespace {

// The first hook point whose output has a NaN or Inf in a plain forward of `ids`; "" if none.
std::string first_non_finite_hook(HookedTransformer& model, const std::vector<int64_t>& ids) {
  std::string first;
  auto check = [&first](const at::Tensor& x, const HookContext& ctx) {
    if (first.empty() && x.is_floating_point() && !at::isfinite(x).all().item<bool>()) first = ctx.name;
    return x;
  };
  // The points a plain forward computes anyway, in forward order (not "*": the per-head input and
  // result points would switch the layers into their costlier split mode).
  std::vector<HookHandle> handles;
  for (const char* p : {"hook_embed", "blocks.*.hook_resid_pre", "blocks.*.attn.hook_q", "blocks.*.attn.hook_k",
                        "blocks.*.attn.hook_v", "blocks.*.attn.hook_z", "blocks.*.hook_attn_out",
                        "blocks.*.hook_resid_mid", "blocks.*.mlp.hook_post", "blocks.*.hook_mlp_out",
                        "blocks.*.hook_resid_post"})
    handles.push_back(model.hooks().add(p, check));
  c10::AutoGradMode no_grad(false);
  const at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0).to(model.device());  // [1, pos]
  const at::Tensor logits = model.forward(input);
  if (first.empty() && !at::isfinite(logits).all().item<bool>()) first = "logits";
  return first;
}

// Scores are sums over every example: one NaN anywhere makes them meaningless. Only when that
// happened, a diagnostic forward names where the activations first went non-finite.
void check_finite_scores(HookedTransformer& model, const std::vector<PairExample>& examples, const EdgeScores& s) {
  int64_t bad = 0;
  for (double v : s.scores) bad += std::isfinite(v) ? 0 : 1;
  if (bad == 0 && std::isfinite(s.metric_clean) && std::isfinite(s.metric_corrupted)) return;
  std::string where;
  constexpr size_t kMaxDiagnosed = 16;  // when only the gradients overflow, every forward is clean
  for (size_t i = 0; i < examples.size() && i < kMaxDiagnosed; ++i) {
    const PairExample& ex = examples[i];
    for (const auto* ids : {&ex.clean_ids, &ex.corrupted_ids}) {
      const std::string hook = first_non_finite_hook(model, *ids);
      if (!hook.empty()) {
        where = "; the first non-finite activation is '" + hook + "' in the " +
                (ids == &ex.clean_ids ? "clean" : "corrupted") + " run of line " + std::to_string(ex.line);
        break;
      }
    }
    if (!where.empty()) break;
  }
  report_non_finite("attribution produced NaN or Inf: " + std::to_string(bad) + " edge score(s), metric clean " +
                    std::to_string(s.metric_clean) + ", corrupted " + std::to_string(s.metric_corrupted) +
                    (where.empty() ? "; no activation of a plain forward of the first " + std::to_string(std::min(examples.size(), kMaxDiagnosed)) +
                         " pair(s) is non-finite (the gradients overflowed?)"
                   : where));
}

}  // namespace

EdgeScores score_edges(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                       const AttributeSpec& spec, const std::function<void(size_t, size_t)>& on_batch) {
  spec.validate();
  const c10::Device dev = model.device();
  double warmup = 0.0;
  if (dev.is_cuda() && !examples.empty()) {
    warmup = warm_up_attribution(model, graph, examples.front(), spec);
    spdlog::debug("warm-up (one pair, not timed below): {:.2f} s", warmup);
  }
  if (dev.is_cuda()) reset_peak_device_memory(dev);
  const auto t0 = std::chrono::steady_clock::now();
  const EapResult r = eap_scores(model, graph, examples, spec.eap_options(), spec.batch_size, on_batch);
  EdgeScores out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.warmup_seconds = warmup;
  out.peak_memory_bytes = dev.is_cuda() ? peak_device_memory_bytes(dev) : peak_resident_bytes();
  spdlog::debug("attribution passes: {:.2f} s, {:.4f} s per example; peak {} {:.1f} MiB", out.seconds,
                out.seconds / static_cast<double>(examples.size()),
                dev.is_cuda() ? "GPU memory (CUDA caching allocator, allocated)" : "resident memory of the process",
                out.peak_memory_bytes / (1024.0 * 1024.0));
  out.scores = edge_scores_from_matrix(graph, r.scores);
  out.metric_clean = r.metric_clean;
  out.metric_corrupted = r.metric_corrupted;
  out.n_examples = r.n_examples;
  check_finite_scores(model, examples, out);
  return out;
}

double warm_up_attribution(HookedTransformer& model, const Graph& graph, const PairExample& example,
                           const AttributeSpec& spec) {
  spec.validate();
  const auto t0 = std::chrono::steady_clock::now();
  // eap_scores hands back host values, so the device work is finished when it returns.
  (void)eap_scores(model, graph, {example}, spec.eap_options(), 1, {});
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

FaithfulnessResult measure_faithfulness(HookedTransformer& model, const Graph& graph,
                                        const std::vector<PairExample>& examples,
                                        const std::vector<double>& edge_scores, const EdgeMask* circuit,
                                        const FaithfulnessSpec& spec, MetricKind metric, bool loss,
                                        int64_t batch_size) {
  FaithfulnessResult out;
  out.intervention = spec.intervention;
  out.mean_source = spec.mean_source;
  std::vector<EdgeMask> masks;
  if (circuit) masks.push_back(*circuit);
  for (int64_t n : spec.sizes) {
    Selection s;
    s.kind = SelectionKind::kTopN;
    s.n = n;
    s.absolute = spec.absolute;
    masks.push_back(select_circuit(graph, edge_scores, s).mask);
  }
  if (masks.empty()) return out;
  const std::vector<Faithfulness> f =
      faithfulness(model, graph, examples, masks, metric, loss, batch_size, spec.intervention, spec.mean_source);
  out.measured = true;
  out.clean = f[0].clean;
  out.corrupted = f[0].corrupted;
  size_t i = 0;
  if (circuit) {
    out.circuit = f[0];
    spdlog::info("circuit: {} edges; faithfulness {:.4f} (circuit {:.4f}, clean {:.4f}, corrupted {:.4f})",
                 count_edges(*circuit), f[0].normalized, f[0].circuit, f[0].clean, f[0].corrupted);
    i = 1;
  }
  for (size_t k = 0; k < spec.sizes.size(); ++k, ++i) {
    const FaithfulnessPoint p{spec.sizes[k], count_edges(masks[i]), f[i].circuit, f[i].normalized};
    out.curve.push_back(p);
    spdlog::info("sizes: top {} -> {} edges after pruning, faithfulness {:.4f}", p.top_n, p.edges, p.normalized);
  }
  return out;
}

nlohmann::json faithfulness_json(const FaithfulnessResult& f) {
  nlohmann::json j = {{"intervention", intervention_name(f.intervention)}};
  if (f.intervention == Intervention::kMean || f.intervention == Intervention::kMeanPositional)
    j["mean_source"] = mean_source_name(f.mean_source);
  if (!f.measured) return j;
  j["clean"] = f.clean;
  j["corrupted"] = f.corrupted;
  if (f.circuit) {
    j["circuit"] = f.circuit->circuit;
    j["normalized"] = f.circuit->normalized;
  }
  if (!f.curve.empty()) {
    nlohmann::json c = nlohmann::json::array();
    for (const FaithfulnessPoint& p : f.curve)
      c.push_back({{"top_n", p.top_n}, {"edges", p.edges}, {"circuit", p.circuit}, {"normalized", p.normalized}});
    j["sizes"] = std::move(c);
  }
  return j;
}

CircuitResult select_and_measure(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                                 const std::vector<double>& edge_scores, const AttributeSpec& spec) {
  spec.validate();
  const Selection& sel = spec.selection;
  CircuitResult out;
  out.circuit = select_circuit(graph, edge_scores, sel);
  if (sel.node_level) out.node_scores = node_scores_from_edges(graph, edge_scores);
  const bool has_circuit = sel.kind != SelectionKind::kNone;
  if (has_circuit)
    spdlog::info("circuit ({}): {} edges selected, {} pruned, {} kept", selection_name(sel.kind), out.circuit.selected,
                 out.circuit.pruned, out.circuit.selected - out.circuit.pruned);
  if (has_circuit || !spec.faithfulness.sizes.empty())
    out.faithfulness = measure_faithfulness(model, graph, examples, edge_scores, has_circuit ? &out.circuit.mask : nullptr,
                                            spec.faithfulness, spec.metric, spec.loss, spec.batch_size);
  return out;
}

AttributeResult attribute(HookedTransformer& model, const std::vector<PairExample>& examples, const AttributeSpec& spec,
                          const std::function<void(size_t, size_t)>& on_batch) {
  spec.validate();
  const ModelConfig& c = model.config();
  AttributeResult r;
  r.graph = {c.n_layers, c.n_heads, c.n_kv_heads, spec.kv_edges};
  const Graph graph(r.graph);
  r.scores = score_edges(model, graph, examples, spec, on_batch);
  r.circuit = select_and_measure(model, graph, examples, r.scores.scores, spec);
  return r;
}

nlohmann::json attribute_report(const AttributeResult& r, const AttributeSpec& spec, const HookedTransformer& model,
                                const std::string& model_path, const PairDataset& dataset) {
  const Graph graph(r.graph);
  nlohmann::json j;
  j["schema_version"] = kReportSchemaVersion;
  j["tool"] = tool_name();
  j["model"] = model_json(model_path, model.config(), model.fingerprint());
  j["dataset"] = dataset_json(dataset);
  j["method"] = {{"name", attribution_method_name(spec.method)},
                 {"ig_steps", spec.eap_options().ig_steps},
                 {"metric", metric_name(spec.metric)},
                 {"loss", spec.loss},
                 {"kv_edges", kv_edges_name(spec.kv_edges)},
                 {"dtype", compute_dtype_name(model.dtype())},
                 {"device", model.device().str()},
                 {"batch_size", spec.batch_size}};
  j["baselines"] = {{"clean", r.scores.metric_clean}, {"corrupted", r.scores.metric_corrupted}};
  set_circuit_sections(j, graph, r.scores.scores, spec.selection, r.circuit.circuit,
                       spec.selection.node_level ? &r.circuit.node_scores : nullptr);
  if (r.circuit.faithfulness) j["faithfulness"] = faithfulness_json(*r.circuit.faithfulness);
  return j;
}

ReportMetric report_metric(const nlohmann::json& report, const std::string& path) {
  const auto* method = report.is_object() && report.contains("method") ? &report["method"] : nullptr;
  if (!method || !method->is_object()) throw Error(ErrorCode::kFormat, path + ": missing key 'method'");
  if (!method->contains("metric") || !(*method)["metric"].is_string())
    throw Error(ErrorCode::kFormat, path + ": 'method.metric' must be a string");
  if (!method->contains("loss") || !(*method)["loss"].is_boolean())
    throw Error(ErrorCode::kFormat, path + ": 'method.loss' must be true or false");
  ReportMetric out;
  try {
    out.metric = parse_metric((*method)["metric"].get<std::string>());
  } catch (const Error& e) {
    throw Error(ErrorCode::kFormat, path + ": method.metric: " + e.what());
  }
  out.loss = (*method)["loss"].get<bool>();
  return out;
}

void evaluate_report(HookedTransformer& model, const std::string& model_path, nlohmann::json& report,
                     const std::string& path, const ReportEdges& re, const ReportMetric& rm, const PairDataset& dataset,
                     const EvaluateSpec& spec) {
  const ModelConfig& c = model.config();
  if (c.n_layers != re.spec.n_layers || c.n_heads != re.spec.n_heads || c.n_kv_heads != re.spec.n_kv_heads)
    throw Error(ErrorCode::kInput, path + ": the report's graph (n_layers " + std::to_string(re.spec.n_layers) +
                                       ", n_heads " + std::to_string(re.spec.n_heads) + ", n_kv_heads " +
                                       std::to_string(re.spec.n_kv_heads) + ") does not fit the model in " + model_path);
  const std::string fp = report.contains("model") ? report["model"].value("fingerprint", "") : "";
  if (fp != model.fingerprint())
    spdlog::warn("{}: the report was made on a checkpoint with another fingerprint ({} vs {})", path, fp,
                 model.fingerprint());
  const Graph graph(re.spec);
  EdgeMask circuit = re.in_graph;
  bool has_circuit = re.has_circuit;
  if (spec.selection.kind != SelectionKind::kNone) {  // a new selection from the report's scores
    const SelectedCircuit sc = select_circuit(graph, re.scores, spec.selection);
    const std::vector<double> node_scores = node_scores_from_edges(graph, re.scores);
    set_circuit_sections(report, graph, re.scores, spec.selection, sc, spec.selection.node_level ? &node_scores : nullptr);
    circuit = sc.mask;
    has_circuit = true;
  } else if (has_circuit) {
    const int64_t removed = prune(graph, circuit);
    if (removed > 0) spdlog::warn("{}: {} circuit edge(s) not on an input-to-logits path are left out", path, removed);
  }
  if (!has_circuit && spec.faithfulness.sizes.empty())
    throw Error(ErrorCode::kUsage, path + " has no circuit: give a selection (--top-n, --threshold, --greedy, "
                                          "--simplify, --selection) or --sizes");
  const FaithfulnessResult f = measure_faithfulness(model, graph, dataset.examples, re.scores,
                                                    has_circuit ? &circuit : nullptr, spec.faithfulness, rm.metric,
                                                    rm.loss, spec.batch_size);
  nlohmann::json fj = faithfulness_json(f);
  fj["dataset"] = dataset_json(dataset);
  report["faithfulness"] = std::move(fj);
  report["schema_version"] = kReportSchemaVersion;  // the faithfulness block is in this version's layout
}

}  // namespace circuitscope
