#include "twinrt/runtime/rpc_listener.hpp"

#include <arpa/inet.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>

#include <capnp/rpc-twoparty.h>
#include <kj/compat/tls.h>
#include <kj/debug.h>

#include "rpc.capnp.h"
#include "twinrt/runtime/probe.hpp"

namespace twinrt::runtime {

namespace {

constexpr int stream_window = 32 * 1024; // bytes of Watcher.update in flight; see windowed_stream

// A connection as TwoPartyVatNetwork sees it, except that it reports a
// small send buffer. Cap'n Proto sizes the flow-control window of streaming
// calls (Watcher.update) by SO_SNDBUF, which Linux grows to megabytes and
// which would let a slow watcher fall minutes behind before the node
// notices; reporting 32 KiB keeps it seconds behind, so coalescing and the
// cut-off work. The real buffer keeps its size, so large answers (history,
// query pages, ingest replies) go out at full speed. Over TLS the TLS stream
// asks the socket underneath, which is this one's.
class windowed_stream final : public kj::AsyncIoStream {
public:
  explicit windowed_stream(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    return inner_->tryRead(buffer, min_bytes, max_bytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    if (level == SOL_SOCKET && option == SO_SNDBUF && *length >= sizeof(int)) {
      int window = stream_window;
      std::memcpy(value, &window, sizeof window);
      *length = sizeof window;
      return;
    }
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* addr, kj::uint* length) override {
    inner_->getsockname(addr, length);
  }
  void getpeername(struct sockaddr* addr, kj::uint* length) override {
    inner_->getpeername(addr, length);
  }

private:
  kj::Own<kj::AsyncIoStream> inner_;
};

// The client's address without its port; "unknown" when the socket says none.
std::string peer_of(kj::AsyncIoStream& s) {
  sockaddr_storage addr{};
  kj::uint len = sizeof addr;
  try {
    s.getpeername(reinterpret_cast<sockaddr*>(&addr), &len);
  } catch (kj::Exception&) {
    return "unknown";
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, buf, sizeof buf);
  else if (addr.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, buf, sizeof buf);
  else
    return "local";
  return buf;
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf()))
    throw KJ_EXCEPTION(FAILED, kj::str("cannot read ", what, " ", path.c_str()));
  return text.str();
}

// What a connection over max_connections is served: every login is told to
// come back later.
class refusing_gateway final : public rpc::Gateway::Server {
public:
  explicit refusing_gateway(uint32_t limit) : limit_(limit) {}
  kj::Promise<void> login(LoginContext) override {
    return KJ_EXCEPTION(OVERLOADED, kj::str("overloaded: the node serves ", limit_,
                                            " connections, the most rpc.max_connections allows; "
                                            "retry later"));
  }

private:
  uint32_t limit_;
};

// A served connection: the stream, the vat network on it and the RPC system.
struct connection {
  connection(kj::Own<kj::AsyncIoStream> s, capnp::Capability::Client bootstrap,
             capnp::ReaderOptions options)
    : stream(kj::mv(s)), network(*stream, capnp::rpc::twoparty::Side::SERVER, options),
      rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

} // namespace

bool is_loopback_host(const std::string& host) {
  auto h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  if (h == "localhost" || h == "::1")
    return true;
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

caf::error check_transport(const std::string& address, const std::string& host,
                           const rpc_listen_settings& s) {
  if (s.certificate_file.empty() != s.private_key_file.empty())
    return make_error(errc::bad_request, "[rpc.tls] needs both certificate and private_key");
  if (s.tls() || s.plaintext || is_loopback_host(host))
    return {};
  return make_error(errc::bad_request,
                    "rpc.address " + address
                      + " is not a loopback address: serve it over TLS ([rpc.tls] certificate "
                        "and private_key) or allow plaintext there with rpc.plaintext = true");
}

rpc_listener::rpc_listener(kj::Timer& timer, rpc_listen_settings settings, runtime_probe& probe,
                           bootstrap_factory bootstrap)
  : timer_(timer), settings_(std::move(settings)), bootstrap_(std::move(bootstrap)),
    connections_(probe.adapter_series("twinrt_rpc_connections", {})),
    refused_limit_(probe.adapter_series("twinrt_rpc_connections_refused_total",
                                        {{"reason", "max_connections"}})),
    refused_calls_(probe.adapter_series("twinrt_rpc_calls_refused_total",
                                        {{"reason", "max_calls_in_flight"}})),
    closed_login_timeout_(probe.adapter_series("twinrt_rpc_connections_closed_total",
                                               {{"reason", "login_timeout"}})),
    tls_failures_(probe.adapter_series("twinrt_rpc_tls_handshake_failures_total", {})),
    tasks_(*this) {
  if (settings_.tls()) {
    auto cert_pem = read_file(settings_.certificate_file, "rpc.tls.certificate");
    auto key_pem = read_file(settings_.private_key_file, "rpc.tls.private_key");
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
                  keypair_ = kj::heap<kj::TlsKeypair>(
                    kj::TlsKeypair{kj::TlsPrivateKey(kj::StringPtr(key_pem.c_str())),
                                   kj::TlsCertificate(kj::StringPtr(cert_pem.c_str()))});
                })) {
      throw KJ_EXCEPTION(FAILED, kj::str("rpc.tls: cannot use certificate ",
                                         settings_.certificate_file.c_str(), " with key ",
                                         settings_.private_key_file.c_str(), ": ",
                                         e->getDescription()));
    }
    kj::TlsContext::Options options;
    options.useSystemTrustStore = false;
    options.minVersion = kj::TlsVersion::TLS_1_2;
    options.defaultKeypair = *keypair_;
    tls_ = kj::heap<kj::TlsContext>(kj::mv(options));
  }
}

rpc_listener::~rpc_listener() noexcept(false) = default;

void rpc_listener::taskFailed(kj::Exception&& e) {
  std::fprintf(stderr, "twinrt rpc: connection ended: %s\n", e.getDescription().cStr());
}

kj::Promise<void> rpc_listener::listen(kj::ConnectionReceiver& receiver) {
  return receiver.accept().then([this, &receiver](kj::Own<kj::AsyncIoStream>&& stream) {
    tasks_.add(serve(kj::mv(stream)));
    return listen(receiver);
  });
}

kj::Promise<void> rpc_listener::serve(kj::Own<kj::AsyncIoStream> raw) {
  auto st = std::make_shared<connection_state>();
  st->peer = peer_of(*raw);
  st->max_calls_in_flight = settings_.max_calls_in_flight;
  st->refused_calls = &refused_calls_;
  bool refusing = open_ >= settings_.max_connections;
  if (refusing) {
    refused_limit_.fetch_add(1, std::memory_order_relaxed);
    // Telling a flood why costs a little memory each; beyond as many again
    // as are served, the socket is closed without a word.
    if (refusing_ >= settings_.max_connections)
      return kj::READY_NOW;
    ++refusing_;
  } else {
    ++open_;
    connections_.store(open_, std::memory_order_relaxed);
  }
  auto release = kj::defer([this, refusing] {
    if (refusing) {
      --refusing_;
    } else {
      --open_;
      connections_.store(open_, std::memory_order_relaxed);
    }
  });
  auto timeout = settings_.login_timeout_ms * kj::MILLISECONDS;
  if (!tls_)
    return serve_rpc(kj::mv(raw), kj::mv(st), refusing).attach(kj::mv(release));
  auto peer = st->peer;
  return tls_->wrapServer(kj::mv(raw))
    .exclusiveJoin(timer_.afterDelay(timeout).then([]() -> kj::Own<kj::AsyncIoStream> {
      throw KJ_EXCEPTION(DISCONNECTED, "no TLS handshake within rpc.login_timeout_ms");
    }))
    .then(
      [this, st, refusing](kj::Own<kj::AsyncIoStream>&& tls_stream) mutable {
        return serve_rpc(kj::mv(tls_stream), kj::mv(st), refusing);
      },
      [this, peer](kj::Exception&& e) -> kj::Promise<void> {
        tls_failures_.fetch_add(1, std::memory_order_relaxed);
        std::fprintf(stderr, "twinrt rpc: TLS handshake with %s failed: %s\n", peer.c_str(),
                     e.getDescription().cStr());
        return kj::READY_NOW;
      })
    .attach(kj::mv(release));
}

kj::Promise<void> rpc_listener::serve_rpc(kj::Own<kj::AsyncIoStream> stream,
                                          std::shared_ptr<connection_state> st, bool refusing) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = std::max<uint64_t>(settings_.max_message_bytes / 8, 1);
  capnp::Capability::Client bootstrap =
    refusing ? capnp::Capability::Client(kj::heap<refusing_gateway>(settings_.max_connections))
             : bootstrap_(st);
  auto conn = kj::heap<connection>(kj::heap<windowed_stream>(kj::mv(stream)), kj::mv(bootstrap),
                                   options);
  auto idle = timer_.afterDelay(settings_.login_timeout_ms * kj::MILLISECONDS)
                .then([this, st]() -> kj::Promise<void> {
                  if (st->logged_in)
                    return kj::NEVER_DONE;
                  closed_login_timeout_.fetch_add(1, std::memory_order_relaxed);
                  return kj::READY_NOW;
                });
  return conn->network.onDisconnect().exclusiveJoin(kj::mv(idle)).attach(kj::mv(conn));
}

} // namespace twinrt::runtime
