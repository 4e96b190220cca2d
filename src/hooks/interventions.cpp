#include <ATen/ATen.h>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"

#include <map>
#include <memory>

namespace circuitscope {

HeadIntervention parse_head_intervention(const std::string& spec) {
  HeadIntervention h;
  const auto bad = [&] {
    return Error(ErrorCode::kUsage, "head intervention '" + spec + "': expected LAYER.HEAD (zero) or LAYER.HEAD=FACTOR");
  };
  std::string lh = spec, factor;
  const auto eq = spec.find_first_of("=:");
  if (eq != std::string::npos) {
    lh = spec.substr(0, eq);
    factor = spec.substr(eq + 1);
  }
  const auto dot = lh.find('.');
  if (dot == std::string::npos) throw bad();
  try {
    size_t u1 = 0, u2 = 0;
    h.layer = std::stoll(lh.substr(0, dot), &u1);
    h.head = std::stoll(lh.substr(dot + 1), &u2);
    if (u1 != dot || u2 != lh.size() - dot - 1) throw bad();
    if (eq != std::string::npos && factor.empty()) throw bad();
    if (!factor.empty()) {
      size_t u3 = 0;
      h.factor = std::stod(factor, &u3);
      if (u3 != factor.size()) throw bad();
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw bad();
  }
  return h;
}

std::vector<HookHandle> apply_head_interventions(HookManager& hooks, const std::vector<HeadIntervention>& edits,
                                                 int64_t n_heads) {
  // One multiply per layer by a per-head factor vector: a hook per head (a mask built and applied
  // on every call) cost 8% of a toy-sized decode step at batch 1 for 8 heads.
  std::map<int64_t, std::vector<double>> factors;  // layer -> [n_heads]; repeated heads multiply
  for (const auto& e : edits) {
    if (e.layer < 0 || e.layer >= hooks.n_layers())
      throw Error(ErrorCode::kUsage, "head intervention on layer " + std::to_string(e.layer) + ": the model has " +
                                         std::to_string(hooks.n_layers()) + " layers");
    if (e.head < 0 || e.head >= n_heads)
      throw Error(ErrorCode::kUsage, "head intervention on head " + std::to_string(e.head) + ": the model has " +
                                         std::to_string(n_heads) + " heads per layer");
    auto& f = factors[e.layer];
    if (f.empty()) f.assign(n_heads, 1.0);
    f[e.head] *= e.factor;
  }
  struct Factors {
    at::Tensor cpu;  // [1,1,H,1] float64, broadcast over [B,T,H,Dh]
    at::Tensor cast; // the same on the activations' device and dtype, made on first use
  };
  std::vector<HookHandle> out;
  for (const auto& [layer, f] : factors) {
    auto state = std::make_shared<Factors>();
    state->cpu = at::tensor(f, at::kDouble).view({1, 1, n_heads, 1});
    out.push_back(hooks.add(std::vector<int>{HookManager::point_id(layer, HookKind::kZ)},
                            [state](const at::Tensor& z, const HookContext&) {
                              if (!state->cast.defined() || state->cast.device() != z.device() ||
                                  state->cast.scalar_type() != z.scalar_type())
                                state->cast = state->cpu.to(z.device(), z.scalar_type());
                              return z * state->cast;
                            }));
  }
  return out;
}

}  // namespace circuitscope
