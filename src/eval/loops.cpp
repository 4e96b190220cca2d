// Loop detection on generated tokens (eval's "loop" flag).
#include "circuitscope/eval.hpp"

namespace circuitscope {

LoopInfo detect_loop(const std::vector<int64_t>& t, bool cut, const LoopSpec& spec) {
  LoopInfo best;
  const int64_t n = static_cast<int64_t>(t.size());
  int64_t most = 1, most_p = 0;
  for (int64_t p = 1; p <= spec.max_period && 2 * p <= n; ++p) {
    // Copies of the final p tokens, counted backwards while each earlier block equals it.
    int64_t r = 1;
    while ((r + 1) * p <= n) {
      bool same = true;
      for (int64_t i = 0; i < p && same; ++i) same = t[n - (r + 1) * p + i] == t[n - p + i];
      if (!same) break;
      ++r;
    }
    const bool loops = r * p >= spec.min_span && (r >= spec.min_repeats || (cut && r >= spec.min_cut_repeats));
    if (loops) {
      best.looping = true;
      best.period = p;
      best.repeats = r;
      return best;
    }
    if (r > most) most = r, most_p = p;
  }
  best.period = most_p;
  best.repeats = most_p ? most : (n > 0 ? 1 : 0);
  return best;
}

}  // namespace circuitscope
