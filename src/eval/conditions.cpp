// Intervention conditions for eval: parsing, random-head controls, head means, hooks.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "circuitscope/report.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/eval.hpp"
#include "circuitscope/model.hpp"

namespace circuitscope {

const char* head_mode_name(HeadMode m) {
  switch (m) {
    case HeadMode::kNone: return "none";
    case HeadMode::kZero: return "zero";
    case HeadMode::kMean: return "mean";
    case HeadMode::kScale: return "scale";
  }
  return "?";
}

namespace {
std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  while (true) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}
double parse_factor(const std::string& s, const std::string& spec) {
  try {
    size_t used = 0;
    const double f = std::stod(s, &used);
    if (used == s.size()) return f;
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::kUsage, "condition '" + spec + "': factor '" + s + "' is not a number");
}
}  // namespace

HeadSets read_head_sets(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  HeadSets hs;
  hs.path = path;
  for (const char* key : {"emergent", "retained", "lost"}) {
    if (!j.contains(key) || !j.at(key).is_array())
      throw Error(ErrorCode::kFormat, "'" + path + "' has no \"" + key + "\" array: expected the JSON of `circuitscope compare --out`");
    auto& v = hs.sets[key];
    for (const auto& e : j.at(key)) {
      if (!e.is_object() || !e.contains("layer") || !e.contains("head") || !e.at("layer").is_number_integer() ||
          !e.at("head").is_number_integer())
        throw Error(ErrorCode::kFormat, "'" + path + "': an entry of \"" + key + "\" lacks integer layer/head: " + e.dump());
      v.emplace_back(e.at("layer").get<int64_t>(), e.at("head").get<int64_t>());
    }
  }
  return hs;
}

std::vector<HeadIntervention> parse_head_list(const std::string& list, const HeadSets* heads_from, double default_factor) {
  std::vector<HeadIntervention> out;
  if (!list.empty() && list[0] == '@') {
    if (!heads_from) throw Error(ErrorCode::kUsage, "head set '" + list + "' needs --heads-from COMPARE.json");
    const auto it = heads_from->sets.find(list.substr(1));
    if (it == heads_from->sets.end()) throw Error(ErrorCode::kUsage, "head set '" + list + "': expected @emergent, @retained or @lost");
    for (const auto& [l, h] : it->second) out.push_back({l, h, default_factor});
    return out;
  }
  for (const auto& entry : split_on(list, ',')) {
    if (entry.empty()) continue;
    HeadIntervention h = parse_head_intervention(entry);
    if (entry.find_first_of("=:") == std::string::npos) h.factor = default_factor;
    out.push_back(h);
  }
  return out;
}

EvalCondition parse_condition(const std::string& spec, const HeadSets* heads_from) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kUsage, "condition '" + spec + "': " + why +
                                        "; expected NAME:none, NAME:zero:HEADS, NAME:mean:HEADS, NAME:scale:L.H=F,... or "
                                        "NAME:scale=F:HEADS (HEADS: L.H,L.H or @emergent|@retained|@lost)");
  };
  const size_t c1 = spec.find(':');
  if (c1 == std::string::npos || c1 == 0) throw bad("no NAME:");
  EvalCondition c;
  c.name = spec.substr(0, c1);
  if (c.name.find_first_of(" \t~/") != std::string::npos) throw bad("the name may not hold spaces, '~' or '/'");
  const std::string rest = spec.substr(c1 + 1);
  const size_t c2 = rest.find(':');
  const std::string mode = rest.substr(0, c2);
  const std::string heads = c2 == std::string::npos ? "" : rest.substr(c2 + 1);
  if (mode == "none") {
    if (!heads.empty()) throw bad("'none' takes no heads");
    return c;
  }
  if (heads.empty()) throw bad("no heads");
  double factor = 0.0;
  if (mode == "zero") c.mode = HeadMode::kZero;
  else if (mode == "mean") c.mode = HeadMode::kMean;
  else if (mode == "scale" || mode.rfind("scale=", 0) == 0) {
    c.mode = HeadMode::kScale;
    factor = mode == "scale" ? std::numeric_limits<double>::quiet_NaN() : parse_factor(mode.substr(6), spec);
  } else {
    throw bad("unknown mode '" + mode + "'");
  }
  if (c.mode != HeadMode::kScale && heads.find('=') != std::string::npos) throw bad("factors apply to scale only");
  c.heads = parse_head_list(heads, heads_from, factor);
  if (c.mode == HeadMode::kScale)
    for (const auto& h : c.heads)
      if (std::isnan(h.factor)) throw bad("head " + std::to_string(h.layer) + "." + std::to_string(h.head) + " has no factor");
  if (c.heads.empty()) throw bad("the head set is empty");
  return c;
}

void validate_condition(const EvalCondition& c, int64_t n_layers, int64_t n_heads) {
  std::set<std::pair<int64_t, int64_t>> seen;
  for (const auto& h : c.heads) {
    if (h.layer < 0 || h.layer >= n_layers || h.head < 0 || h.head >= n_heads)
      throw Error(ErrorCode::kUsage, "condition '" + c.name + "': head " + std::to_string(h.layer) + "." +
                                         std::to_string(h.head) + " is outside the model (" + std::to_string(n_layers) +
                                         " layers x " + std::to_string(n_heads) + " heads)");
    if (!seen.insert({h.layer, h.head}).second)
      throw Error(ErrorCode::kUsage, "condition '" + c.name + "': head " + std::to_string(h.layer) + "." +
                                         std::to_string(h.head) + " is listed twice");
  }
  if (c.mode != HeadMode::kNone && c.heads.empty())
    throw Error(ErrorCode::kUsage, "condition '" + c.name + "': no heads");
}

std::vector<EvalCondition> random_controls(const EvalCondition& chosen, int64_t k, int64_t n_heads, uint64_t seed) {
  std::vector<EvalCondition> out;
  std::map<int64_t, std::vector<const HeadIntervention*>> by_layer;
  for (const auto& h : chosen.heads) by_layer[h.layer].push_back(&h);
  std::mt19937_64 rng(seed ^ stable_hash(chosen.name));
  for (int64_t r = 1; r <= k; ++r) {
    EvalCondition c;
    c.name = chosen.name + "~rand" + std::to_string(r);
    c.mode = chosen.mode;
    c.control_of = chosen.name;
    for (const auto& [layer, hs] : by_layer) {
      std::set<int64_t> taken;
      for (const auto* h : hs) taken.insert(h->head);
      std::vector<int64_t> others, same;
      for (int64_t h = 0; h < n_heads; ++h) (taken.count(h) ? same : others).push_back(h);
      std::shuffle(others.begin(), others.end(), rng);
      std::shuffle(same.begin(), same.end(), rng);
      others.insert(others.end(), same.begin(), same.end());  // chosen heads only when too few others
      for (size_t i = 0; i < hs.size(); ++i) c.heads.push_back({layer, others[i], hs[i]->factor});
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<at::Tensor> mean_head_outputs(HookedTransformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                          const std::vector<int64_t>& layers, int64_t batch_size, int64_t pad_id) {
  c10::AutoGradMode no_grad(false);
  const int64_t L = model.config().n_layers;
  std::vector<at::Tensor> sums(L), out(L);
  int64_t count = 0;
  HookManager& hooks = model.hooks();
  at::Tensor batch_mask;  // [B,T] of the batch being run
  std::vector<HookHandle> handles;
  for (int64_t l : layers) {
    handles.push_back(hooks.add(std::vector<int>{HookManager::point_id(l, HookKind::kZ)},
                                [&sums, &batch_mask, l](const at::Tensor& z, const HookContext&) {
                                  // z [B,T,H,Dh]; real tokens only
                                  const at::Tensor m = batch_mask.to(z.device(), at::kFloat).unsqueeze(-1).unsqueeze(-1);
                                  const at::Tensor s = (z.to(at::kFloat) * m).sum(std::vector<int64_t>{0, 1}).to(at::kCPU);  // [H,Dh]
                                  sums[l] = sums[l].defined() ? sums[l] + s : s;
                                  return z;
                                }));
  }
  const int64_t bs = std::max<int64_t>(1, batch_size);
  for (size_t start = 0; start < prompts.size(); start += bs) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(bs));
    int64_t T = 0;
    for (size_t i = start; i < end; ++i) T = std::max<int64_t>(T, prompts[i].size());
    const int64_t B = static_cast<int64_t>(end - start);
    at::Tensor ids = at::full({B, T}, pad_id, at::kLong);
    batch_mask = at::zeros({B, T}, at::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = prompts[start + b];
      const int64_t n = static_cast<int64_t>(p.size());
      for (int64_t t = 0; t < n; ++t) ids[b][T - n + t] = p[t];
      batch_mask[b].narrow(0, T - n, n).fill_(1);
      count += n;
    }
    model.forward(ids.to(model.device()), batch_mask.to(model.device()));
  }
  for (int64_t l : layers)
    if (sums[l].defined()) out[l] = sums[l] / static_cast<double>(std::max<int64_t>(1, count));
  return out;
}

std::vector<HookHandle> apply_condition(HookManager& hooks, const EvalCondition& c, const std::vector<at::Tensor>& means,
                                        int64_t n_heads) {
  std::vector<HookHandle> out;
  if (c.mode == HeadMode::kNone) return out;
  if (c.mode == HeadMode::kMean) {
    // Per layer z * keep + fill: keep 0 and fill = the head's mean for the replaced heads, 1 and 0
    // elsewhere; exact replacement in one pass over z.
    struct MeanFill {
      at::Tensor keep, fill;            // [1,1,H,1] and [1,1,H,Dh], float32 on the CPU
      at::Tensor keep_cast, fill_cast;  // on z's device and dtype
    };
    std::map<int64_t, std::shared_ptr<MeanFill>> layers;
    for (const auto& h : c.heads) {
      if (h.layer < 0 || h.layer >= static_cast<int64_t>(means.size()) || !means[h.layer].defined())
        throw Error(ErrorCode::kInternal, "condition '" + c.name + "': no mean output for layer " + std::to_string(h.layer));
      if (h.head < 0 || h.head >= n_heads) throw Error(ErrorCode::kUsage, "condition '" + c.name + "': head out of range");
      auto& st = layers[h.layer];
      if (!st) {
        st = std::make_shared<MeanFill>();
        st->keep = at::ones({1, 1, n_heads, 1}, at::kFloat);
        st->fill = at::zeros({1, 1, n_heads, means[h.layer].size(1)}, at::kFloat);
      }
      st->keep[0][0][h.head][0] = 0.0;
      st->fill[0][0][h.head].copy_(means[h.layer][h.head]);
    }
    for (const auto& [layer, st] : layers)
      out.push_back(hooks.add(std::vector<int>{HookManager::point_id(layer, HookKind::kZ)},
                              [st = st](const at::Tensor& z, const HookContext&) {
                                if (!st->keep_cast.defined() || st->keep_cast.device() != z.device() ||
                                    st->keep_cast.scalar_type() != z.scalar_type()) {
                                  st->keep_cast = st->keep.to(z.device(), z.scalar_type());
                                  st->fill_cast = st->fill.to(z.device(), z.scalar_type());
                                }
                                return at::addcmul(st->fill_cast, z, st->keep_cast);
                              }));
    return out;
  }
  std::vector<HeadIntervention> edits = c.heads;
  if (c.mode == HeadMode::kZero)
    for (auto& e : edits) e.factor = 0.0;
  return apply_head_interventions(hooks, edits, n_heads);
}

}  // namespace circuitscope
