#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "twinrt/twins/alerts.hpp"
#include "twinrt/twins/analytics.hpp"

namespace twinrt::twins {

enum class channel_type { gauge, counter, state, movement };

/// What a movement channel does to the stock of the SKU it names.
enum class movement_effect { none, in, out, adjust };

struct channel_spec {
  std::string name;
  std::string unit;
  channel_type type = channel_type::gauge;
  double min = 0;
  double max = 0;
  movement_effect effect = movement_effect::none;
};

/// A threshold rule on one channel's latest value. Unset bounds do not apply.
struct health_rule {
  std::string channel;
  std::optional<double> warning_above, alarm_above;
  std::optional<double> warning_below, alarm_below;
  std::optional<double> warning_equals, alarm_equals;
};

/// Counts the twin as 1 in sum `count/<name>` while `channel == equals`.
struct count_rule {
  std::string name;
  std::string channel;
  double equals = 0;
};

/// What a kind estimates (`[analytics]` and `[low_stock]` of its model).
struct analytics_spec {
  std::vector<std::string> degradation_channels; // trended; thresholds from [[health]] alarms
  double trend_half_life_h = 12;
  rul_settings rul;
  std::string parts_channel;  // counter of parts made, handed up as sum `parts`
  std::string idle_channel;   // state channel; energy drawn while it equals
  double idle_equals = 0;     // idle_equals is handed up as sum `idle_energy_kwh`
  bool production = false;    // keeps production baselines from its rollup
  baseline_period baseline = baseline_period::hour_of_week;
  int64_t window_ms = 15 * 60 * 1000;
  std::optional<double> energy_waste_warning_pct;
  std::map<std::string, int64_t> low_stock; // SKU -> minimum units
};

/// A twin kind, parsed from a versioned model file under schemas/models/.
struct model {
  std::string kind;
  uint32_t version = 0;
  std::string description;
  std::vector<std::string> parents; // kinds allowed as rollup parent
  int64_t stale_after_ms = 0;       // 0: never turns stale
  bool export_metrics = false;
  std::map<std::string, channel_spec, std::less<>> channels;
  std::vector<health_rule> health;
  std::string power_channel;   // integrate kW into kWh
  std::string energy_channel;  // or take kWh from a counter
  std::vector<count_rule> counts;
  std::vector<alert_rule> alerts; // [[alerts]], plus the built-in "stale" rule
  analytics_spec analytics;
  std::string file_name;
  std::string text;

  /// The spec for a channel name as sent in a sample ("receipt/SKU-1" finds
  /// movement channel "receipt", with the SKU returned in `item`); nullptr
  /// when the model has no such channel.
  const channel_spec* find_channel(std::string_view sample_channel,
                                   std::string_view* item) const;
};

/// A model file that could not be used: which file, which line, and why.
struct model_error {
  std::string file;
  int64_t line = 0;
  std::string reason;
  std::string to_string() const;
};

/// Parses and validates one model file. The first problem found is returned
/// as a model_error naming the file and line.
std::variant<model, model_error> parse_model(std::string_view text,
                                             std::string file_name);

/// The models in force, by kind; each kind keeps its latest version.
/// Plain data: the owner decides who may read or replace it.
class model_set {
public:
  using model_ptr = std::shared_ptr<const model>;

  /// Adds or replaces a kind. Refuses (returns a reason) a version lower than
  /// the one in force; the same version with the same text is a no-op.
  std::optional<std::string> put(model m);

  model_ptr find(std::string_view kind) const;
  const std::map<std::string, model_ptr, std::less<>>& all() const {
    return by_kind_;
  }

private:
  std::map<std::string, model_ptr, std::less<>> by_kind_;
};

/// Parses every `*.toml` file in `dir` (sorted by name). All problems are
/// returned; an empty error list means every file parsed.
struct model_files {
  std::vector<model> models;
  std::vector<model_error> errors;
};
model_files load_model_dir(const std::string& dir);

/// Same for (file name, text) pairs, e.g. the models embedded in the binary.
model_files
load_model_texts(const std::vector<std::pair<std::string, std::string>>& files);

} // namespace twinrt::twins
