#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace prometheus {
class Exposer;
} // namespace prometheus

namespace twinrt::runtime {

class node;
struct twin_meta;

/// The Prometheus view of one node, computed at scrape time only: the hot
/// path touches nothing but the runtime probe's atomics. Collect() reads
///   - the runtime probe (ingest, rejections, batch latency, twins by kind,
///     shard load, rollup lag, RPC calls),
///   - RocksDB properties and the committer's counters,
///   - the live state of the twins whose kind's model has
///     `export_metrics = true` (health, power, energy, counts, stock), at
///     most `max_asset_series` series of them per scrape; the rest are left
///     out and counted in twinrt_asset_series_dropped_total. Twins nearer the
///     root go first, so a cap cuts lines before plants.
/// Every family and its meaning is listed in families(). Collect() may run
/// on several exposer threads at once; it blocks while it asks the twins.
/// The node must outlive the collector.
class node_collector : public prometheus::Collectable {
public:
  node_collector(node& n, uint32_t max_asset_series);

  std::vector<prometheus::MetricFamily> Collect() const override;

  /// Name, type and help of every family the node exports, in the order
  /// Collect() returns them (for documentation and tests).
  static std::vector<prometheus::MetricFamily> families();

private:
  struct twin_cache {
    size_t twin_count = static_cast<size_t>(-1);
    int64_t refreshed_ms = 0;
    std::vector<std::pair<std::string, uint64_t>> known_by_kind;
    std::vector<std::string> exported_ids; // root first
    std::vector<std::string> exported_kinds;
  };

  void refresh_cache() const; // under mtx_
  void collect_runtime(std::vector<prometheus::MetricFamily>& out) const;
  void collect_storage(std::vector<prometheus::MetricFamily>& out) const;
  void collect_assets(std::vector<prometheus::MetricFamily>& out) const;

  node& node_;
  uint32_t max_asset_series_;
  mutable std::mutex mtx_;
  mutable twin_cache cache_;
  mutable uint64_t dropped_total_ = 0;
};

/// Serves a collectable at http://ADDRESS/metrics. Owns the HTTP server and
/// its threads; stops them when destroyed (which takes about 2 s after a
/// request was served: the server lingers on open connections).
class metrics_server {
public:
  /// Binds `address` ("HOST:PORT"; port 0 picks a free one). Fails with
  /// errc::bad_request naming the address when it cannot be bound.
  static caf::expected<std::unique_ptr<metrics_server>>
  start(const std::string& address, std::shared_ptr<prometheus::Collectable> what);

  ~metrics_server();
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// The address actually bound, "HOST:PORT".
  const std::string& address() const { return address_; }

private:
  metrics_server() = default;
  std::shared_ptr<prometheus::Collectable> what_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
};

} // namespace twinrt::runtime
