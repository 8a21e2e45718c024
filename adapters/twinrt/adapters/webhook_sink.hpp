#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "twinrt/runtime/events.hpp"

namespace twinrt::adapters {

struct webhook_options {
  std::string url;           // http://host:port/path
  int64_t timeout_ms = 5'000; // per request, connecting included
};

/// An event sink that POSTs each batch of events as one JSON document,
/// `{"events":[<event>, ...]}` (each event as runtime::to_json writes it), to
/// a URL with libcurl. A 2xx answer confirms the whole batch; any other
/// status, a connection failure or a timeout is a failure the router retries.
/// Owned and called by one router thread; cancel() may come from any thread.
class webhook_sink : public runtime::event_sink {
public:
  explicit webhook_sink(webhook_options opts);
  ~webhook_sink() override;
  webhook_sink(const webhook_sink&) = delete;
  webhook_sink& operator=(const webhook_sink&) = delete;

  bool deliver(const std::vector<runtime::event>& events, std::string& error) override;
  void cancel() override { cancelled_ = true; }

  /// The request body for `events`.
  static std::string body(const std::vector<runtime::event>& events);

private:
  webhook_options opts_;
  void* curl_ = nullptr; // CURL*, kept so that connections are reused
  std::atomic<bool> cancelled_{false};
};

} // namespace twinrt::adapters
