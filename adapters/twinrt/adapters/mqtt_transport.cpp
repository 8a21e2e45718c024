#include "twinrt/adapters/mqtt_transport.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "twinrt/runtime/errc.hpp"

namespace twinrt::adapters::mqtt {

namespace {

using clock = std::chrono::steady_clock;

// The reason of the oldest queued OpenSSL error ("certificate verify failed"),
// or `fallback` when the queue is empty. Empties the queue.
std::string openssl_reason(const char* fallback) {
  unsigned long e = ERR_get_error();
  std::string out;
  if (e == 0) {
    out = fallback;
  } else if (auto r = ERR_reason_error_string(e)) {
    out = r;
  } else {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = buf;
  }
  ERR_clear_error();
  return out;
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Waits up to 100 ms for `events` on fd.
void wait_fd(int fd, short events) {
  pollfd p{fd, events, 0};
  ::poll(&p, 1, 100);
}

} // namespace

class tls_context {
public:
  explicit tls_context(runtime::node_config::broker_tls s) : settings(std::move(s)) {}
  ~tls_context() {
    if (ctx != nullptr)
      SSL_CTX_free(ctx);
  }
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  runtime::node_config::broker_tls settings;
  SSL_CTX* ctx = nullptr;
};

caf::expected<std::shared_ptr<const tls_context>>
make_tls_context(const runtime::node_config::broker_tls& settings, const std::string& section) {
  auto fail = [&](std::string what) {
    return runtime::make_error(runtime::errc::bad_request, section + ": " + std::move(what));
  };
  for (auto [file, key] : {std::pair{&settings.ca, "ca"}, std::pair{&settings.certificate, "certificate"},
                           std::pair{&settings.private_key, "private_key"}})
    if (!file->empty() && !std::ifstream(*file).good())
      return runtime::make_error(runtime::errc::bad_request,
                                 "cannot read " + section + "." + key + " " + *file);
  auto c = std::make_shared<tls_context>(settings);
  ERR_clear_error();
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (c->ctx == nullptr)
    return fail(openssl_reason("cannot create an OpenSSL context"));
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, nullptr);
  if (!settings.ca.empty()) {
    if (SSL_CTX_load_verify_locations(c->ctx, settings.ca.c_str(), nullptr) != 1)
      return fail("no CA certificate in " + settings.ca + ": " + openssl_reason("unreadable"));
  } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
    return fail("cannot load the system's trust store: " + openssl_reason("unknown"));
  }
  if (!settings.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c->ctx, settings.certificate.c_str()) != 1)
      return fail("no certificate in " + settings.certificate + ": " + openssl_reason("unreadable"));
    if (SSL_CTX_use_PrivateKey_file(c->ctx, settings.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("no private key in " + settings.private_key + ": " + openssl_reason("unreadable"));
    if (SSL_CTX_check_private_key(c->ctx) != 1)
      return fail("the private key " + settings.private_key + " does not match the certificate "
                  + settings.certificate);
  }
  return std::shared_ptr<const tls_context>(std::move(c));
}

const char* to_string(connect_failure why) {
  switch (why) {
    case connect_failure::unreachable:
      return "unreachable";
    case connect_failure::tls_verify:
      return "tls_verify";
    case connect_failure::tls_handshake:
      return "tls_handshake";
    case connect_failure::refused:
      return "refused";
    case connect_failure::no_connack:
      return "no_connack";
  }
  return "unknown";
}

struct transport::ssl_state {
  std::shared_ptr<const tls_context> context;
  SSL* ssl = nullptr;
  ~ssl_state() {
    if (ssl != nullptr)
      SSL_free(ssl);
  }
};

transport::transport(int fd, std::unique_ptr<ssl_state> ssl) : fd_(fd), ssl_(std::move(ssl)) {}

transport::~transport() {
  if (ssl_ && ssl_->ssl != nullptr)
    SSL_shutdown(ssl_->ssl); // one close_notify, not waiting for the broker's
  ssl_.reset();
  if (fd_ >= 0)
    ::close(fd_);
}

bool transport::tls() const { return ssl_ != nullptr; }

namespace {

// A TCP connection to host:port within 5 s, non-blocking; -1 with `error` set.
int open_socket(const std::string& host, uint16_t port, const std::atomic<bool>& stopping,
                std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    error = std::string("cannot resolve ") + host + ": " + ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  error = "no address";
  for (auto a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
      continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    auto deadline = clock::now() + std::chrono::seconds(5);
    int err = ETIMEDOUT;
    while (!stopping.load() && clock::now() < deadline) {
      if (::poll(&p, 1, 100) > 0) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        break;
      }
    }
    if (err != 0) {
      error = std::strerror(err);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

// A hint after a TLS failure the broker reported with an alert.
std::string alert_hint(const std::string& reason, const runtime::node_config::broker_tls& s) {
  bool about_certificate = reason.find("certificate required") != std::string::npos
                           || reason.find("handshake failure") != std::string::npos
                           || reason.find("bad certificate") != std::string::npos;
  if (about_certificate && s.certificate.empty())
    return " (the broker may require a client certificate: set certificate and private_key)";
  if (reason.find("unknown ca") != std::string::npos)
    return " (the broker does not trust the client certificate " + s.certificate + ")";
  return {};
}

} // namespace

std::unique_ptr<transport> transport::open(const std::string& host, uint16_t port,
                                           const std::shared_ptr<const tls_context>& tls,
                                           const std::atomic<bool>& stopping,
                                           connect_failure& why, std::string& error) {
  std::string where = host + ":" + std::to_string(port);
  std::string reason;
  int fd = open_socket(host, port, stopping, reason);
  if (fd < 0) {
    why = connect_failure::unreachable;
    error = "connect " + where + ": " + reason;
    return nullptr;
  }
  if (!tls)
    return std::unique_ptr<transport>(new transport(fd, nullptr));
  auto st = std::make_unique<ssl_state>();
  st->context = tls;
  auto& s = tls->settings;
  ERR_clear_error();
  st->ssl = SSL_new(tls->ctx);
  if (st->ssl == nullptr || SSL_set_fd(st->ssl, fd) != 1) {
    ::close(fd);
    why = connect_failure::tls_handshake;
    error = "TLS with " + where + ": " + openssl_reason("cannot create a TLS session");
    return nullptr;
  }
  const std::string& name = s.server_name.empty() ? host : s.server_name;
  if (!is_ip_literal(name))
    SSL_set_tlsext_host_name(st->ssl, name.c_str());
  if (s.verify_server_name) {
    if (is_ip_literal(name))
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(st->ssl), name.c_str());
    else
      SSL_set1_host(st->ssl, name.c_str());
  }
  auto deadline = clock::now() + std::chrono::seconds(10);
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(st->ssl);
    if (r == 1)
      break;
    int e = SSL_get_error(st->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !stopping.load()
        && clock::now() < deadline) {
      wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
      continue;
    }
    why = connect_failure::tls_handshake;
    long v = SSL_get_verify_result(st->ssl);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      reason = "no TLS handshake within 10 s";
    } else if (e == SSL_ERROR_SSL && v != X509_V_OK) {
      why = connect_failure::tls_verify;
      if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        reason = "the broker's certificate does not carry the name " + name
                 + " (set server_name to a name it carries)";
      else
        reason = std::string("the broker's certificate is not trusted: ")
                 + X509_verify_cert_error_string(v)
                 + (s.ca.empty() ? " (checked against the system's trust store)"
                                 : " (checked against the CA file " + s.ca + ")");
      ERR_clear_error();
    } else if (e == SSL_ERROR_SSL) {
      reason = openssl_reason("TLS error");
      reason += alert_hint(reason, s);
    } else {
      reason = "the broker closed the connection during the TLS handshake (is "
               + where + " a TLS listener?)";
      ERR_clear_error();
    }
    SSL_free(st->ssl);
    st->ssl = nullptr;
    ::close(fd);
    error = "TLS handshake with " + where + " failed: " + reason;
    return nullptr;
  }
  return std::unique_ptr<transport>(new transport(fd, std::move(st)));
}

long transport::read(char* p, size_t n) {
  want_write_ = false;
  if (!ssl_) {
    auto r = ::recv(fd_, p, n, 0);
    if (r > 0)
      return static_cast<long>(r);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return 0;
    error_ = r == 0 ? "the broker closed the connection" : std::strerror(errno);
    return -1;
  }
  ERR_clear_error();
  int r = SSL_read(ssl_->ssl, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
  if (r > 0)
    return r;
  int e = SSL_get_error(ssl_->ssl, r);
  if (e == SSL_ERROR_WANT_READ)
    return 0;
  if (e == SSL_ERROR_WANT_WRITE) {
    want_write_ = true;
    return 0;
  }
  if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (e == SSL_ERROR_SSL) {
    tls_failed_ = true;
    auto reason = openssl_reason("TLS error");
    error_ = reason + alert_hint(reason, ssl_->context->settings);
  } else {
    error_ = e == SSL_ERROR_ZERO_RETURN ? "the broker closed the TLS session"
             : e == SSL_ERROR_SYSCALL && errno != 0
               ? std::string("the broker closed the connection: ") + std::strerror(errno)
               : "the broker closed the connection";
    // A broker that refuses the client's certificate (or its absence) may reset the
    // connection before its alert is read.
    if (ssl_->context->settings.certificate.empty())
      error_ += " (over TLS without a client certificate: does the broker require one?)";
    ERR_clear_error();
  }
  return -1;
}

long transport::write(const char* p, size_t n) {
  want_write_ = false;
  if (!ssl_) {
    auto r = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (r >= 0)
      return static_cast<long>(r);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return 0;
    error_ = std::strerror(errno);
    return -1;
  }
  ERR_clear_error();
  int r = SSL_write(ssl_->ssl, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
  if (r > 0)
    return r;
  int e = SSL_get_error(ssl_->ssl, r);
  if (e == SSL_ERROR_WANT_WRITE) {
    want_write_ = true;
    return 0;
  }
  if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EINTR)))
    return 0;
  tls_failed_ = e == SSL_ERROR_SSL;
  error_ = e == SSL_ERROR_SSL ? openssl_reason("TLS error") : "the broker closed the connection";
  ERR_clear_error();
  return -1;
}

bool transport::buffered() const { return ssl_ && SSL_pending(ssl_->ssl) > 0; }

bool transport::write_all(const std::string& data, int64_t timeout_ms,
                          const std::atomic<bool>& stopping) {
  size_t off = 0;
  auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  while (off < data.size()) {
    if (stopping.load() || clock::now() > deadline)
      return false;
    auto n = write(data.data() + off, data.size() - off);
    if (n < 0)
      return false;
    if (n > 0)
      off += static_cast<size_t>(n);
    else
      wait_fd(fd_, POLLOUT);
  }
  return true;
}

bool transport::read_exact(char* p, size_t n, int64_t timeout_ms, const std::atomic<bool>& stopping) {
  size_t got = 0;
  auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  while (got < n) {
    if (stopping.load() || clock::now() > deadline)
      return false;
    if (!buffered())
      wait_fd(fd_, static_cast<short>(POLLIN | (want_write_ ? POLLOUT : 0)));
    auto r = read(p + got, n - got);
    if (r < 0)
      return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

} // namespace twinrt::adapters::mqtt
