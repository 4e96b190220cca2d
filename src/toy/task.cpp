// The toy task as chat text, and the held-out split.
#include <cctype>
#include <set>

#include "circuitscope/error.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope::toy {

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t text_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a, then a mixer so the low bits are well spread
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return splitmix64(h);
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}
}  // namespace

bool is_eval_problem(const ArithProblem& p, double eval_fraction) {
  if (eval_fraction <= 0) return false;
  const double u = static_cast<double>(text_hash("circuitscope-toy-split:" + p.text()) >> 11) * 0x1.0p-53;
  return u < eval_fraction;
}

ArithProblem sample_train_problem(const ArithSpec& spec, double eval_fraction, std::mt19937_64& rng) {
  if (eval_fraction >= 1.0) throw Error(ErrorCode::kUsage, "eval fraction must be below 1 to leave training problems");
  for (int attempt = 0; attempt < 100000; ++attempt) {
    ArithProblem p = sample_problem(spec, rng);
    if (!is_eval_problem(p, eval_fraction)) return p;
  }
  throw Error(ErrorCode::kUsage, "the arithmetic spec has (almost) no training problems outside the eval split");
}

std::vector<ArithProblem> sample_eval_problems(const ArithSpec& spec, double eval_fraction, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(splitmix64(seed ^ 0x6576616c5f736574ULL));
  std::vector<ArithProblem> out;
  std::set<std::string> seen;
  // Stop after many misses: small specs have fewer distinct evaluation problems than asked.
  for (int64_t misses = 0; static_cast<int64_t>(out.size()) < n && misses < 200000;) {
    ArithProblem p = sample_problem(spec, rng);
    if (is_eval_problem(p, eval_fraction) && seen.insert(p.text()).second) {
      out.push_back(std::move(p));
    } else {
      ++misses;
    }
  }
  return out;
}

std::string user_message(const ArithProblem& p) { return p.text() + "="; }

std::string target_completion(const ArithProblem& p, bool think) {
  const std::string answer = std::to_string(p.answer()) + kImEnd;
  if (!think) return answer;
  const std::string trace = p.trace();
  return (trace.empty() ? "" : trace + "\n") + kThinkClose + "\n\n" + answer;
}

std::optional<int64_t> final_answer(const std::string& completion, bool think) {
  std::string s = completion;
  const auto close = s.rfind(kThinkClose);
  if (close != std::string::npos) {
    s = s.substr(close + std::string(kThinkClose).size());
  } else if (think) {
    return std::nullopt;
  }
  const auto end = s.find(kImEnd);
  if (end != std::string::npos) s = s.substr(0, end);
  s = trim(s);
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i == s.size() || s.size() - i > 15) return std::nullopt;
  for (size_t k = i; k < s.size(); ++k)
    if (!std::isdigit(static_cast<unsigned char>(s[k]))) return std::nullopt;
  return std::stoll(s);
}

}  // namespace circuitscope::toy
