#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace twinrt::twins {

// Estimators behind a twin's derived values: remaining useful life from a
// degradation trend, a production line's throughput against its own
// baseline, energy per unit and idle energy against theirs, low stock.
// Each is plain data with a small state, fed one observation at a time (never
// by rescanning history) and saved with the twin.

/// A straight-line fit of value against time over the recent past:
/// exponentially weighted least squares in which a sample's weight halves
/// every `half_life_h` hours of data time. Robust to
///  - noise: the fit's residual spread gives the slope's standard error;
///  - gaps: weights decay by elapsed time, not by sample count;
///  - outliers and resets: a sample more than 6 residual deviations (and 10%)
///    away from the prediction is held back; three such samples in a row on
///    the same side are a new regime (a repair that brought vibration down)
///    and restart the fit from them; a single one is dropped as an outlier.
/// Samples not newer than the last one are ignored.
class degradation_trend {
public:
  struct fit {
    double level = 0;      // fitted value at the last sample's time
    double slope_per_h = 0;
    double slope_se = 0;   // standard error of the slope
    double sigma = 0;      // residual standard deviation
    double n_eff = 0;      // effective number of samples behind the fit
    double span_h = 0;     // hours since the fit (re)started
  };

  void add(int64_t ts_ms, double value, double half_life_h);

  /// The current fit; nullopt with fewer than three samples or no spread in time.
  std::optional<fit> current() const;

  int64_t last_ms() const { return last_ms_; }
  uint32_t resets() const { return resets_; }

  // The raw sums, for storage.
  struct sums {
    int64_t last_ms = 0, first_ms = 0;
    double s0 = 0, st = 0, sy = 0, stt = 0, sty = 0, syy = 0, sww = 0;
    uint32_t resets = 0;
    std::vector<std::pair<int64_t, double>> held; // samples held back as suspect
    bool operator==(const sums& o) const;
  };
  sums save() const;
  static degradation_trend restore(const sums& s);
  bool operator==(const degradation_trend& o) const { return save() == o.save(); }

private:
  void restart();
  void absorb(int64_t ts_ms, double value, double half_life_h);

  int64_t last_ms_ = 0, first_ms_ = 0;
  // Weighted sums with time in hours relative to the last sample.
  double s0_ = 0, st_ = 0, sy_ = 0, stt_ = 0, sty_ = 0, syy_ = 0, sww_ = 0;
  uint32_t resets_ = 0;
  std::vector<std::pair<int64_t, double>> held_;
};

/// Time until a fitted trend crosses `threshold` (upwards when `rising`).
struct rul_estimate {
  double hours = 0;      // from the last sample; 0 when already past
  double confidence = 0; // 1 - relative standard error of the slope, in [0, 1]
};

/// Settings of a remaining-useful-life estimate.
struct rul_settings {
  double min_history_h = 1;    // no estimate from a shorter stretch of data
  double min_confidence = 0.8; // no estimate below this confidence
  double max_hours = 8760;     // farther than this: no failure in sight
};

/// nullopt when the trend does not head for the threshold, or the fit is too
/// short, too uncertain, or points too far out (see rul_settings).
std::optional<rul_estimate> time_to_threshold(const degradation_trend::fit& f,
                                              double threshold, bool rising,
                                              const rul_settings& settings);

/// How a baseline groups time: one mean, one per hour of the day (UTC), or one
/// per hour of the week (Monday 00:00 UTC is bucket 0).
enum class baseline_period : uint8_t { overall = 0, hour_of_day = 1, hour_of_week = 2 };

std::string_view to_string(baseline_period p);
std::optional<baseline_period> parse_baseline_period(std::string_view s);

/// A value's normal level learned from the twin's own history: a running mean
/// per bucket of `period` plus one overall. A bucket answers only once it has
/// data from an earlier cycle (a week ago, for hour_of_week), so a change in
/// this hour is never its own baseline; until then the overall mean of at
/// least `min_overall` observations stands in. Means weigh the last
/// `memory` observations of a bucket (older ones fade), so a baseline follows
/// a slow change of normal.
class seasonal_baseline {
public:
  struct bucket {
    double mean = 0;
    uint32_t count = 0;
    int64_t first_cycle = 0; // cycle number of the first observation
    bool operator==(const bucket& o) const {
      return mean == o.mean && count == o.count && first_cycle == o.first_cycle;
    }
  };
  static constexpr uint32_t memory = 100;
  static constexpr uint32_t min_overall = 4;

  /// The expected value at `ts_ms`; nullopt while nothing usable is learned.
  std::optional<double> expected(int64_t ts_ms, baseline_period period) const;
  void learn(int64_t ts_ms, double value, baseline_period period);

  std::map<uint32_t, bucket> buckets;
  bucket overall;
  bool operator==(const seasonal_baseline& o) const {
    return buckets == o.buckets && overall == o.overall;
  }
};

/// Cumulative totals of a production unit (a line, a plant) at one moment of
/// data time, from its rollup: parts made, energy, energy drawn while idle.
struct production_totals {
  int64_t ts_ms = 0;
  double parts = 0;
  double energy_kwh = 0;
  double idle_energy_kwh = 0;
  bool operator==(const production_totals& o) const {
    return ts_ms == o.ts_ms && parts == o.parts && energy_kwh == o.energy_kwh
           && idle_energy_kwh == o.idle_energy_kwh;
  }
};

/// What one closed window measured, and how it compares with the baselines.
/// Absent members: not enough data yet.
struct production_report {
  double throughput_per_h = 0;
  std::optional<double> throughput_baseline_per_h, throughput_deviation_pct;
  std::optional<double> energy_per_unit_kwh, energy_per_unit_baseline_kwh;
  double idle_energy_kwh_per_h = 0;
  std::optional<double> idle_energy_baseline_kwh_per_h;
  std::optional<double> energy_waste_pct; // energy above what the baselines expect
  bool operator==(const production_report& o) const;
};

/// Rates of one contributor (a machine of a line, a line of a plant) over
/// its last closed window, and where its open window started.
struct contributor_track {
  production_totals anchor;
  bool has_rate = false;
  double parts_per_h = 0, energy_kwh_per_h = 0, idle_energy_kwh_per_h = 0;
  bool operator==(const contributor_track& o) const {
    return anchor == o.anchor && has_rate == o.has_rate && parts_per_h == o.parts_per_h
           && energy_kwh_per_h == o.energy_kwh_per_h
           && idle_energy_kwh_per_h == o.idle_energy_kwh_per_h;
  }
};

/// Turns the cumulative totals of a production unit's contributors (parts
/// made, energy, energy drawn while idle, each at the contributor's own
/// latest sample time) into the unit's rates per window of data time
/// (throughput, energy per unit, idle energy per hour), and compares each
/// closed window with baselines learned from the windows before it.
/// Each contributor's rate is measured over its own window, so a contributor
/// whose data arrives late does not distort the sum. The unit's window closes
/// once `window_ms` of data time has passed since it opened; its rates are
/// the sums of its contributors' latest rates (a contributor silent for
/// eight windows counts as making nothing). Totals that go down (a counter reset)
/// restart that contributor's window.
class production_tracker {
public:
  /// Feed whenever the rollup changes. Returns the report of the window it
  /// closed, if it closed one.
  std::optional<production_report>
  observe(const std::map<std::string, production_totals>& contributors, int64_t window_ms,
          baseline_period period);

  std::map<std::string, contributor_track> contributors;
  int64_t window_start_ms = 0;           // 0: no window open yet
  seasonal_baseline throughput;          // parts per hour
  seasonal_baseline busy_energy;         // kWh per part, idle energy excluded
  seasonal_baseline idle_energy;         // idle kWh per hour
  std::optional<production_report> last; // the last closed window
  bool operator==(const production_tracker& o) const {
    return contributors == o.contributors && window_start_ms == o.window_start_ms
           && throughput == o.throughput && busy_energy == o.busy_energy
           && idle_energy == o.idle_energy && last == o.last;
  }
};

/// One SKU under its minimum.
struct low_stock {
  std::string sku;
  int64_t units = 0;
  int64_t minimum = 0;
};

/// SKUs of `rules` (SKU -> minimum) whose stock is below the minimum (a SKU
/// not held has 0 units), in SKU order.
std::vector<low_stock> find_low_stock(const std::map<std::string, int64_t>& stock,
                                      const std::map<std::string, int64_t>& rules);

/// The analytics part of a twin's durable state.
struct analytics_state {
  std::map<std::string, degradation_trend, std::less<>> trends; // per degradation channel
  production_tracker production;
  double parts = 0;               // parts counted, counter resets bridged
  double last_parts_counter = -1; // -1: no reading yet
  double idle_energy_kwh = 0;     // energy drawn while in the idle state
  /// Derived values by name (rul_hours, throughput_deviation_pct ...): what
  /// predicates, queries, alerts and metrics read. A value not known is absent.
  std::map<std::string, double, std::less<>> derived;
  std::vector<std::string> warnings; // analytics findings that put the twin in warning
  bool operator==(const analytics_state& o) const;
};

} // namespace twinrt::twins

namespace twinrt::twins {

struct model;
struct twin_state;
struct contribution;

/// Feeds one applied, newest-so-far sample of `channel` to the twin's
/// analytics: the degradation trend of a degradation channel, the parts
/// counter. Cheap; call for every such sample.
void observe_sample(analytics_state& a, const model& m, std::string_view channel,
                    int64_t ts_ms, double value);

/// Energy `kwh` was just integrated over the gap up to a power (or energy
/// counter) sample: counted as idle energy when the twin's state channel is,
/// at that sample, the model's idle state.
void observe_energy(twin_state& st, const model& m, double kwh);

/// Recomputes the derived values and warnings of a twin from its state: the
/// remaining useful life from its trends, low stock from its stock and, for
/// a kind with a production baseline, the window report from its
/// `children`'s latest contributions (nullptr: leave the production
/// baselines as they are). Returns true when a derived value, a warning or
/// the analytics state changed.
bool refresh_analytics(twin_state& st, const model& m,
                       const std::map<std::string, contribution>* children);

} // namespace twinrt::twins
