#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "twinrt/cluster/etcd_client.hpp"
#include "twinrt/cluster/worker.hpp"

namespace twinrt::cluster::etcd {

/// A change of one key: a put (the key as it is now) or a delete (`kv`
/// carries the key and the delete's revision); `prev` is the key before.
struct watch_event {
  enum class kind { put, del };
  kind what = kind::put;
  kv current;
  std::optional<kv> prev;
};

/// Streams the changes of the keys in [key, range_end) from a revision on, in
/// revision order, each exactly once, on a thread of its own. When the
/// connection breaks (etcd restarted, a proxy closed it), it connects again
/// and asks for the revision after the last one it delivered, so nothing is
/// lost or repeated across reconnects. When etcd no longer keeps that
/// revision (compacted), it calls `on_error` with errc::compacted and stops:
/// the owner reads the keys again and starts a new watch from the read's
/// revision + 1.
class watch {
public:
  /// Called with the events of one revision range, in order, on the watch's thread.
  using events_handler = std::function<void(const std::vector<watch_event>&)>;
  using error_handler = std::function<void(const caf::error&)>;

  /// `start_revision` 0: from the store's revision when the watch is created.
  watch(std::string endpoint, std::string key, std::string range_end, int64_t start_revision,
        events_handler on_events, error_handler on_error = {});
  ~watch(); // stops and joins the thread
  watch(const watch&) = delete;
  watch& operator=(const watch&) = delete;

  /// The revision the watch asks for next when it (re)connects.
  int64_t next_revision() const { return next_revision_.load(); }
  /// How often the stream was opened (1 + reconnects).
  uint64_t connects() const { return connects_.load(); }
  /// True while a stream is open and etcd confirmed the watch.
  bool established() const { return established_.load(); }
  /// False once stopped for good (compacted, or the destructor runs).
  bool running() const { return !worker_.stopping(); }

private:
  void run();
  void handle_line(const std::string& line);

  std::string endpoint_, key_, range_end_;
  events_handler on_events_;
  error_handler on_error_;
  std::atomic<int64_t> next_revision_;
  std::atomic<uint64_t> connects_{0};
  std::atomic<bool> established_{false};
  std::string buffer_; // the incomplete line of the stream, watch thread only
  worker worker_;
};

} // namespace twinrt::cluster::etcd
