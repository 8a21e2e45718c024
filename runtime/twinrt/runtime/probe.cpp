#include "twinrt/runtime/probe.hpp"

namespace twinrt::runtime {

namespace {
constexpr size_t max_lag_samples = 1'000'000;
}

void runtime_probe::batch_done(double) {
}

void runtime_probe::rollup_lag(const std::string& kind, int64_t ms) {
  std::lock_guard<std::mutex> g(lag_mtx_);
  for (auto& [k, v] : lag_) {
    if (k == kind) {
      if (v.size() < max_lag_samples)
        v.push_back(ms);
      return;
    }
  }
  lag_.emplace_back(kind, std::vector<int64_t>{ms});
}

uint64_t runtime_probe::rejected_total() const {
  uint64_t n = 0;
  for (auto& r : rejected_)
    n += r.load();
  return n;
}

int64_t runtime_probe::rollup_lag_percentile(const std::string& kind, double p) const {
  std::vector<int64_t> v;
  {
    std::lock_guard<std::mutex> g(lag_mtx_);
    for (auto& [k, xs] : lag_)
      if (k == kind)
        v = xs;
  }
  if (v.empty())
    return -1;
  auto idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
  return v[idx];
}

void runtime_probe::reset_rollup_lag() {
  std::lock_guard<std::mutex> g(lag_mtx_);
  lag_.clear();
}

} // namespace twinrt::runtime
