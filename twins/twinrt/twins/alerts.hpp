#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace twinrt::twins {

enum class severity : uint8_t { info = 0, warning = 1, critical = 2 };

std::string_view to_string(severity s);
/// "info", "warning" or "critical"; nullopt for anything else.
std::optional<severity> parse_severity(std::string_view s);

/// An alert rule of a model (`[[alerts]]`): the twin's value called `value`
/// (a channel, a derived value, `score`, `health`, `data_age_s` ...) breaches
/// when it is above `above` (or below `below`); a breach that lasts `hold_ms`
/// raises the alert, which clears only once the value is back at or past
/// `clear_at` (the hysteresis band; equal to the threshold when not set).
struct alert_rule {
  std::string name;
  std::string value;
  std::optional<double> above, below; // exactly one is set
  double clear_at = 0;
  int64_t hold_ms = 0;
  severity sev = severity::warning;
  std::string event = "alert"; // "alert" or "prediction": the events' type prefix
  std::string message;
  bool built_in = false;        // the staleness rule every kind with stale_after_s has

  bool breached(double v) const { return above ? v > *above : v < *below; }
  bool clear(double v) const { return above ? v <= clear_at : v >= clear_at; }
  bool operator==(const alert_rule& o) const;
};

/// Lifecycle of one rule's alert on one twin. `idle` covers "never raised" and
/// "cleared"; `pending` is a breach waiting out the hold time.
enum class alert_phase : uint8_t { idle = 0, pending = 1, raised = 2, acknowledged = 3 };

std::string_view to_string(alert_phase p);

/// Per-rule state, part of the twin's durable state.
struct alert_track {
  alert_phase phase = alert_phase::idle;
  int64_t since_ms = 0;   // pending: breach start; raised/acknowledged: raise time
  uint64_t alert_id = 0;  // of the alert raised (0 while idle or pending)
  double value = 0;       // the value when raised
  int64_t acked_ms = 0;
  std::string acked_by, note;

  bool operator==(const alert_track& o) const;
};

using alert_tracks = std::map<std::string, alert_track, std::less<>>;

/// What evaluate_alerts changed: a rule's alert was raised or cleared.
struct alert_transition {
  enum class what { raised, cleared } kind = what::raised;
  std::string rule;
  alert_track track; // the track as it was raised, or just before it cleared
  double value = 0;  // the value that caused the transition
};

/// Looks up a twin's named value; nullopt when it has none.
using value_lookup = std::function<std::optional<double>(std::string_view)>;

/// Runs every rule against the current values and updates `tracks`:
///   idle + breach -> pending (raised at once when hold_ms is 0);
///   pending + breach lasting hold_ms -> raised (a new id from `next_id`);
///   pending + no breach (or no value) -> idle, the hold starts over;
///   raised/acknowledged + value at or past clear_at -> cleared (idle);
///   a missing value leaves a raised alert as it is.
/// Tracks of rules no longer in `rules` are dropped: a raised one is reported
/// cleared. Returns the raises and clears in rule order.
std::vector<alert_transition> evaluate_alerts(alert_tracks& tracks,
                                              const std::vector<alert_rule>& rules,
                                              const value_lookup& value, int64_t now_ms,
                                              const std::function<uint64_t()>& next_id);

/// When a pending rule may raise at the latest (so the owner re-evaluates
/// then even without new data); max int64 when nothing is pending.
int64_t next_alert_check(const alert_tracks& tracks, const std::vector<alert_rule>& rules);

/// Marks the raised alert `alert_id` acknowledged by `by`. Returns the rule's
/// name, or nullopt when no raised alert of these tracks has that id (an
/// alert already acknowledged is acknowledged again with the new note).
std::optional<std::string> acknowledge_alert(alert_tracks& tracks, uint64_t alert_id,
                                             const std::string& by, const std::string& note,
                                             int64_t now_ms);

/// True when some rule waits out its hold time.
bool any_pending(const alert_tracks& tracks);

} // namespace twinrt::twins
