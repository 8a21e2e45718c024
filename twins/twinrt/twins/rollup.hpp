#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace twinrt::twins {

/// Health of a twin; the order is "how bad": a higher value is worse.
enum class health_status : uint8_t { ok = 0, warning = 1, alarm = 2, stale = 3 };

const char* to_string(health_status s);

/// Score (0-100) that a twin in this status adds to its parents' mean.
double status_score(health_status s);

/// What a twin hands its parent: the fold of its own values and of all its
/// children's contributions. Sums are keyed `power_kw`, `energy_kwh`,
/// `energy_today_kwh`, `stock/<sku>`, `count/<name>`. Health counts count
/// twins that have telemetry of their own (leaves, in the built-in models).
struct contribution {
  std::map<std::string, double> sums;
  std::array<int64_t, 4> counts{}; // indexed by health_status
  double score_sum = 0;
  int64_t score_count = 0;
  std::string worst_id; // the worst twin below, empty when none
  health_status worst_status = health_status::ok;
  int64_t latest_ts_ms = 0; // newest sample time of any twin folded in (data time)

  /// Mean score of the twins counted, 100 when none.
  double score() const {
    return score_count == 0 ? 100.0 : score_sum / static_cast<double>(score_count);
  }
  bool operator==(const contribution& other) const;
  bool operator!=(const contribution& other) const { return !(*this == other); }
};

/// Adds `child` into `acc`: sums add, counts add, and the worst twin is the
/// one with the worse status (ties go to the smaller id, so the fold does not
/// depend on order). Zero sums are kept out so that a stock that went back to
/// zero compares equal to one never touched.
void fold_into(contribution& acc, const contribution& child);

} // namespace twinrt::twins
