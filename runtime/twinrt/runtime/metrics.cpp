#include "twinrt/runtime/metrics.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <limits>
#include <map>

#include <prometheus/exposer.h>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/node.hpp"

namespace twinrt::runtime {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// How often the list of exported twins is rebuilt even when the number of
// twins did not change (a twin may have moved).
constexpr int64_t cache_max_age_ms = 30'000;

struct family_spec {
  const char* name;
  MetricType type;
  const char* help;
};

// Every family, in the order Collect() returns them. The README's metrics
// table is this list.
const family_spec specs[] = {
  // -- ingest
  {"twinrt_samples_ingested_total", MetricType::Counter,
   "Samples accepted and stored durably."},
  {"twinrt_samples_rejected_total", MetricType::Counter,
   "Samples refused, by reason (unknown_twin, unknown_channel, not_finite, out_of_range, "
   "future_timestamp, bad_timestamp, duplicate_sequence, not_whole_units, invalid_name)."},
  {"twinrt_ingest_batch_duration_seconds", MetricType::Histogram,
   "Time from a batch entering the ingest gate to its acknowledgement, once its samples are "
   "durable."},
  {"twinrt_ingest_overloaded_total", MetricType::Counter,
   "Batches refused because max_inflight_batches were in flight; senders back off."},
  {"twinrt_ingest_inflight_batches", MetricType::Gauge,
   "Batches between the ingest gate and their acknowledgement."},
  // -- twins and actors
  {"twinrt_twins_active", MetricType::Gauge, "Twins in memory (an actor each), by kind."},
  {"twinrt_twins_passivated", MetricType::Gauge,
   "Twins known to the node but passivated to RocksDB, by kind."},
  {"twinrt_twin_activations_total", MetricType::Counter,
   "Twin actors started (created, or loaded back from RocksDB), by kind."},
  {"twinrt_twin_passivations_total", MetricType::Counter,
   "Idle twin actors stopped after saving their state, by kind."},
  {"twinrt_shard_queued_batches", MetricType::Gauge,
   "Batch parts waiting in or being applied by each shard actor."},
  {"twinrt_shard_mailbox_messages", MetricType::Gauge,
   "Messages in each shard actor's mailbox when it last reported (at least once a sweep)."},
  {"twinrt_shard_active_twins", MetricType::Gauge, "Twins in memory, by owning shard."},
  {"twinrt_rollup_lag_seconds", MetricType::Histogram,
   "Rollup staleness: time from the oldest sample folded in to the update of a parent, by "
   "the parent's kind."},
  // -- RPC
  {"twinrt_rpc_requests_total", MetricType::Counter,
   "RPC calls answered, by method and result (ok or the error class)."},
  {"twinrt_rpc_request_duration_seconds", MetricType::Histogram,
   "RPC call latency, by method and result."},
  {"twinrt_rpc_login_failures_total", MetricType::Counter,
   "Logins refused (no token, or a secret that is no token's)."},
  {"twinrt_rpc_logins_delayed_total", MetricType::Counter,
   "Logins answered late because their address had failed too often (README \"Security\")."},
  {"twinrt_rpc_connections", MetricType::Gauge, "Operator API connections open."},
  {"twinrt_rpc_connections_refused_total", MetricType::Counter,
   "Connections refused, by reason (max_connections)."},
  {"twinrt_rpc_connections_closed_total", MetricType::Counter,
   "Connections the node closed, by reason (login_timeout: no login within rpc.login_timeout_ms)."},
  {"twinrt_rpc_calls_refused_total", MetricType::Counter,
   "Calls answered overloaded at once, by reason (max_calls_in_flight on their connection)."},
  {"twinrt_rpc_tls_handshake_failures_total", MetricType::Counter,
   "TLS handshakes on the operator API that failed or timed out (a plaintext client, a "
   "client that does not trust the certificate)."},
  // -- alerts and event routing
  {"twinrt_alerts_active", MetricType::Gauge,
   "Alerts raised or acknowledged and not yet cleared, by severity (info, warning, critical)."},
  {"twinrt_events_total", MetricType::Counter,
   "Events (alerts raised, acknowledged, cleared; health changes) written to the event log."},
  {"twinrt_events_routed_total", MetricType::Counter,
   "Events a sink confirmed (webhook 2xx, MQTT PUBACK) since start, by sink."},
  {"twinrt_event_delivery_failures_total", MetricType::Counter,
   "Failed deliveries (error, non-2xx, timeout) since start, by sink; each is retried with "
   "backoff."},
  {"twinrt_event_sink_lag_events", MetricType::Gauge,
   "Events in the log past a sink's cursor (not yet delivered or skipped by its routes), by sink."},
  // -- MQTT JSON adapter (present once a node has an [mqtt] section)
  {"twinrt_mqtt_messages_total", MetricType::Counter,
   "MQTT messages handled by the JSON adapter, by result (accepted: every sample stored; "
   "partial: some samples refused by the node; duplicate: a redelivery already applied; "
   "rejected: nothing stored)."},
  {"twinrt_mqtt_rejected_total", MetricType::Counter,
   "MQTT messages rejected, by reason (invalid_json, wrong_type, bad_timestamp, bad_seq, "
   "empty, unknown_topic, oversized, or the node's sample refusal such as unknown_channel)."},
  {"twinrt_mqtt_samples_total", MetricType::Counter,
   "Samples from MQTT messages stored durably."},
  {"twinrt_mqtt_dead_letters_total", MetricType::Counter,
   "Rejected messages published to the dead-letter topic."},
  {"twinrt_mqtt_connected", MetricType::Gauge, "1 while the adapter is connected to its broker."},
  {"twinrt_mqtt_connects_total", MetricType::Counter,
   "Connections to the broker accepted (the first and every reconnect)."},
  {"twinrt_mqtt_connect_failures_total", MetricType::Counter,
   "Failed attempts to connect to the broker, by reason (unreachable, tls_verify: its "
   "certificate is not trusted or does not carry its name, tls_handshake: other TLS failures "
   "such as a client certificate it requires, refused: CONNACK refusal, no_connack)."},
  {"twinrt_mqtt_queued_messages", MetricType::Gauge,
   "MQTT messages received and waiting for their batch to be durable (then acknowledged)."},
  {"twinrt_mqtt_sequence_gaps_total", MetricType::Counter,
   "Jumps in the seq numbers of an MQTT topic: messages a publisher numbered that never "
   "arrived (e.g. dropped by the broker when a session's queue is full)."},
  {"twinrt_mqtt_sequence_gap_messages_total", MetricType::Counter,
   "Messages missing in those jumps (the seq numbers skipped)."},
  // -- Sparkplug B adapter (present once a node has a [sparkplug] section)
  {"twinrt_sparkplug_messages_total", MetricType::Counter,
   "Sparkplug B messages handled (every spBv1.0 PUBLISH received)."},
  {"twinrt_sparkplug_rejected_total", MetricType::Counter,
   "Sparkplug B input refused, by reason (bad_topic, oversized, malformed, bad_birth, "
   "missing_seq, before_birth, sequence_gap, unknown_alias, unknown_metric, wrong_type, "
   "unmapped, twin_refused, sample_refused, node_failed)."},
  {"twinrt_sparkplug_samples_total", MetricType::Counter,
   "Metric values and online/offline marks from Sparkplug B stored durably."},
  {"twinrt_sparkplug_rebirth_requests_total", MetricType::Counter,
   "NCMD Node Control/Rebirth commands published (sequence gaps, data before a birth)."},
  {"twinrt_sparkplug_connected", MetricType::Gauge,
   "1 while the Sparkplug B adapter is connected to its broker."},
  {"twinrt_sparkplug_connect_failures_total", MetricType::Counter,
   "Failed attempts of the Sparkplug B adapter to connect to its broker, by reason (as "
   "twinrt_mqtt_connect_failures_total)."},
  // -- storage
  {"twinrt_rocksdb_write_stopped", MetricType::Gauge,
   "1 while RocksDB stops writes (rocksdb.is-write-stopped)."},
  {"twinrt_rocksdb_delayed_write_rate_bytes_per_second", MetricType::Gauge,
   "Rate RocksDB slows writes down to while it delays them, 0 when it does not "
   "(rocksdb.actual-delayed-write-rate)."},
  {"twinrt_rocksdb_write_stalls_total", MetricType::Counter,
   "Times RocksDB slowed down or stopped writes, by cause (slowdown, stop)."},
  {"twinrt_rocksdb_write_stall_seconds_total", MetricType::Counter,
   "Time writers spent stalled by RocksDB."},
  {"twinrt_rocksdb_pending_compaction_bytes", MetricType::Gauge,
   "Bytes RocksDB estimates compaction must rewrite (estimate-pending-compaction-bytes)."},
  {"twinrt_rocksdb_live_sst_files_bytes", MetricType::Gauge,
   "Size of the SST files of the current version (live-sst-files-size)."},
  {"twinrt_rocksdb_memtable_bytes", MetricType::Gauge,
   "Memory held by RocksDB memtables (cur-size-all-mem-tables)."},
  {"twinrt_rocksdb_running_compactions", MetricType::Gauge, "Compactions running now."},
  {"twinrt_rocksdb_wal_syncs_total", MetricType::Counter,
   "WAL fsyncs by the group committer (one per group when sync_wal is on)."},
  {"twinrt_storage_commit_groups_total", MetricType::Counter,
   "Group commits: queued write batches written together."},
  {"twinrt_storage_failed", MetricType::Gauge,
   "1 once a write or WAL sync failed (disk full, I/O error): the node acknowledges nothing "
   "more until it is restarted with the fault cleared; the log says why."},
  {"twinrt_storage_corrupt_records_total", MetricType::Counter,
   "Stored records that did not read back (each key once since start): refused and skipped; "
   "the log names each one."},
  // -- assets (kinds whose model says export_metrics = true)
  {"twinrt_asset_health_score", MetricType::Gauge,
   "Health score 0-100 of an exported twin: the mean score of the twins below it."},
  {"twinrt_asset_health_status", MetricType::Gauge,
   "Health status of an exported twin: 1 for its current status (ok, warning, alarm, "
   "stale), 0 for the others."},
  {"twinrt_asset_twins", MetricType::Gauge,
   "Twins below an exported twin (those with telemetry of their own), by health status."},
  {"twinrt_asset_worst_twin_info", MetricType::Gauge,
   "Always 1; labels name the worst twin below an exported twin and its status."},
  {"twinrt_asset_power_watts", MetricType::Gauge,
   "Power drawn by an exported twin and everything below it."},
  {"twinrt_asset_energy_joules_total", MetricType::Counter,
   "Energy used by an exported twin and everything below it since it was created "
   "(1 kWh = 3.6e6 J)."},
  {"twinrt_asset_counted_twins", MetricType::Gauge,
   "Twins below an exported twin matching a model count rule (count=running: machines "
   "running; count=on_road: vehicles on the road)."},
  {"twinrt_asset_stock_units", MetricType::Gauge,
   "Units in stock per SKU at or below an exported twin (warehouses, the enterprise)."},
  {"twinrt_asset_derived", MetricType::Gauge,
   "Derived values of an exported twin's analytics by name (throughput_deviation_pct, "
   "energy_waste_pct, low_stock_skus ...); absent while not known."},
  {"twinrt_asset_series", MetricType::Gauge,
   "Asset series in the last scrape (at most [metrics] max_asset_series)."},
  {"twinrt_asset_series_dropped_total", MetricType::Counter,
   "Asset series left out of scrapes because of [metrics] max_asset_series."},
};

MetricFamily make_family(const family_spec& s) {
  MetricFamily f;
  f.name = s.name;
  f.help = s.help;
  f.type = s.type;
  return f;
}

// Families by name, so that collect_* can fill them in any order.
struct family_set {
  std::vector<MetricFamily> all;
  std::map<std::string, size_t, std::less<>> index;

  family_set() {
    for (auto& s : specs) {
      index[s.name] = all.size();
      all.push_back(make_family(s));
    }
  }
  MetricFamily& operator[](std::string_view name) { return all[index.find(name)->second]; }
  bool has(std::string_view name) const { return index.find(name) != index.end(); }
};

using labels = std::vector<ClientMetric::Label>;

void add_value(MetricFamily& f, labels l, double v) {
  ClientMetric m;
  m.label = std::move(l);
  if (f.type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

void add_histogram(MetricFamily& f, labels l, const fixed_histogram::snapshot& s) {
  ClientMetric m;
  m.label = std::move(l);
  m.histogram.sample_count = s.count;
  m.histogram.sample_sum = s.sum;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < s.counts.size(); ++i) {
    cumulative += s.counts[i];
    m.histogram.bucket.push_back(
      {cumulative, i < s.bounds.size() ? s.bounds[i] : std::numeric_limits<double>::infinity()});
  }
  f.metric.push_back(std::move(m));
}

double sum_of(const twins::contribution& c, const std::string& key) {
  auto i = c.sums.find(key);
  return i == c.sums.end() ? 0.0 : i->second;
}

const twins::health_status all_statuses[] = {twins::health_status::ok,
                                             twins::health_status::warning,
                                             twins::health_status::alarm,
                                             twins::health_status::stale};

} // namespace

// -- node_collector -----------------------------------------------------------------

node_collector::node_collector(node& n, uint32_t max_asset_series)
  : node_(n), max_asset_series_(max_asset_series) {
}

std::vector<MetricFamily> node_collector::families() {
  std::vector<MetricFamily> out;
  for (auto& s : specs)
    out.push_back(make_family(s));
  return out;
}

std::vector<MetricFamily> node_collector::Collect() const {
  std::vector<MetricFamily> out;
  collect_runtime(out);
  collect_storage(out);
  collect_assets(out);
  family_set set;
  for (auto& f : out) {
    auto& dest = set[f.name];
    for (auto& m : f.metric)
      dest.metric.push_back(std::move(m));
  }
  return std::move(set.all);
}

void node_collector::refresh_cache() const {
  auto count = node_.twin_count();
  auto now = node_.config().wall_clock->now_ms();
  if (count == cache_.twin_count && now - cache_.refreshed_ms < cache_max_age_ms)
    return;
  std::vector<std::string> exported_kinds;
  for (auto& m : node_.models())
    if (m->export_metrics)
      exported_kinds.push_back(m->kind);
  std::map<std::string, uint64_t> known;
  std::vector<std::string> ids;
  for (auto& meta : node_.twins()) {
    ++known[meta.kind];
    if (std::find(exported_kinds.begin(), exported_kinds.end(), meta.kind)
        != exported_kinds.end())
      ids.push_back(meta.id);
  }
  auto depth = [](const std::string& id) { return std::count(id.begin(), id.end(), '/'); };
  std::stable_sort(ids.begin(), ids.end(),
                   [&](auto& a, auto& b) { return depth(a) < depth(b); });
  cache_.twin_count = count;
  cache_.refreshed_ms = now;
  cache_.known_by_kind.assign(known.begin(), known.end());
  cache_.exported_ids = std::move(ids);
  cache_.exported_kinds = std::move(exported_kinds);
}

void node_collector::collect_runtime(std::vector<MetricFamily>& out) const {
  auto& p = node_.probe();
  family_set set;
  add_value(set["twinrt_samples_ingested_total"], {}, static_cast<double>(p.accepted()));
  for (int r = 0; r < twins::reject_reason_count; ++r) {
    auto reason = static_cast<twins::reject_reason>(r);
    add_value(set["twinrt_samples_rejected_total"], {{"reason", twins::to_string(reason)}},
              static_cast<double>(p.rejected(reason)));
  }
  add_histogram(set["twinrt_ingest_batch_duration_seconds"], {}, p.batch_latency());
  add_value(set["twinrt_ingest_overloaded_total"], {}, static_cast<double>(p.overloaded_count()));
  add_value(set["twinrt_ingest_inflight_batches"], {}, static_cast<double>(p.inflight_batches()));

  std::map<std::string, int64_t> active;
  p.for_each_kind([&](const runtime_probe::kind_stats& k) {
    active[k.kind] = k.active.load();
    labels l{{"kind", k.kind}};
    add_value(set["twinrt_twin_activations_total"], l, static_cast<double>(k.activations.load()));
    add_value(set["twinrt_twin_passivations_total"], l,
              static_cast<double>(k.passivations.load()));
    auto lag = k.rollup_lag.read();
    if (lag.count > 0) // kinds that are never parents have no lag
      add_histogram(set["twinrt_rollup_lag_seconds"], l, lag);
  });
  {
    std::lock_guard<std::mutex> g(mtx_);
    refresh_cache();
    for (auto& [kind, n] : cache_.known_by_kind)
      active.emplace(kind, 0);
    for (auto& [kind, n] : active) {
      uint64_t known = 0;
      for (auto& [k, c] : cache_.known_by_kind)
        if (k == kind)
          known = c;
      add_value(set["twinrt_twins_active"], {{"kind", kind}}, static_cast<double>(n));
      add_value(set["twinrt_twins_passivated"], {{"kind", kind}},
                static_cast<double>(std::max<int64_t>(0, static_cast<int64_t>(known) - n)));
    }
  }
  for (size_t i = 0; i < p.shard_count(); ++i) {
    auto& s = p.shard(i);
    labels l{{"shard", std::to_string(i)}};
    add_value(set["twinrt_shard_queued_batches"], l, static_cast<double>(s.queued_batches.load()));
    add_value(set["twinrt_shard_mailbox_messages"], l, static_cast<double>(s.mailbox.load()));
    add_value(set["twinrt_shard_active_twins"], l, static_cast<double>(s.active_twins.load()));
  }
  for (auto& r : p.rpc()) {
    labels l{{"method", r.method}, {"result", r.result}};
    add_value(set["twinrt_rpc_requests_total"], l, static_cast<double>(r.requests));
    add_histogram(set["twinrt_rpc_request_duration_seconds"], l, r.latency);
  }
  for (size_t sev = 0; sev < 3; ++sev)
    add_value(set["twinrt_alerts_active"],
              {{"severity", std::string(twins::to_string(static_cast<twins::severity>(sev)))}},
              static_cast<double>(std::max<int64_t>(0, p.alerts_active(sev))));
  add_value(set["twinrt_events_total"], {},
            static_cast<double>(node_.store().durable_event_id()));
  for (auto& s : node_.event_sinks()) {
    labels l{{"sink", s.name}};
    add_value(set["twinrt_events_routed_total"], l, static_cast<double>(s.delivered));
    add_value(set["twinrt_event_delivery_failures_total"], l, static_cast<double>(s.failures));
    add_value(set["twinrt_event_sink_lag_events"], l, static_cast<double>(s.lag));
  }
  for (auto& a : p.adapter_values()) {
    if (!set.has(a.family))
      continue;
    labels l;
    for (auto& [k, v] : a.labels)
      l.push_back({k, v});
    add_value(set[a.family], std::move(l), static_cast<double>(a.value));
  }
  for (auto& f : set.all)
    out.push_back(std::move(f));
}

void node_collector::collect_storage(std::vector<MetricFamily>& out) const {
  auto& db = node_.store();
  family_set set;
  auto prop = [&](const char* name) { return static_cast<double>(db.int_property(name)); };
  add_value(set["twinrt_rocksdb_write_stopped"], {}, prop("rocksdb.is-write-stopped"));
  add_value(set["twinrt_rocksdb_delayed_write_rate_bytes_per_second"], {},
            prop("rocksdb.actual-delayed-write-rate"));
  add_value(set["twinrt_rocksdb_write_stalls_total"], {{"cause", "slowdown"}},
            db.map_property("rocksdb.cfstats", "io_stalls.total_slowdown"));
  add_value(set["twinrt_rocksdb_write_stalls_total"], {{"cause", "stop"}},
            db.map_property("rocksdb.cfstats", "io_stalls.total_stop"));
  add_value(set["twinrt_rocksdb_write_stall_seconds_total"], {},
            db.map_property("rocksdb.dbstats", "db.user_write_stall_micros") / 1e6);
  add_value(set["twinrt_rocksdb_pending_compaction_bytes"], {},
            prop("rocksdb.estimate-pending-compaction-bytes"));
  add_value(set["twinrt_rocksdb_live_sst_files_bytes"], {}, prop("rocksdb.live-sst-files-size"));
  add_value(set["twinrt_rocksdb_memtable_bytes"], {}, prop("rocksdb.cur-size-all-mem-tables"));
  add_value(set["twinrt_rocksdb_running_compactions"], {}, prop("rocksdb.num-running-compactions"));
  add_value(set["twinrt_rocksdb_wal_syncs_total"], {}, static_cast<double>(db.wal_syncs()));
  add_value(set["twinrt_storage_commit_groups_total"], {}, static_cast<double>(db.commit_groups()));
  add_value(set["twinrt_storage_failed"], {}, db.failed() ? 1.0 : 0.0);
  add_value(set["twinrt_storage_corrupt_records_total"], {},
            static_cast<double>(db.corrupt_records()));
  for (auto& f : set.all)
    out.push_back(std::move(f));
}

void node_collector::collect_assets(std::vector<MetricFamily>& out) const {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> g(mtx_);
    refresh_cache();
    ids = cache_.exported_ids;
  }
  auto views = node_.get_many(ids);
  family_set set;
  uint64_t series = 0, dropped = 0;
  auto add = [&](const char* family, labels l, double v) {
    if (series >= max_asset_series_) {
      ++dropped;
      return;
    }
    ++series;
    add_value(set[family], std::move(l), v);
  };
  for (auto& v : views) {
    if (!v)
      continue; // deleted since the list was made
    auto& st = v->state;
    auto& c = st.own;
    const auto& id = v->meta.id;
    const auto& kind = v->meta.kind;
    add("twinrt_asset_health_score", {{"kind", kind}, {"twin", id}}, st.score);
    for (auto s : all_statuses)
      add("twinrt_asset_health_status",
          {{"kind", kind}, {"status", twins::to_string(s)}, {"twin", id}},
          st.status == s ? 1.0 : 0.0);
    for (auto s : all_statuses)
      add("twinrt_asset_twins", {{"kind", kind}, {"status", twins::to_string(s)}, {"twin", id}},
          static_cast<double>(c.counts[static_cast<size_t>(s)]));
    if (!c.worst_id.empty())
      add("twinrt_asset_worst_twin_info",
          {{"kind", kind},
           {"twin", id},
           {"worst_status", twins::to_string(c.worst_status)},
           {"worst_twin", c.worst_id}},
          1.0);
    add("twinrt_asset_power_watts", {{"kind", kind}, {"twin", id}}, sum_of(c, "power_kw") * 1e3);
    add("twinrt_asset_energy_joules_total", {{"kind", kind}, {"twin", id}},
        sum_of(c, "energy_kwh") * 3.6e6);
    for (auto& [key, value] : c.sums) {
      if (key.rfind("count/", 0) == 0)
        add("twinrt_asset_counted_twins", {{"count", key.substr(6)}, {"kind", kind}, {"twin", id}},
            value);
      else if (key.rfind("stock/", 0) == 0)
        add("twinrt_asset_stock_units", {{"kind", kind}, {"sku", key.substr(6)}, {"twin", id}},
            value);
    }
    for (auto& [name, value] : st.analytics.derived)
      add("twinrt_asset_derived", {{"kind", kind}, {"name", name}, {"twin", id}}, value);
  }
  uint64_t dropped_total;
  {
    std::lock_guard<std::mutex> g(mtx_);
    dropped_total_ += dropped;
    dropped_total = dropped_total_;
  }
  add_value(set["twinrt_asset_series"], {}, static_cast<double>(series));
  add_value(set["twinrt_asset_series_dropped_total"], {}, static_cast<double>(dropped_total));
  for (auto& f : set.all)
    out.push_back(std::move(f));
}

// -- metrics_server -------------------------------------------------------------------

caf::expected<std::unique_ptr<metrics_server>>
metrics_server::start(const std::string& address,
                      std::shared_ptr<prometheus::Collectable> what) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return make_error(errc::bad_request,
                      "metrics address '" + address + "' must be HOST:PORT, e.g. 127.0.0.1:9464");
  std::unique_ptr<metrics_server> s(new metrics_server());
  try {
    // The HTTP server (civetweb) reports a port it cannot bind by throwing.
    s->exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    return make_error(errc::bad_request,
                      "cannot serve metrics on " + address + ": " + e.what());
  }
  s->what_ = std::move(what);
  s->exposer_->RegisterCollectable(s->what_);
  auto ports = s->exposer_->GetListeningPorts();
  s->address_ = address.substr(0, colon) + ":"
                + (ports.empty() ? address.substr(colon + 1) : std::to_string(ports.front()));
  return s;
}

metrics_server::~metrics_server() = default;

} // namespace twinrt::runtime
