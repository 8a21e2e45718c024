#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/sample.hpp"

namespace twinrt::adapters {

/// The shape of a simulated enterprise.
struct enterprise_layout {
  std::string root = "acme";
  int plants = 2;
  int lines_per_plant = 4;
  int machines_per_line = 10;
  int warehouses = 3;
  int skus = 50;
  int depots = 2;
  int vehicles = 40; // spread over the depots
};

/// Twins of the layout, parents first:
///   acme, acme/plant-1, acme/plant-1/line-1, acme/plant-1/line-1/machine-01,
///   acme/warehouse-1, acme/fleet, acme/fleet/depot-1, acme/fleet/vehicle-01 ...
std::vector<runtime::twin_spec> enterprise_twins(const enterprise_layout& layout);

/// SKU names: SKU-0001 ...
std::string sku_name(int i);

/// Produces plausible telemetry for every twin of a layout: machines that run,
/// idle and wear (vibration creeps up on a few), vehicles that drive, charge
/// and park, warehouses that receive and pick. Deterministic for a seed.
/// Warehouse movements carry source "simulator" and rising sequence numbers.
class simulator {
public:
  simulator(enterprise_layout layout, uint64_t seed);

  /// Starts from the stock the node already holds, so picks never go below
  /// zero after a restart.
  void seed_stock(const std::string& warehouse, const std::string& sku, int64_t units);

  /// All samples for one tick at time `ts_ms`; `dt_ms` since the last tick.
  std::vector<twins::sample> tick(int64_t ts_ms, int64_t dt_ms);

  const enterprise_layout& layout() const { return layout_; }

private:
  struct machine {
    std::string id;
    double wear = 0;      // mm/s added to vibration
    double wear_rate = 0; // mm/s per hour
    int state = 1;
    double parts = 0;
  };
  struct vehicle {
    std::string id;
    int state = 0;
    double battery = 80;
  };
  enterprise_layout layout_;
  std::mt19937_64 rng_;
  std::vector<machine> machines_;
  std::vector<vehicle> vehicles_;
  std::vector<std::string> warehouses_;
  std::map<std::pair<std::string, std::string>, int64_t> stock_;
  uint64_t seq_ = 0;
};

} // namespace twinrt::adapters
