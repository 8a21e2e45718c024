#pragma once
// The byte stream under our MQTT client: TCP, or TLS over TCP (OpenSSL) to an
// mqtts:// broker. Non-blocking once open; the client's I/O thread polls fd().

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "twinrt/runtime/config.hpp"

namespace twinrt::adapters::mqtt {

/// The CA, client certificate and name rules of one client, loaded once and
/// shared by its connections.
class tls_context;

/// Loads the files of `settings`, read from the config section `section`
/// ("mqtt.tls"). Fails with errc::bad_request naming the key, the file and
/// OpenSSL's reason: "cannot read mqtt.tls.ca /etc/ca.pem".
caf::expected<std::shared_ptr<const tls_context>>
make_tls_context(const runtime::node_config::broker_tls& settings, const std::string& section);

/// Why a connection attempt failed; counted by adapters as the `reason` label.
enum class connect_failure : uint8_t {
  unreachable,    // no TCP connection (refused, no route, no answer within 5 s)
  tls_verify,     // the broker's certificate is not trusted or does not carry the name
  tls_handshake,  // TLS failed otherwise (e.g. the broker wants a client certificate)
  refused,        // the broker answered CONNECT with a refusal (CONNACK code)
  no_connack,     // the connection closed or stayed silent before a CONNACK
};
const char* to_string(connect_failure why);

class transport {
public:
  /// Connects to host:port (and completes the TLS handshake when `tls` is set),
  /// giving up when `stopping` turns true. On failure returns null and sets
  /// `why` and `error` ("TLS: the broker's certificate is not trusted: ...").
  static std::unique_ptr<transport> open(const std::string& host, uint16_t port,
                                         const std::shared_ptr<const tls_context>& tls,
                                         const std::atomic<bool>& stopping,
                                         connect_failure& why, std::string& error);
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  int fd() const { return fd_; }
  bool tls() const;
  /// Bytes read (> 0); 0: none now (poll, see wants_write); -1: closed or broken (error()).
  long read(char* p, size_t n);
  /// Bytes written (> 0); 0: not now (poll); -1: broken (error()).
  long write(const char* p, size_t n);
  /// Decrypted bytes waiting inside the TLS layer: read them without polling.
  bool buffered() const;
  /// The TLS layer needs the socket writable to go on (poll for POLLOUT too).
  bool wants_write() const { return want_write_; }
  /// Why the last read or write returned -1.
  const std::string& error() const { return error_; }
  /// True when that failure was a TLS alert or error (not a plain close).
  bool tls_failed() const { return tls_failed_; }

  /// Blocking helpers for the CONNECT/CONNACK exchange and the final DISCONNECT.
  bool write_all(const std::string& data, int64_t timeout_ms, const std::atomic<bool>& stopping);
  bool read_exact(char* p, size_t n, int64_t timeout_ms, const std::atomic<bool>& stopping);

private:
  struct ssl_state;
  transport(int fd, std::unique_ptr<ssl_state> ssl);
  int fd_ = -1;
  std::unique_ptr<ssl_state> ssl_;
  bool want_write_ = false;
  bool tls_failed_ = false;
  std::string error_;
};

} // namespace twinrt::adapters::mqtt
