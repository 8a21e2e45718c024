#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "twinrt/twins/sample.hpp"

namespace twinrt::runtime {

/// A histogram with fixed upper bounds: observe() is lock-free (one relaxed
/// add on a bucket, one on the sum), read() copies it at scrape time.
class fixed_histogram {
public:
  /// `bounds` are upper bounds in ascending order; a last +Inf bucket is
  /// implied.
  explicit fixed_histogram(std::vector<double> bounds);

  /// Records one value (negative values count as 0).
  void observe(double v);

  struct snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> counts; // per bucket, not cumulative; bounds.size() + 1
    double sum = 0;
    uint64_t count = 0;
  };
  snapshot read() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_micros_{0}; // sum in millionths: integer adds stay exact
};

/// What the runtime reports about itself. The node calls these from any
/// thread; counters are atomics and histograms lock-free, touched once per
/// batch, activation or parent update, never per sample. The metrics
/// collector (metrics.hpp) reads it at scrape time; nothing here knows
/// Prometheus.
class runtime_probe {
public:
  /// Per kind of twin. Entries are created on first use and never move.
  struct kind_stats {
    explicit kind_stats(std::string k);
    std::string kind;
    std::atomic<uint64_t> activations{0}, passivations{0};
    std::atomic<int64_t> active{0};
    fixed_histogram rollup_lag; // seconds from sample timestamp to parent update
  };

  /// Per shard: what the shard last reported.
  struct shard_stats {
    std::atomic<uint64_t> queued_batches{0}; // waiting or running in the shard
    std::atomic<uint64_t> mailbox{0};        // messages in the shard's mailbox
    std::atomic<uint64_t> active_twins{0};
  };

  /// One RPC method and result (copied out at scrape time).
  struct rpc_stats {
    std::string method, result;
    uint64_t requests = 0;
    fixed_histogram::snapshot latency;
  };

  runtime_probe();

  void samples_accepted(uint64_t n) { accepted_.fetch_add(n, std::memory_order_relaxed); }
  void sample_rejected(twins::reject_reason r) {
    rejected_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  /// One batch acknowledged (or failed) after `seconds` in the node.
  void batch_done(double seconds) { batch_latency_.observe(seconds); }
  void inflight_batches(uint32_t n) { inflight_.store(n, std::memory_order_relaxed); }
  void twin_activated(std::string_view kind);
  void twin_passivated(std::string_view kind);
  void overloaded() { overloaded_.fetch_add(1, std::memory_order_relaxed); }
  /// Time from a sample's timestamp to an update of a parent of `kind`.
  void rollup_lag(const std::string& kind, int64_t ms);
  /// Shards `0 .. n-1` will report; call before any shard runs.
  void set_shard_count(size_t n);
  void shard_report(size_t shard, uint64_t queued_batches, uint64_t mailbox,
                    uint64_t active_twins);
  /// One RPC call answered (for the RPC layer; `result` is "ok" or an error
  /// class such as "overloaded").
  void rpc_done(std::string_view method, std::string_view result, double seconds);
  /// An alert of severity `sev` (0 info, 1 warning, 2 critical) was raised
  /// (+1) or cleared (-1).
  template <class Severity>
  void alert_changed(Severity sev, int delta) {
    alerts_active_[std::min<size_t>(static_cast<size_t>(sev), 2)].fetch_add(
      delta, std::memory_order_relaxed);
  }
  /// Open (raised or acknowledged) alerts of a severity (0 .. 2).
  int64_t alerts_active(size_t sev) const { return alerts_active_[std::min<size_t>(sev, 2)].load(); }

  /// Counters and gauges of the ingest adapters (MQTT, ...): one series per family name and
  /// label pairs, created on first use. The reference stays valid for the probe's life, so an
  /// adapter looks its series up once and then only bumps the atomic. The family must be listed
  /// in metrics.cpp (with its help text); series of unlisted families are not exported.
  using label_pairs = std::vector<std::pair<std::string, std::string>>;
  std::atomic<int64_t>& adapter_series(std::string_view family, label_pairs labels);
  struct adapter_value {
    std::string family;
    label_pairs labels;
    int64_t value = 0;
  };
  std::vector<adapter_value> adapter_values() const;

  uint64_t accepted() const { return accepted_.load(); }
  uint64_t rejected(twins::reject_reason r) const {
    return rejected_[static_cast<size_t>(r)].load();
  }
  uint64_t rejected_total() const;
  int64_t active_twins() const { return active_.load(); }
  uint64_t activations() const { return activations_.load(); }
  uint64_t passivations() const { return passivations_.load(); }
  uint64_t overloaded_count() const { return overloaded_.load(); }
  uint64_t inflight_batches() const { return inflight_.load(); }
  fixed_histogram::snapshot batch_latency() const { return batch_latency_.read(); }
  /// Calls f(const kind_stats&) for every kind seen so far.
  template <class F>
  void for_each_kind(F&& f) const {
    std::shared_lock<std::shared_mutex> g(kinds_mtx_);
    for (auto& k : kinds_)
      f(k);
  }
  size_t shard_count() const { return shard_count_; }
  const shard_stats& shard(size_t i) const { return shards_[i]; }
  std::vector<rpc_stats> rpc() const;
  /// p-th percentile (0..100) of rollup lag for `kind` in ms; -1 if none.
  int64_t rollup_lag_percentile(const std::string& kind, double p) const;
  void reset_rollup_lag();

  /// Bucket bounds, in seconds.
  static std::vector<double> batch_latency_bounds();
  static std::vector<double> rollup_lag_bounds();
  static std::vector<double> rpc_latency_bounds();

private:
  kind_stats& kind(std::string_view k);

  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_[twins::reject_reason_count] = {};
  std::atomic<uint64_t> activations_{0}, passivations_{0}, overloaded_{0};
  std::atomic<int64_t> active_{0};
  std::atomic<int64_t> alerts_active_[3] = {};
  std::atomic<uint64_t> inflight_{0};
  fixed_histogram batch_latency_;
  mutable std::shared_mutex kinds_mtx_;
  std::deque<kind_stats> kinds_;
  size_t shard_count_ = 0;
  std::unique_ptr<shard_stats[]> shards_;
  mutable std::mutex rpc_mtx_;
  std::map<std::pair<std::string, std::string>,
           std::pair<uint64_t, std::unique_ptr<fixed_histogram>>>
    rpc_;
  struct adapter_entry {
    std::string family;
    label_pairs labels;
    std::atomic<int64_t> value{0};
  };
  mutable std::mutex adapter_mtx_;
  std::deque<adapter_entry> adapter_;
  mutable std::mutex lag_mtx_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> lag_;
};

} // namespace twinrt::runtime
