#pragma once

// The crash loop's own client of a node's operator API (schemas/rpc.capnp):
// the checker sees the node only through it.

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <kj/async-io.h>

#include "ack_log.hpp"

namespace twinrt::crash_loop {

/// How a call failed, in the terms the checker acts on (as KJ classifies it).
enum class failure : uint8_t {
  none,
  disconnected, // no answer: the connection is gone (the node died, or never listened)
  overloaded,   // refused whole, nothing done: back off and send again
  failed,       // refused for another reason: the message says why
};

template <class T>
struct answer {
  std::optional<T> value;
  failure why = failure::none;
  std::string message;

  explicit operator bool() const { return value.has_value(); }
  T& operator*() { return *value; }
  T* operator->() { return &*value; }
};

struct done {};

struct node_status {
  uint64_t twins = 0;
  int64_t active_twins = 0;
};

/// A twin as Reader.get answers it, reduced to what the checks compare.
struct twin_snapshot {
  std::string id, kind, parent;
  uint32_t children = 0;
  std::map<std::string, double> sums;   // rollup sums: stock/SKU, count/NAME, power_kw ...
  std::array<int64_t, 4> counts{};      // rollup health counts: ok, warning, alarm, stale
  double score = 0;                     // rollup mean score
  std::string worst_id;
  int worst_health = 0;
  std::map<std::string, int64_t> stock; // own stock per SKU
  std::map<std::string, point> channels; // latest value and its time per channel
};

struct refusal {
  uint32_t index = 0;
  std::string reason;
  std::string message;
};

struct ingest_answer {
  uint64_t accepted = 0;
  std::vector<refusal> refused;
};

/// One connection to a node, logged in twice: with a write token (reads,
/// ingest, reparent, create) and an admin token (loadModels). Every call
/// waits for its answer at most `call_timeout`. Owned and used by the thread
/// that runs `io`'s event loop.
class node_client {
public:
  node_client(kj::AsyncIoContext& io, std::chrono::milliseconds call_timeout);
  ~node_client();
  node_client(const node_client&) = delete;
  node_client& operator=(const node_client&) = delete;

  /// Connects to HOST:PORT and logs in with both tokens, dropping any
  /// earlier connection. Fails as `disconnected` when nothing listens yet.
  answer<done> connect(const std::string& address, const std::string& write_token,
                       const std::string& admin_token);
  /// Drops the connection and every call still waiting for an answer.
  void disconnect();

  answer<node_status> status();
  answer<twin_snapshot> get(const std::string& id);
  /// Raw points of a channel from `from_ms` on, oldest first.
  answer<std::vector<point>> history(const std::string& id, const std::string& channel,
                                     int64_t from_ms);
  /// kind -> version in force.
  answer<std::map<std::string, uint32_t>> models();
  answer<done> create(const std::string& id, const std::string& kind, const std::string& parent);
  answer<done> reparent(const std::string& id, const std::string& parent);
  /// The node's refusals ("file:line: reason"); empty when it took the files.
  answer<std::vector<std::string>> load_models(
    const std::vector<std::pair<std::string, std::string>>& files);
  answer<ingest_answer> ingest(const batch& b);

  // Sent without waiting for the answer, which may never come (the node is
  // killed): `pump` runs the event loop so that the request goes out.
  void send_ingest(const batch& b);
  void send_reparent(const std::string& id, const std::string& parent);
  void send_load_models(const std::vector<std::pair<std::string, std::string>>& files);
  /// Runs the event loop for `d` (requests go out, answers come in).
  void pump(std::chrono::microseconds d);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::crash_loop
