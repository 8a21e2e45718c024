#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "twinrt/twins/sample.hpp"

namespace twinrt::runtime {

/// What the runtime reports about itself. The node calls these from any
/// thread; counters are atomics and the latency reservoir takes a lock once
/// per parent update, never per sample. Metrics exporters read it.
class runtime_probe {
public:
  void samples_accepted(uint64_t n) { accepted_.fetch_add(n, std::memory_order_relaxed); }
  void sample_rejected(twins::reject_reason r) {
    rejected_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void batch_done(double seconds);
  void twin_activated() { activations_.fetch_add(1, std::memory_order_relaxed); active_.fetch_add(1); }
  void twin_passivated() { passivations_.fetch_add(1, std::memory_order_relaxed); active_.fetch_sub(1); }
  void overloaded() { overloaded_.fetch_add(1, std::memory_order_relaxed); }
  /// Time from a sample's timestamp to an update of a parent of `kind`.
  void rollup_lag(const std::string& kind, int64_t ms);

  uint64_t accepted() const { return accepted_.load(); }
  uint64_t rejected(twins::reject_reason r) const {
    return rejected_[static_cast<size_t>(r)].load();
  }
  uint64_t rejected_total() const;
  int64_t active_twins() const { return active_.load(); }
  uint64_t activations() const { return activations_.load(); }
  uint64_t passivations() const { return passivations_.load(); }
  uint64_t overloaded_count() const { return overloaded_.load(); }
  /// p-th percentile (0..100) of rollup lag for `kind` in ms; -1 if none.
  int64_t rollup_lag_percentile(const std::string& kind, double p) const;
  void reset_rollup_lag();

private:
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_[twins::reject_reason_count] = {};
  std::atomic<uint64_t> activations_{0}, passivations_{0}, overloaded_{0};
  std::atomic<int64_t> active_{0};
  mutable std::mutex lag_mtx_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> lag_;
};

} // namespace twinrt::runtime
