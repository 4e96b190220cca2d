#include "progress.hpp"

#include <spdlog/spdlog.h>

namespace circuitscope::app {

EtaLog::EtaLog(std::string label, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), t0_(std::chrono::steady_clock::now()), last_(t0_) {}

void EtaLog::operator()(size_t done, size_t total) {
  const auto now = std::chrono::steady_clock::now();
  if (done < total && now - last_ < std::chrono::seconds(5)) return;
  last_ = now;
  const double el = std::chrono::duration<double>(now - t0_).count();
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(total - done) : 0.0;
  spdlog::info("{}: {}/{} {} | {} elapsed, ETA {}", label_, done, total, unit_, format_duration(el), format_duration(eta));
}

}  // namespace circuitscope::app
