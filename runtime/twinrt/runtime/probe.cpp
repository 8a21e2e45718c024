#include "twinrt/runtime/probe.hpp"

#include <cmath>

namespace twinrt::runtime {

namespace {
constexpr size_t max_lag_samples = 1'000'000;
}

// -- fixed_histogram ------------------------------------------------------------

fixed_histogram::fixed_histogram(std::vector<double> bounds)
  : bounds_(std::move(bounds)),
    counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i].store(0, std::memory_order_relaxed);
}

void fixed_histogram::observe(double v) {
  if (!(v > 0)) // negative and NaN count as 0
    v = 0;
  auto i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v)
                               - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(std::llround(std::min(v, 1e12) * 1e6)),
                        std::memory_order_relaxed);
}

fixed_histogram::snapshot fixed_histogram::read() const {
  snapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
  return s;
}

// -- runtime_probe ----------------------------------------------------------------

std::vector<double> runtime_probe::batch_latency_bounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> runtime_probe::rollup_lag_bounds() {
  return {0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300};
}

std::vector<double> runtime_probe::rpc_latency_bounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
          1, 2.5, 5, 10};
}

runtime_probe::kind_stats::kind_stats(std::string k)
  : kind(std::move(k)), rollup_lag(rollup_lag_bounds()) {
}

runtime_probe::runtime_probe() : batch_latency_(batch_latency_bounds()) {
}

runtime_probe::kind_stats& runtime_probe::kind(std::string_view k) {
  {
    std::shared_lock<std::shared_mutex> g(kinds_mtx_);
    for (auto& s : kinds_)
      if (s.kind == k)
        return s;
  }
  std::unique_lock<std::shared_mutex> g(kinds_mtx_);
  for (auto& s : kinds_)
    if (s.kind == k)
      return s;
  return kinds_.emplace_back(std::string(k));
}

void runtime_probe::twin_activated(std::string_view k) {
  activations_.fetch_add(1, std::memory_order_relaxed);
  active_.fetch_add(1);
  auto& s = kind(k);
  s.activations.fetch_add(1, std::memory_order_relaxed);
  s.active.fetch_add(1, std::memory_order_relaxed);
}

void runtime_probe::twin_passivated(std::string_view k) {
  passivations_.fetch_add(1, std::memory_order_relaxed);
  active_.fetch_sub(1);
  auto& s = kind(k);
  s.passivations.fetch_add(1, std::memory_order_relaxed);
  s.active.fetch_sub(1, std::memory_order_relaxed);
}

void runtime_probe::rollup_lag(const std::string& k, int64_t ms) {
  kind(k).rollup_lag.observe(static_cast<double>(ms) / 1000.0);
  std::lock_guard<std::mutex> g(lag_mtx_);
  for (auto& [name, v] : lag_) {
    if (name == k) {
      if (v.size() < max_lag_samples)
        v.push_back(ms);
      return;
    }
  }
  lag_.emplace_back(k, std::vector<int64_t>{ms});
}

void runtime_probe::set_shard_count(size_t n) {
  shards_ = std::make_unique<shard_stats[]>(n);
  shard_count_ = n;
}

void runtime_probe::shard_report(size_t shard, uint64_t queued_batches, uint64_t mailbox,
                                 uint64_t active_twins) {
  if (shard >= shard_count_)
    return;
  auto& s = shards_[shard];
  s.queued_batches.store(queued_batches, std::memory_order_relaxed);
  s.mailbox.store(mailbox, std::memory_order_relaxed);
  s.active_twins.store(active_twins, std::memory_order_relaxed);
}

void runtime_probe::rpc_done(std::string_view method, std::string_view result,
                             double seconds) {
  std::lock_guard<std::mutex> g(rpc_mtx_);
  auto& e = rpc_[{std::string(method), std::string(result)}];
  if (!e.second)
    e.second = std::make_unique<fixed_histogram>(rpc_latency_bounds());
  ++e.first;
  e.second->observe(seconds);
}

std::vector<runtime_probe::rpc_stats> runtime_probe::rpc() const {
  std::lock_guard<std::mutex> g(rpc_mtx_);
  std::vector<rpc_stats> out;
  for (auto& [key, e] : rpc_)
    out.push_back({key.first, key.second, e.first, e.second->read()});
  return out;
}

std::atomic<int64_t>& runtime_probe::adapter_series(std::string_view family, label_pairs labels) {
  std::lock_guard<std::mutex> g(adapter_mtx_);
  for (auto& e : adapter_)
    if (e.family == family && e.labels == labels)
      return e.value;
  auto& e = adapter_.emplace_back();
  e.family = std::string(family);
  e.labels = std::move(labels);
  return e.value;
}

std::vector<runtime_probe::adapter_value> runtime_probe::adapter_values() const {
  std::lock_guard<std::mutex> g(adapter_mtx_);
  std::vector<adapter_value> out;
  for (auto& e : adapter_)
    out.push_back({e.family, e.labels, e.value.load(std::memory_order_relaxed)});
  return out;
}

uint64_t runtime_probe::rejected_total() const {
  uint64_t n = 0;
  for (auto& r : rejected_)
    n += r.load();
  return n;
}

int64_t runtime_probe::rollup_lag_percentile(const std::string& k, double p) const {
  std::vector<int64_t> v;
  {
    std::lock_guard<std::mutex> g(lag_mtx_);
    for (auto& [name, xs] : lag_)
      if (name == k)
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
