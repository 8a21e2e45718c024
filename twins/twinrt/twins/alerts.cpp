#include "twinrt/twins/alerts.hpp"

#include <algorithm>

namespace twinrt::twins {

std::string_view to_string(severity s) {
  switch (s) {
    case severity::info: return "info";
    case severity::warning: return "warning";
    case severity::critical: return "critical";
  }
  return "warning";
}

std::optional<severity> parse_severity(std::string_view s) {
  if (s == "info")
    return severity::info;
  if (s == "warning")
    return severity::warning;
  if (s == "critical")
    return severity::critical;
  return std::nullopt;
}

std::string_view to_string(alert_phase p) {
  switch (p) {
    case alert_phase::idle: return "cleared";
    case alert_phase::pending: return "pending";
    case alert_phase::raised: return "raised";
    case alert_phase::acknowledged: return "acknowledged";
  }
  return "cleared";
}

bool alert_rule::operator==(const alert_rule& o) const {
  return name == o.name && value == o.value && above == o.above && below == o.below
         && clear_at == o.clear_at && hold_ms == o.hold_ms && sev == o.sev && event == o.event
         && message == o.message && built_in == o.built_in;
}

bool alert_track::operator==(const alert_track& o) const {
  return phase == o.phase && since_ms == o.since_ms && alert_id == o.alert_id
         && value == o.value && acked_ms == o.acked_ms && acked_by == o.acked_by
         && note == o.note;
}

namespace {

bool is_open(alert_phase p) {
  return p == alert_phase::raised || p == alert_phase::acknowledged;
}

} // namespace

std::vector<alert_transition> evaluate_alerts(alert_tracks& tracks,
                                              const std::vector<alert_rule>& rules,
                                              const value_lookup& value, int64_t now_ms,
                                              const std::function<uint64_t()>& next_id) {
  std::vector<alert_transition> out;
  // Rules that left the model: their open alerts clear, their tracks go.
  for (auto i = tracks.begin(); i != tracks.end();) {
    bool known = std::any_of(rules.begin(), rules.end(),
                             [&](const alert_rule& r) { return r.name == i->first; });
    if (known) {
      ++i;
      continue;
    }
    if (is_open(i->second.phase))
      out.push_back({alert_transition::what::cleared, i->first, i->second, i->second.value});
    i = tracks.erase(i);
  }
  for (auto& rule : rules) {
    auto v = value(rule.value);
    auto t = tracks.find(rule.name);
    auto phase = t == tracks.end() ? alert_phase::idle : t->second.phase;
    if (!v) {
      if (phase == alert_phase::pending)
        tracks.erase(t);
      continue;
    }
    switch (phase) {
      case alert_phase::idle:
        if (!rule.breached(*v))
          break;
        t = tracks.insert_or_assign(rule.name, alert_track{}).first;
        t->second.phase = alert_phase::pending;
        t->second.since_ms = now_ms;
        [[fallthrough]];
      case alert_phase::pending:
        if (!rule.breached(*v)) {
          tracks.erase(t);
          break;
        }
        if (now_ms - t->second.since_ms < rule.hold_ms)
          break;
        t->second = alert_track{};
        t->second.phase = alert_phase::raised;
        t->second.since_ms = now_ms;
        t->second.alert_id = next_id();
        t->second.value = *v;
        out.push_back({alert_transition::what::raised, rule.name, t->second, *v});
        break;
      case alert_phase::raised:
      case alert_phase::acknowledged:
        if (!rule.clear(*v))
          break;
        out.push_back({alert_transition::what::cleared, rule.name, t->second, *v});
        tracks.erase(t);
        break;
    }
  }
  return out;
}

int64_t next_alert_check(const alert_tracks& tracks, const std::vector<alert_rule>& rules) {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (auto& rule : rules) {
    auto t = tracks.find(rule.name);
    if (t != tracks.end() && t->second.phase == alert_phase::pending)
      next = std::min(next, t->second.since_ms + rule.hold_ms);
  }
  return next;
}

std::optional<std::string> acknowledge_alert(alert_tracks& tracks, uint64_t alert_id,
                                             const std::string& by, const std::string& note,
                                             int64_t now_ms) {
  for (auto& [name, t] : tracks) {
    if (t.alert_id != alert_id || !is_open(t.phase))
      continue;
    t.phase = alert_phase::acknowledged;
    t.acked_ms = now_ms;
    t.acked_by = by;
    t.note = note;
    return name;
  }
  return std::nullopt;
}

bool any_pending(const alert_tracks& tracks) {
  return std::any_of(tracks.begin(), tracks.end(),
                     [](auto& t) { return t.second.phase == alert_phase::pending; });
}

} // namespace twinrt::twins
