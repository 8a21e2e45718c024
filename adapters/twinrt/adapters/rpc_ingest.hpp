#pragma once

// Sends sample batches to a twinrt node over its operator API
// (schemas/rpc.capnp, Writer.ingest): used by `twinrt replay` and by the edge
// forwarder.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <kj/async.h>
#include <kj/timer.h>

#include "twinrt/twins/sample.hpp"

namespace twinrt::adapters {

/// How a batch fared, in the terms a sender acts on.
enum class batch_status : uint8_t {
  done,         // answered: `accepted` applied, `rejected` refused one by one
  disconnected, // no answer (connection lost or never made): reconnect and resend
  overloaded,   // refused whole, nothing applied: back off and resend
  failed,       // refused whole for another reason (`message` says why)
};

struct remote_rejection {
  uint32_t index = 0;  // position in the batch
  std::string reason;  // e.g. out_of_range, duplicate_sequence
  std::string message; // names the sample
};

struct batch_outcome {
  batch_status status = batch_status::done;
  std::string message; // why, when not done
  uint64_t accepted = 0;
  std::vector<remote_rejection> rejected;
};

/// How rpc_ingest reaches the node's operator API: plain, or over TLS
/// trusting `ca_file` (empty: the system's trust store) and checking the
/// certificate for `name` (empty: the HOST of the address).
struct rpc_transport {
  bool tls = false;
  std::string ca_file;
  std::string name;
};

/// One logged-in connection to a node, with its own kj event loop. Owned and
/// used by one thread (the one that constructed it); reconnects on demand.
class rpc_ingest {
public:
  /// `address` is HOST:PORT; `token` a write token of the node.
  rpc_ingest(std::string address, std::string token, rpc_transport transport = {});
  ~rpc_ingest();
  rpc_ingest(const rpc_ingest&) = delete;
  rpc_ingest& operator=(const rpc_ingest&) = delete;

  /// Connects and logs in, dropping any earlier connection. Returns "" on
  /// success, else the reason ("connect 127.0.0.1:7800: Connection refused",
  /// "permission denied: unknown token").
  std::string connect();
  bool connected() const;
  /// Drops the connection; batches in flight end as disconnected.
  void disconnect();

  /// Sends one batch. The promise never rejects: failures are in the outcome.
  /// Batches sent on one connection reach the node in the order they were sent.
  kj::Promise<batch_outcome> send(const std::vector<twins::sample>& batch);

  /// Sends the samples `batch[from, from + count)`.
  kj::Promise<batch_outcome> send(const std::vector<twins::sample>& batch, size_t from,
                                  size_t count);

  kj::WaitScope& wait_scope();
  kj::Timer& timer();

  /// Runs the event loop for `ms` milliseconds (batches in flight progress).
  void sleep_ms(int64_t ms);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::adapters
