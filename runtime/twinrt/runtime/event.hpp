#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "twinrt/twins/alerts.hpp"

namespace twinrt::runtime {

/// Something that happened to a twin and is routed to sinks: an alert raised,
/// acknowledged or cleared (`alert.*`, or `prediction.*` for rules declared
/// with event = "prediction"), or a health transition (`health.changed`).
/// Plain data. `id` is 0 until the committer stores it; from then on it is
/// unique and grows in the order events became durable.
struct event {
  uint64_t id = 0;
  std::string type;
  std::string twin;
  std::string kind;
  twins::severity sev = twins::severity::info;
  int64_t ts_ms = 0;
  std::string details; // a JSON object

  bool operator==(const event& o) const {
    return id == o.id && type == o.type && twin == o.twin && kind == o.kind && sev == o.sev
           && ts_ms == o.ts_ms && details == o.details;
  }
};

/// The JSON a sink sends for one event:
/// {"id":..,"type":..,"twin":..,"kind":..,"severity":..,"time_ms":..,"time":"ISO-8601",
///  "details":{..}}
std::string to_json(const event& e);

/// An alert as operators list it (key 'A' + id). `state` is raised,
/// acknowledged or cleared (alert_phase::idle).
struct alert_record {
  uint64_t id = 0;
  std::string twin, kind, rule, value, message;
  std::string event = "alert";
  twins::severity sev = twins::severity::warning;
  twins::alert_phase state = twins::alert_phase::raised;
  int64_t raised_ms = 0;
  double raised_value = 0;
  int64_t acked_ms = 0;
  std::string acked_by, note;
  int64_t cleared_ms = 0;
  double cleared_value = 0;
};

} // namespace twinrt::runtime
