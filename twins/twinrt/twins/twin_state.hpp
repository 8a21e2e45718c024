#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "twinrt/twins/model.hpp"
#include "twinrt/twins/rollup.hpp"
#include "twinrt/twins/sample.hpp"

namespace twinrt::twins {

struct channel_value {
  double value = 0;
  int64_t ts_ms = 0;
  bool operator==(const channel_value& o) const {
    return value == o.value && ts_ms == o.ts_ms;
  }
};

/// Everything a twin knows about itself. Plain data, saved whole after every
/// change; the owner (one twin actor) is the only writer.
struct twin_state {
  uint64_t version = 0;        // bumped on every change
  uint32_t model_version = 0;  // model version last applied
  std::map<std::string, channel_value, std::less<>> channels; // latest per channel
  std::map<std::pair<std::string, std::string>, uint64_t> sources; // (channel, source) -> seq
  double energy_kwh = 0;
  double energy_today_kwh = 0;
  int64_t energy_day = 0;      // UTC day number of energy_today_kwh
  double last_power_kw = 0;
  int64_t last_power_ms = 0;   // 0: no power sample yet
  double last_counter_kwh = -1; // -1: no counter reading yet
  std::map<std::string, int64_t> stock; // units per SKU
  health_status status = health_status::ok;
  double score = 100;
  int64_t last_data_ms = 0;    // newest sample time seen (not its arrival); 0: none yet
  int64_t created_ms = 0;      // wall clock at creation: data age counts from it until a sample
  contribution own;            // what this twin hands its parent
  bool offline = false;        // set through offline_channel: health is stale
  alert_tracks alerts;         // per alert rule: pending, raised, acknowledged
  analytics_state analytics;  // trends, baselines, derived values (analytics.hpp)

  bool operator==(const twin_state& o) const;
};

/// Settings that bound what a sample may be.
struct sample_limits {
  int64_t future_skew_ms = 5000; // how far past "now" a timestamp may be
};

/// Applies the samples `batch[i]` for i in `indices` (all for twin `twin_id`)
/// to `state` under model `m`: each sample is validated first (channel,
/// finite, range, timestamp, duplicate sequence) and either refused with a
/// reason that names it, or applied. Returns the refusals; the indices of the
/// applied samples are appended to `applied`.
std::vector<rejection> apply_samples(twin_state& state, const model& m,
                                     std::string_view twin_id,
                                     const std::vector<sample>& batch,
                                     const std::vector<uint32_t>& indices,
                                     int64_t now_ms, const sample_limits& limits,
                                     std::vector<uint32_t>& applied);

/// The latest values of `state` that model `m` would refuse as samples
/// (outside a channel's range), each as "channel = value, outside [min, max]
/// unit". Used to warn when a new model version narrows a range below what
/// twins already hold; channels the model no longer has are not listed.
std::vector<std::string> values_outside(const twin_state& state, const model& m);

/// When the twin's data age counts from: the newest sample time it has seen
/// (a replayed or backfilled old sample does not make it younger), or, before
/// its first sample, when it was created. 0: not known (never stale).
inline int64_t data_since_ms(const twin_state& state) {
  return state.last_data_ms != 0 ? state.last_data_ms : state.created_ms;
}

/// Status from the model's rules on the latest values, or stale when the
/// data is older than the model's stale_after (see data_since_ms). Updates
/// status and score; returns true when the status changed.
bool evaluate_health(twin_state& state, const model& m, int64_t now_ms);

/// This twin's own part of its contribution: energy, stock, counts and, when
/// the model has channels, the twin itself in the health counts.
contribution own_contribution(const twin_state& state, const model& m,
                              std::string_view twin_id);

/// UTC day number of a timestamp.
inline int64_t utc_day(int64_t ms) {
  return ms >= 0 ? ms / 86'400'000 : (ms - 86'399'999) / 86'400'000;
}

} // namespace twinrt::twins

namespace twinrt::twins {

/// For a twin with children: recomputes its contribution as its own part
/// folded with each child's latest contribution (in child-id order, so the
/// result does not depend on arrival order), and its status as the worse of
/// its own rules and its worst twin below; the score is the mean below.
/// Bumps the version and returns true when anything changed.
bool refold(twin_state& state, const model& m, std::string_view twin_id,
            const std::map<std::string, contribution>& children, int64_t now_ms);

} // namespace twinrt::twins
