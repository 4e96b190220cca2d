#include "progress.hpp"

#include <spdlog/spdlog.h>

namespace circuitscope::app {

std::string fmt_secs(double s) {
  if (s < 10) return fmt::format("{:.1f} s", s);
  if (s < 90) return std::to_string(static_cast<int64_t>(s + 0.5)) + " s";
  const int64_t m = static_cast<int64_t>(s / 60);
  return std::to_string(m) + " min " + std::to_string(static_cast<int64_t>(s - 60 * m)) + " s";
}

EtaLog::EtaLog(std::string label, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), t0_(std::chrono::steady_clock::now()), last_(t0_) {}

void EtaLog::operator()(size_t done, size_t total) {
  const auto now = std::chrono::steady_clock::now();
  if (done < total && now - last_ < std::chrono::seconds(5)) return;
  last_ = now;
  const double el = std::chrono::duration<double>(now - t0_).count();
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(total - done) : 0.0;
  spdlog::info("{}: {}/{} {} | {} elapsed, ETA {}", label_, done, total, unit_, fmt_secs(el), fmt_secs(eta));
}

}  // namespace circuitscope::app
