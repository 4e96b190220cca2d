#include <ATen/ATen.h>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"

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
  std::vector<HookHandle> out;
  for (const auto& e : edits) {
    if (e.layer < 0 || e.layer >= hooks.n_layers())
      throw Error(ErrorCode::kUsage, "head intervention on layer " + std::to_string(e.layer) + ": the model has " +
                                         std::to_string(hooks.n_layers()) + " layers");
    if (e.head < 0 || e.head >= n_heads)
      throw Error(ErrorCode::kUsage, "head intervention on head " + std::to_string(e.head) + ": the model has " +
                                         std::to_string(n_heads) + " heads per layer");
    out.push_back(hooks.add(std::vector<int>{HookManager::point_id(e.layer, HookKind::kZ)}, scale_hook(e.factor, e.head)));
  }
  return out;
}

}  // namespace circuitscope
