#include "twinrt/runtime/events.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

namespace twinrt::runtime {

namespace {

std::string iso_time(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(((ms % 1000) + 1000) % 1000));
  return buf;
}

} // namespace

std::string to_json(const event& e) {
  nlohmann::json j;
  j["id"] = e.id;
  j["type"] = e.type;
  j["twin"] = e.twin;
  j["kind"] = e.kind;
  j["severity"] = std::string(twins::to_string(e.sev));
  j["time_ms"] = e.ts_ms;
  j["time"] = iso_time(e.ts_ms);
  auto details = nlohmann::json::parse(e.details, nullptr, false);
  j["details"] = details.is_discarded() ? nlohmann::json::object() : details;
  return j.dump();
}

alert_record make_alert_record(const std::string& twin, const std::string& kind,
                               const twins::alert_rule& rule, const twins::alert_track& t,
                               twins::alert_phase state) {
  alert_record a;
  a.id = t.alert_id;
  a.twin = twin;
  a.kind = kind;
  a.rule = rule.name;
  a.value = rule.value;
  a.message = rule.message;
  a.event = rule.event;
  a.sev = rule.sev;
  a.state = state;
  a.raised_ms = t.since_ms;
  a.raised_value = t.value;
  a.acked_ms = t.acked_ms;
  a.acked_by = t.acked_by;
  a.note = t.note;
  return a;
}

event make_alert_event(const alert_record& a, std::string_view what, double observed,
                       int64_t now_ms) {
  nlohmann::json d;
  d["alert_id"] = a.id;
  d["rule"] = a.rule;
  d["value"] = a.value;
  d["observed"] = observed;
  d["message"] = a.message;
  d["raised_ms"] = a.raised_ms;
  if (!a.acked_by.empty()) {
    d["acked_by"] = a.acked_by;
    d["note"] = a.note;
  }
  event e;
  e.type = a.event + "." + std::string(what);
  e.twin = a.twin;
  e.kind = a.kind;
  e.sev = a.sev;
  e.ts_ms = now_ms;
  e.details = d.dump();
  return e;
}

event make_health_event(const std::string& twin, const std::string& kind,
                        twins::health_status from, twins::health_status to, double score,
                        int64_t now_ms) {
  nlohmann::json d;
  d["from"] = twins::to_string(from);
  d["to"] = twins::to_string(to);
  d["score"] = score;
  event e;
  e.type = "health.changed";
  e.twin = twin;
  e.kind = kind;
  e.sev = to == twins::health_status::alarm     ? twins::severity::critical
          : to == twins::health_status::ok      ? twins::severity::info
                                                : twins::severity::warning;
  e.ts_ms = now_ms;
  e.details = d.dump();
  return e;
}

bool event_filter::matches(const event& e) const {
  if (!kinds.empty() && std::find(kinds.begin(), kinds.end(), e.kind) == kinds.end())
    return false;
  if (!in_subtree(e.twin, subtree))
    return false;
  if (e.sev < min_severity)
    return false;
  if (types.empty())
    return true;
  for (auto& t : types) {
    if (e.type == t)
      return true;
    if (e.type.size() > t.size() && e.type.compare(0, t.size(), t) == 0
        && e.type[t.size()] == '.')
      return true;
  }
  return false;
}

// -- the router -----------------------------------------------------------------------

struct event_router::sink_slot {
  sink_settings settings;
  std::unique_ptr<event_sink> sink;
  std::vector<event_filter> routes;
  std::thread thread;
  std::atomic<uint64_t> cursor{0}, delivered{0}, failures{0};
  mutable std::mutex mtx;
  std::string last_error;

  bool wants(const event& e) const {
    return std::any_of(routes.begin(), routes.end(),
                       [&](const event_filter& f) { return f.matches(e); });
  }
};

event_router::event_router(storage& db, uint64_t keep_events)
  : db_(db), keep_events_(keep_events) {}

event_router::~event_router() {
  stop();
}

void event_router::add_sink(sink_settings settings, std::unique_ptr<event_sink> sink,
                            std::vector<event_filter> routes) {
  auto s = std::make_unique<sink_slot>();
  s->cursor = db_.load_cursor(settings.name);
  s->settings = std::move(settings);
  s->sink = std::move(sink);
  s->routes = std::move(routes);
  std::lock_guard<std::mutex> g(sinks_mtx_);
  if (started_ && !stopping_)
    s->thread = std::thread([this, p = s.get()] { run(*p); });
  sinks_.push_back(std::move(s));
}

void event_router::start() {
  std::lock_guard<std::mutex> g(sinks_mtx_);
  started_ = true;
  for (auto& s : sinks_)
    s->thread = std::thread([this, p = s.get()] { run(*p); });
  trimmer_ = std::thread([this] {
    while (!stopping_) {
      maybe_trim();
      std::unique_lock<std::mutex> g(trim_mtx_);
      trim_cv_.wait_for(g, std::chrono::seconds(5), [this] { return stopping_.load(); });
    }
  });
}

void event_router::stop() {
  if (stopping_.exchange(true))
    return;
  db_.stop_waiters();
  std::vector<sink_slot*> all;
  {
    std::lock_guard<std::mutex> g(sinks_mtx_); // add_sink starts no thread from now on
    for (auto& s : sinks_)
      all.push_back(s.get());
  }
  for (auto* s : all)
    s->sink->cancel();
  {
    std::lock_guard<std::mutex> g(trim_mtx_);
  }
  trim_cv_.notify_all();
  for (auto* s : all)
    if (s->thread.joinable())
      s->thread.join();
  if (trimmer_.joinable())
    trimmer_.join();
}

std::vector<sink_status> event_router::status() const {
  std::vector<sink_status> out;
  auto durable = db_.durable_event_id();
  std::lock_guard<std::mutex> g(sinks_mtx_);
  for (auto& s : sinks_) {
    sink_status st;
    st.name = s->settings.name;
    st.cursor = s->cursor.load();
    st.delivered = s->delivered.load();
    st.failures = s->failures.load();
    st.lag = durable > st.cursor ? durable - st.cursor : 0;
    {
      std::lock_guard<std::mutex> g(s->mtx);
      st.last_error = s->last_error;
    }
    out.push_back(std::move(st));
  }
  return out;
}

void event_router::maybe_trim() {
  uint64_t durable = db_.durable_event_id();
  uint64_t below = durable > keep_events_ ? durable - keep_events_ + 1 : 0;
  {
    std::lock_guard<std::mutex> g(sinks_mtx_);
    for (auto& s : sinks_)
      below = std::min(below, s->cursor.load() + 1);
  }
  below = std::min(below, durable); // the last event stays: ids go on from it after a restart
  if (below > trimmed_below_ + 1) {
    db_.trim_events(below);
    trimmed_below_ = below;
  }
}

void event_router::run(sink_slot& s) {
  auto save_cursor = [&](uint64_t id) {
    auto wb = db_.new_batch();
    wb.put_cursor(s.settings.name, id);
    // A cursor that could not be saved (the storage failed) only means
    // these events go out again after the restart: delivery is at least once.
    (void)db_.commit_and_wait(std::move(wb));
    s.cursor = id;
  };
  int64_t backoff = s.settings.backoff_min_ms;
  uint64_t saved = s.cursor.load();
  while (!stopping_) {
    auto cursor = s.cursor.load();
    auto page = db_.read_events(cursor, std::max<size_t>(s.settings.max_batch * 4, 256));
    auto& events = page.events;
    if (events.empty() && page.last_id > cursor) {
      s.cursor = page.last_id; // only corrupt events, refused: past them
      continue;
    }
    if (events.empty()) {
      if (saved != cursor) // skipped events: remember so, once idle
        save_cursor(cursor), saved = cursor;
      db_.wait_for_events(cursor, std::chrono::seconds(1));
      continue;
    }
    std::vector<event> batch;
    uint64_t upto = cursor;
    bool full = false;
    for (auto& e : events) {
      auto id = e.id;
      if (s.wants(e)) {
        if (batch.size() == s.settings.max_batch) {
          full = true;
          break;
        }
        batch.push_back(std::move(e));
      }
      upto = id;
    }
    if (!full)
      upto = page.last_id; // corrupt events after the last good one are passed too
    if (batch.empty()) {
      s.cursor = upto; // nothing for this sink; saved once idle
      continue;
    }
    std::string error;
    if (s.sink->deliver(batch, error)) {
      save_cursor(upto);
      saved = upto;
      s.delivered += batch.size();
      backoff = s.settings.backoff_min_ms;
      continue;
    }
    if (stopping_)
      break;
    s.failures++;
    {
      std::lock_guard<std::mutex> g(s.mtx);
      s.last_error = error;
    }
    std::unique_lock<std::mutex> g(trim_mtx_);
    trim_cv_.wait_for(g, std::chrono::milliseconds(backoff), [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, s.settings.backoff_max_ms);
  }
}

} // namespace twinrt::runtime
