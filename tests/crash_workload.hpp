#pragma once

// The crash-safety workload, shared by the child that gets killed
// (crash_child.cpp) and the test that checks what survived
// (crash_safety.test.cpp): a fixed tree, node settings, and batches that are
// a pure function of their number, so the test can recompute every sample
// the child was acknowledged for.

#include <cstdint>
#include <string>
#include <vector>

#include "twinrt/runtime/config.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/sample.hpp"

namespace twinrt::crash_workload {

inline constexpr int plants = 2;
inline constexpr int lines_per_plant = 2;
inline constexpr int machines_per_line = 5;
inline constexpr int warehouses = 2;
inline constexpr int depots = 2;
inline constexpr int vehicles_per_depot = 3;
inline constexpr int skus = 3;

inline constexpr const char* source = "crash";
/// Sample time of index i in batch n: fixed in the past, unique per sample.
inline constexpr int64_t base_ts_ms = 1'700'000'000'000;
inline constexpr int64_t ms_per_batch = 1000;

inline int64_t sample_ts(uint64_t batch, uint32_t index) {
  return base_ts_ms + static_cast<int64_t>(batch) * ms_per_batch + index;
}

/// Rises with (batch, index), so a resend of a batch is refused sample by
/// sample as a duplicate and the next batch is always new.
inline uint64_t sample_seq(uint64_t batch, uint32_t index) {
  return batch * 1000 + index + 1;
}

/// Settings of both the child and the test's own node. sync_wal stays false:
/// SIGKILL ends the process, not the kernel, so a WAL write that reached the
/// OS survives it; only a power cut would need the fsync.
inline runtime::node_config node_settings(const std::string& data_dir) {
  runtime::node_config cfg;
  cfg.data_dir = data_dir;
  cfg.threads = 2;
  cfg.shards = 3;
  cfg.rollup_delay_ms = 20;
  cfg.sweep_interval_ms = 100;
  cfg.sync_wal = false;
  cfg.write_buffer_mb = 8;
  cfg.block_cache_mb = 16;
  return cfg;
}

inline std::string plant_id(int p) {
  return "acme/plant-" + std::to_string(p + 1);
}
inline std::string line_id(int p, int l) {
  return plant_id(p) + "/line-" + std::to_string(l + 1);
}
inline std::string machine_id(int k) { // k in [0, 20)
  int per_plant = lines_per_plant * machines_per_line;
  int p = k / per_plant;
  int l = (k % per_plant) / machines_per_line;
  return line_id(p, l) + "/machine-" + std::to_string(k % machines_per_line + 1);
}
inline std::string warehouse_id(int w) {
  return "acme/warehouse-" + std::to_string(w + 1);
}
inline std::string depot_id(int d) {
  return "acme/fleet/depot-" + std::to_string(d + 1);
}
inline std::string vehicle_id(int v) { // v in [0, 6)
  return depot_id(v / vehicles_per_depot) + "/vehicle-" + std::to_string(v % vehicles_per_depot + 1);
}
inline std::string sku_name(int s) {
  return "SKU-" + std::to_string(s + 1);
}

inline constexpr int machines = plants * lines_per_plant * machines_per_line;
inline constexpr int vehicles = depots * vehicles_per_depot;

/// The whole tree, parents first.
inline std::vector<runtime::twin_spec> tree() {
  std::vector<runtime::twin_spec> out;
  out.push_back({"acme", "enterprise", ""});
  for (int p = 0; p < plants; ++p) {
    out.push_back({plant_id(p), "plant", "acme"});
    for (int l = 0; l < lines_per_plant; ++l)
      out.push_back({line_id(p, l), "line", plant_id(p)});
  }
  for (int k = 0; k < machines; ++k) {
    int per_plant = lines_per_plant * machines_per_line;
    out.push_back({machine_id(k), "machine",
                   line_id(k / per_plant, (k % per_plant) / machines_per_line)});
  }
  for (int w = 0; w < warehouses; ++w)
    out.push_back({warehouse_id(w), "warehouse", "acme"});
  out.push_back({"acme/fleet", "fleet", "acme"});
  for (int d = 0; d < depots; ++d)
    out.push_back({depot_id(d), "depot", "acme/fleet"});
  for (int v = 0; v < vehicles; ++v)
    out.push_back({vehicle_id(v), "vehicle", depot_id(v / vehicles_per_depot)});
  return out;
}

/// Batch number n: for every machine power and vibration (now and then past
/// the warning or alarm threshold), for every vehicle power and road state,
/// for every warehouse a receipt and a pick of each SKU. Values are exact
/// binary fractions so that sums do not depend on rounding of the inputs.
inline std::vector<twins::sample> batch(uint64_t n) {
  std::vector<twins::sample> out;
  auto add = [&](const std::string& twin, std::string channel, double value) {
    auto i = static_cast<uint32_t>(out.size());
    out.push_back({twin, std::move(channel), sample_ts(n, i), value, source, sample_seq(n, i)});
  };
  for (int k = 0; k < machines; ++k) {
    auto id = machine_id(k);
    auto u = static_cast<uint64_t>(k);
    add(id, "power_kw", 10.0 + static_cast<double>((n * 7 + u * 3) % 40) * 0.5);
    double vibration = 1.0 + static_cast<double>((n * 3 + u) % 10) * 0.25;
    if ((n + u) % 23 == 0)
      vibration = 8.0; // alarm
    else if ((n + u) % 11 == 0)
      vibration = 5.0; // warning
    add(id, "vibration_mm_s", vibration);
  }
  for (int v = 0; v < vehicles; ++v) {
    auto id = vehicle_id(v);
    auto u = static_cast<uint64_t>(v);
    add(id, "power_kw", static_cast<double>((n + u) % 5) * 12.5);
    add(id, "state", static_cast<double>((n / 3 + u) % 3));
  }
  for (int w = 0; w < warehouses; ++w) {
    auto id = warehouse_id(w);
    auto uw = static_cast<uint64_t>(w);
    for (int s = 0; s < skus; ++s) {
      auto us = static_cast<uint64_t>(s);
      add(id, "receipt/" + sku_name(s), static_cast<double>(1 + (n * 5 + uw * 3 + us) % 9));
      add(id, "pick/" + sku_name(s), static_cast<double>((n + uw + us * 2) % 4));
    }
  }
  return out;
}

} // namespace twinrt::crash_workload
