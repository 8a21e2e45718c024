#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "twinrt/runtime/change_feed.hpp"
#include "twinrt/runtime/event.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/rollup.hpp"

namespace twinrt::runtime {

// -- building events (the twin actor calls these) -------------------------------

/// The alert record of `rule`'s alert on a twin, from its track.
alert_record make_alert_record(const std::string& twin, const std::string& kind,
                               const twins::alert_rule& rule, const twins::alert_track& t,
                               twins::alert_phase state);
/// `<event>.raised|acknowledged|cleared` for an alert; details carry alert_id,
/// rule, value (the name), observed, threshold, clear_at, message, acked_by, note.
event make_alert_event(const alert_record& a, std::string_view what, double observed,
                       int64_t now_ms);
/// `health.changed` with details from, to, score; severity from the new status
/// (ok info, warning and stale warning, alarm critical).
event make_health_event(const std::string& twin, const std::string& kind,
                        twins::health_status from, twins::health_status to, double score,
                        int64_t now_ms);

// -- routing ------------------------------------------------------------------------

/// Where events go. Implementations live in adapters/ (webhook, MQTT); the
/// node's router calls one sink from one thread only.
class event_sink {
public:
  virtual ~event_sink() = default;
  /// Delivers `events` (ascending ids) and returns only once the receiver
  /// confirmed all of them: true. On a failure or timeout returns false and
  /// sets `error` to what went wrong; the router retries the same events
  /// later, so a receiver may see an event more than once (at-least-once;
  /// the id tells duplicates apart).
  virtual bool deliver(const std::vector<event>& events, std::string& error) = 0;
  /// Makes a deliver() in progress return soon (the node is stopping). Any thread.
  virtual void cancel() {}
};

/// Which events a route takes. Empty lists take any.
struct event_filter {
  std::vector<std::string> kinds;  // twin kinds
  std::string subtree;             // twin id at or below
  twins::severity min_severity = twins::severity::info;
  std::vector<std::string> types;  // "alert.raised" exactly, or "alert" for alert.*
  bool matches(const event& e) const;
};

struct sink_settings {
  std::string name;               // also the key of its cursor
  size_t max_batch = 100;         // events per deliver()
  int64_t backoff_min_ms = 200;   // first retry after a failure; doubles up to max
  int64_t backoff_max_ms = 10'000;
};

/// What a sink did, for metrics and tests (copied out).
struct sink_status {
  std::string name;
  uint64_t cursor = 0;       // last event id confirmed (or skipped by its routes)
  uint64_t delivered = 0;    // events confirmed since start
  uint64_t failures = 0;     // failed deliver() calls since start
  uint64_t lag = 0;          // durable events not yet past the cursor
  std::string last_error;
};

/// Reads the node's event log and feeds sinks. Each sink runs on a thread of
/// its own with its own cursor in RocksDB, advanced only after the sink
/// confirmed delivery; failures back off exponentially. So a slow or dead sink
/// delays only itself, and after a restart each sink carries on after its
/// cursor (nothing confirmed is lost; an unconfirmed batch is sent again).
/// Events older than every cursor and the newest `keep_events` are trimmed.
class event_router {
public:
  event_router(storage& db, uint64_t keep_events = 10'000);
  ~event_router();
  event_router(const event_router&) = delete;
  event_router& operator=(const event_router&) = delete;

  /// Adds a sink and the routes that feed it (an event goes when any route
  /// matches). After start() its thread starts at once.
  void add_sink(sink_settings settings, std::unique_ptr<event_sink> sink,
                std::vector<event_filter> routes);
  void start();
  /// Stops every sink thread (a deliver() in progress is cancelled). Idempotent.
  void stop();
  std::vector<sink_status> status() const;

private:
  struct sink_slot;
  void run(sink_slot& s);
  void maybe_trim();

  storage& db_;
  uint64_t keep_events_;
  mutable std::mutex sinks_mtx_;
  std::vector<std::unique_ptr<sink_slot>> sinks_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};
  std::mutex trim_mtx_;
  std::condition_variable trim_cv_; // wakes the trimmer and backoff waits at stop
  uint64_t trimmed_below_ = 0;
  std::thread trimmer_;
};

} // namespace twinrt::runtime
