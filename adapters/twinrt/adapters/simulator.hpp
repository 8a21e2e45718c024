#pragma once

#include <cstdint>
#include <functional>
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

/// Situations the analytics should find, with known answers. Times are in
/// simulated (data) time.
struct analytics_scenario {
  /// A machine whose vibration climbs at a known rate: `vibration` mm/s at
  /// `from_ms`, plus `rate_per_h` mm/s per hour after it.
  struct wearing_machine {
    std::string id;
    double rate_per_h = 0;
    double vibration = 1.5;
    int64_t from_ms = 0;
  };
  std::vector<wearing_machine> wearing;
  int64_t anomalies_from_ms = 0;    // when the three below start
  std::string slow_line;            // its machines make parts at slow_factor of the normal rate
  double slow_factor = 0.5;
  std::string wasteful_line;        // its machines draw wasteful_idle_kw while idle (4 kW normally)
  double wasteful_idle_kw = 60;
  std::string low_stock_warehouse;  // gets no more receipts of low_stock_sku, only picks
  std::string low_stock_sku;
};

/// The demo's scenario for a layout: four wearing machines (one of them far
/// from failure, one repaired on the way), plant-2/line-3 slows down,
/// plant-1/line-2 wastes energy while idle, warehouse-2 runs out of
/// SKU-0007; the anomalies start at `anomalies_from_ms`.
analytics_scenario demo_scenario(const enterprise_layout& layout, int64_t start_ms,
                                 int64_t anomalies_from_ms);

/// Produces plausible telemetry for every twin of a layout: machines that run,
/// idle and wear (vibration creeps up on a few), vehicles that drive, charge
/// and park, warehouses that receive and pick. Deterministic for a seed.
/// Machines run (about 4 minutes on average) and idle (about 1) at random,
/// independent of the tick length, so a simulated clock may run fast.
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

  /// Applies a scenario (before the first tick).
  void set_scenario(analytics_scenario s);

  /// The simulated vibration level (without noise) of a machine now.
  double vibration_level(const std::string& machine) const;
  /// Stock the simulator believes a warehouse holds (what it sent).
  int64_t stock(const std::string& warehouse, const std::string& sku) const;

private:
  struct machine {
    std::string id;
    std::string line;
    double wear = 0;      // mm/s added to vibration
    double wear_rate = 0; // mm/s per hour of simulated time
    int64_t wear_from_ms = 0;
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
  analytics_scenario scenario_;
};

/// Runs `sim` over simulated time [from_ms, to_ms) in steps of `step_ms` as
/// fast as `n` takes the samples, waiting for each step to be durable (so a
/// clock started hours in the past catches up with now without ever sending
/// a future timestamp). `progress` is called after each simulated hour with
/// the simulated time reached; `stop` (when given) before each step, and a
/// true answer ends the run early. Returns the samples accepted, or the
/// first ingest error.
caf::expected<uint64_t> replay_history(runtime::node& n, simulator& sim, int64_t from_ms,
                                       int64_t to_ms, int64_t step_ms,
                                       const std::function<void(int64_t)>& progress = {},
                                       const std::function<bool()>& stop = {});

} // namespace twinrt::adapters
