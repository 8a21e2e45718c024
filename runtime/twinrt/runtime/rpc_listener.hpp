#pragma once

// The connections of the operator API: accepting them (over TLS when
// configured), the limits each one lives under, and closing those that never
// log in. rpc_server.cpp gives it a bootstrap capability per connection and (with
// rpc/) wraps each capability it hands out in call_limited<>. Everything here runs
// on the server's event loop thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <capnp/capability.h>
#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <caf/error.hpp>

#include "twinrt/runtime/errc.hpp"

namespace kj {
class TlsContext;
struct TlsKeypair;
}

namespace twinrt::runtime {

class runtime_probe;

/// The limits and transport of the operator API, from [rpc] and [rpc.tls].
struct rpc_listen_settings {
  std::string certificate_file; // PEM chain; with private_key_file: TLS
  std::string private_key_file;
  bool plaintext = false;       // allowed without TLS on a non-loopback address
  uint32_t max_connections = 256;
  uint32_t max_calls_in_flight = 64; // per connection
  uint64_t max_message_bytes = 64ull << 20;
  int64_t login_timeout_ms = 10'000;

  bool tls() const { return !certificate_file.empty(); }
};

/// Whether `host` (of a HOST:PORT) names this machine only: 127.0.0.0/8,
/// ::1, localhost.
bool is_loopback_host(const std::string& host);

/// Nothing when the API may be served on `host` with `s`, else
/// errc::bad_request saying why: plaintext on a non-loopback address needs
/// rpc.plaintext = true.
caf::error check_transport(const std::string& address, const std::string& host,
                           const rpc_listen_settings& s);

/// One accepted connection, as the capabilities it serves see it.
struct connection_state {
  std::string peer;        // the client's address, without its port
  bool logged_in = false;  // a login succeeded on it
  uint32_t calls_in_flight = 0;
  uint32_t max_calls_in_flight = 0;
  std::atomic<int64_t>* refused_calls = nullptr; // twinrt_rpc_calls_refused_total
};

/// A capability `Impl` whose calls count against its connection's
/// max_calls_in_flight: one call more is answered at once with an
/// OVERLOADED error (not queued); a call's slot is free when it is answered
/// or cancelled (its caller gives up or goes away: every call may be
/// cancelled).
template <class Impl>
class call_limited final : public Impl {
public:
  template <class... Args>
  explicit call_limited(std::shared_ptr<connection_state> conn, Args&&... args)
    : Impl(std::forward<Args>(args)...), conn_(std::move(conn)) {}

  capnp::Capability::Server::DispatchCallResult
  dispatchCall(uint64_t interface_id, uint16_t method_id,
               capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> ctx) override {
    auto& c = *conn_;
    if (c.calls_in_flight >= c.max_calls_in_flight) {
      if (c.refused_calls)
        c.refused_calls->fetch_add(1, std::memory_order_relaxed);
      return {kj::Promise<void>(kj::Exception(
                kj::Exception::Type::OVERLOADED, __FILE__, __LINE__,
                kj::str("overloaded: this connection has ", c.calls_in_flight,
                        " calls in flight, the most rpc.max_calls_in_flight allows; wait for "
                        "answers before sending more"))),
              false};
    }
    ++c.calls_in_flight;
    // A caller that gives up (or goes away) gets its slot back at once,
    // rather than when the call would have ended (a Subscription.ended()
    // ends only with the subscription).
    ctx.allowCancellation();
    auto release = kj::defer([conn = conn_] { --conn->calls_in_flight; });
    auto r = Impl::dispatchCall(interface_id, method_id, ctx);
    r.promise = r.promise.attach(kj::mv(release));
    return r;
  }

private:
  std::shared_ptr<connection_state> conn_;
};

/// Accepts connections on `receiver` and serves each with the capability
/// `bootstrap` makes for it, under `settings`: TLS when configured (a
/// handshake must finish within login_timeout_ms); at most max_connections
/// at once (the next ones are told "overloaded" at login and closed); messages
/// of at most max_message_bytes (a larger one ends its connection with
/// "Message is too large"); a connection closed after login_timeout_ms unless
/// it logged in. Counts in the probe's adapter series (metrics.cpp lists them).
class rpc_listener : private kj::TaskSet::ErrorHandler {
public:
  using bootstrap_factory = std::function<capnp::Capability::Client(std::shared_ptr<connection_state>)>;

  /// Throws kj::Exception naming the file when the certificate or key cannot
  /// be read or parsed.
  rpc_listener(kj::Timer& timer, rpc_listen_settings settings, runtime_probe& probe,
               bootstrap_factory bootstrap);
  ~rpc_listener() noexcept(false);

  /// Accepts until the promise is dropped or accepting fails.
  kj::Promise<void> listen(kj::ConnectionReceiver& receiver);

private:
  void taskFailed(kj::Exception&& e) override;
  kj::Promise<void> serve(kj::Own<kj::AsyncIoStream> stream);
  kj::Promise<void> serve_rpc(kj::Own<kj::AsyncIoStream> stream, std::shared_ptr<connection_state> st,
                              bool refusing);

  kj::Timer& timer_;
  rpc_listen_settings settings_;
  bootstrap_factory bootstrap_;
  kj::Own<kj::TlsKeypair> keypair_; // outlives tls_, which refers to it
  kj::Own<kj::TlsContext> tls_;
  uint32_t open_ = 0;     // connections served
  uint32_t refusing_ = 0; // connections over the limit, told so before they close
  std::atomic<int64_t>& connections_;
  std::atomic<int64_t>& refused_limit_;
  std::atomic<int64_t>& refused_calls_;
  std::atomic<int64_t>& closed_login_timeout_;
  std::atomic<int64_t>& tls_failures_;
  kj::TaskSet tasks_;
};

} // namespace twinrt::runtime
