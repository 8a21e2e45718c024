#include "twinrt/runtime/rpc_server.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include <kj/async-io.h>

#include "twinrt/runtime/rpc/session.hpp"

namespace twinrt::runtime {

namespace {

using namespace rpc_api;

// The bootstrap capability of one connection. A login is checked against
// every token in constant time (hashed ones on the worker pool: PBKDF2 takes
// milliseconds); refusals are counted and slow down the next logins from the
// same address (login_throttle).
class gateway_impl : public rpc::Gateway::Server {
public:
  gateway_impl(std::shared_ptr<connection_state> conn, shared_state& shared)
    : conn_(std::move(conn)), shared_(shared) {}

  kj::Promise<void> login(LoginContext ctx) override {
    return timed(shared_, "login", [&] { return do_login(ctx); });
  }

  kj::Promise<void> do_login(LoginContext ctx) {
    auto secret = text(ctx.getParams().getToken());
    auto wait = shared_.throttle.before_login(conn_->peer, std::chrono::steady_clock::now());
    if (wait.count() <= 0)
      return check(ctx, std::move(secret));
    shared_.logins_delayed.fetch_add(1, std::memory_order_relaxed);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    return shared_.timer.afterDelay(ns * kj::NANOSECONDS)
      .then([this, ctx, secret = std::move(secret)]() mutable { return check(ctx, secret); });
  }

private:
  kj::Promise<void> check(LoginContext ctx, std::string secret) {
    if (secret.empty())
      refuse("permission denied: no token given");
    if (auto i = shared_.check.find_fast(secret)) {
      accept(ctx, *i);
      return kj::READY_NOW;
    }
    if (!shared_.check.has_unverified_hashes())
      refuse("permission denied: unknown token");
    return shared_.pool
      .run<std::optional<size_t>>([&check = shared_.check, secret] { return check.find(secret); })
      .then([this, ctx](std::optional<size_t> i) mutable {
        if (!i)
          refuse("permission denied: unknown token");
        accept(ctx, *i);
      });
  }

  [[noreturn]] void refuse(const std::string& why) {
    shared_.login_failures.fetch_add(1, std::memory_order_relaxed);
    shared_.throttle.failed(conn_->peer, std::chrono::steady_clock::now());
    fail(why);
  }

  void accept(LoginContext ctx, size_t index) {
    auto& t = shared_.tokens[index];
    shared_.throttle.succeeded(conn_->peer);
    conn_->logged_in = true;
    session_rights rights{shared_.n, t.name,
                          t.role == "admin" ? role::admin
                          : t.role == "write" ? role::write
                                              : role::read,
                          t.scope, conn_};
    auto s = ctx.getResults().initSession();
    s.setTokenName(t.name);
    s.setRole(static_cast<rpc::Role>(rights.r));
    s.setScope(t.scope);
    s.setReader(make_reader(rights, shared_));
    s.setWriter(make_writer(rights, shared_));
    s.setAdmin(make_admin(rights, shared_));
  }

  std::shared_ptr<connection_state> conn_;
  shared_state& shared_;
};

} // namespace

// The listener's settings from [rpc] and [rpc.tls].
rpc_listen_settings listen_settings(const node_config& cfg) {
  rpc_listen_settings s;
  s.certificate_file = cfg.rpc_tls_certificate;
  s.private_key_file = cfg.rpc_tls_private_key;
  s.plaintext = cfg.rpc_plaintext;
  s.max_connections = std::max<uint32_t>(cfg.rpc_max_connections, 1);
  s.max_calls_in_flight = std::max<uint32_t>(cfg.rpc_max_calls_in_flight, 1);
  s.max_message_bytes = cfg.rpc_max_message_bytes;
  s.login_timeout_ms = std::max<int64_t>(cfg.rpc_login_timeout_ms, 1);
  return s;
}

struct rpc_server::impl {
  std::thread loop;
  std::mutex mtx;
  std::condition_variable cv;
  bool ready = false;
  std::string bound;
  std::string error;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop;

  ~impl() {
    {
      std::lock_guard<std::mutex> g(mtx);
      if (stop)
        stop->fulfill();
    }
    if (loop.joinable())
      loop.join();
  }
};

rpc_server::rpc_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

rpc_server::~rpc_server() = default;

const std::string& rpc_server::address() const {
  return impl_->bound;
}

caf::expected<std::unique_ptr<rpc_server>>
rpc_server::start(node& n, const std::string& address, std::vector<rpc_token> tokens) {
  for (auto& t : tokens) {
    if (t.name.empty() || (t.secret.empty() && t.secret_hash.empty()))
      return make_error(errc::bad_request, "rpc token '" + t.name
                                             + "' needs a name and a secret (or secret_hash)");
    if (!t.secret_hash.empty())
      if (auto why = check_secret_hash(t.secret_hash))
        return make_error(errc::bad_request,
                          "rpc token '" + t.name + "': secret_hash is malformed: " + describe(why));
    if (t.role != "read" && t.role != "write" && t.role != "admin")
      return make_error(errc::bad_request, "rpc token '" + t.name + "': role '" + t.role
                                             + "' is not read, write or admin");
  }
  auto settings = listen_settings(n.config());
  auto colon = address.rfind(':');
  auto host = colon == std::string::npos ? address : address.substr(0, colon);
  if (auto why = check_transport(address, host, settings))
    return make_error(errc::bad_request, "cannot serve RPC: " + describe(why));
  // The audit trail lives beside the node's data (audit_log.hpp).
  std::unique_ptr<audit_log> trail;
  if (!n.config().data_dir.empty()) {
    auto opened = audit_log::open(std::filesystem::path(n.config().data_dir) / "audit",
                                  n.config().audit_max_mb << 20);
    if (!opened)
      return opened.error();
    trail = std::move(*opened);
  }
  auto p = std::make_unique<impl>();
  auto* raw = p.get();
  p->loop = std::thread([raw, &n, address, host, settings, tokens = std::move(tokens),
                         trail = std::move(trail)]() mutable {
    try {
      auto colon = address.rfind(':');
      auto port = colon == std::string::npos ? 0u : static_cast<uint>(std::stoul(address.substr(colon + 1)));
      auto io = kj::setupAsyncIo();
      auto& ws = io.waitScope;
      shared_state shared(n, io.provider->getTimer(), std::move(tokens));
      shared.audit = std::move(trail);
      rpc_listener connections(
        io.provider->getTimer(), settings, n.probe(),
        [&shared](std::shared_ptr<connection_state> conn) -> capnp::Capability::Client {
          return kj::heap<call_limited<gateway_impl>>(conn, conn, shared);
        });
      auto listener = io.provider->getNetwork().parseAddress(host, port).wait(ws)->listen();
      auto bound_port = listener->getPort();
      auto accepting = connections.listen(*listener).eagerlyEvaluate([](kj::Exception&& e) {
        std::fprintf(stderr, "twinrt rpc: no longer accepting: %s\n", e.getDescription().cStr());
      });
      auto stop = kj::newPromiseAndCrossThreadFulfiller<void>();
      {
        std::lock_guard<std::mutex> g(raw->mtx);
        raw->bound = host + ":" + std::to_string(bound_port);
        raw->stop = kj::mv(stop.fulfiller);
        raw->ready = true;
      }
      raw->cv.notify_all();
      stop.promise.wait(ws);
    } catch (kj::Exception& e) {
      std::lock_guard<std::mutex> g(raw->mtx);
      raw->error = "cannot serve RPC on " + address + ": " + e.getDescription().cStr();
      raw->ready = true;
      raw->cv.notify_all();
    } catch (std::exception& e) {
      std::lock_guard<std::mutex> g(raw->mtx);
      raw->error = "cannot serve RPC on " + address + ": " + e.what();
      raw->ready = true;
      raw->cv.notify_all();
    }
  });
  {
    std::unique_lock<std::mutex> g(p->mtx);
    p->cv.wait(g, [&] { return p->ready; });
  }
  if (!p->error.empty()) {
    auto why = p->error;
    p->loop.join();
    return make_error(errc::bad_request, why);
  }
  return std::unique_ptr<rpc_server>(new rpc_server(std::move(p)));
}

} // namespace twinrt::runtime
