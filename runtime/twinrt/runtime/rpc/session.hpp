#pragma once

// What the capabilities of the operator API (schemas/rpc.capnp) share: the
// caller's rights, the server's shared state, the conversion of errors to
// kj exceptions, and the filling of answers. Runs on the server's event loop
// thread unless said otherwise. Not part of the runtime's public API.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <kj/async.h>
#include <kj/timer.h>

#include "rpc.capnp.h"
#include "twinrt/runtime/audit_log.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/runtime/rpc_listener.hpp"
#include "twinrt/runtime/rpc_security.hpp"
#include "twinrt/runtime/rpc_server.hpp"

namespace twinrt::runtime::rpc_api {

// Errors reach the client as kj exceptions whose description is the whole
// message; OVERLOADED tells it to back off, FAILED to give up. The errc goes
// along as the exception's context, for timed() to count the call by; timed()
// takes it off before the exception leaves.
[[noreturn]] void fail(errc code, const std::string& what);
[[noreturn]] void fail(const caf::error& e);
// A refusal of the credentials a caller logs in with.
[[noreturn]] void fail(const std::string& what);

// The errc fail() gave `e`; errc::none for exceptions from elsewhere (kj, a
// broken connection).
errc code_of(const kj::Exception& e);

inline std::string text(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

enum class role { read = 0, write = 1, admin = 2 };

// What a token may see: its scope is a twin and everything below it in the
// rollup tree (the twins whose contributions roll up into it), as the tree is
// at the moment of each call; "" is everything. Ids play no part: a twin
// moved under another parent leaves the scopes of its old ancestors and
// enters those of its new ones.
struct session_rights {
  node& n;
  std::string token;
  role r = role::read;
  std::string scope;
  std::shared_ptr<connection_state> conn; // the connection logged in on

  bool sees(const std::string& id) const { return n.in_tree(scope, id); }
  // sees() for a batch's twins, each distinct twin and parent looked up once.
  std::vector<bool> sees(const std::vector<std::string_view>& ids) const {
    return n.in_tree(scope, ids);
  }
  // The same answer for "outside your scope" as for "does not exist".
  void check(const std::string& id) const {
    if (!sees(id))
      fail(errc::unknown_twin, "no twin " + id);
  }
  // A subtree to list or watch: the scope's twin or one above it (or "",
  // all) narrows to the scope; one outside it does not exist for this token.
  std::string narrow(const std::string& subtree) const {
    if (subtree.empty() || (!scope.empty() && n.in_tree(subtree, scope)))
      return scope;
    check(subtree);
    return subtree;
  }
};

// A twin and an alert as the API shows them.
void fill_alert(rpc::Alert::Builder b, const alert_record& a);

// Units of channels come from the twin's model in force.
class unit_map {
public:
  explicit unit_map(node& n) : n_(n) {}
  std::string unit(const std::string& kind, const std::string& channel);

private:
  node& n_;
  std::map<std::string, twins::model_set::model_ptr> models_;
};

void fill_twin(rpc::Twin::Builder b, const twin_view& v, unit_map& units);

// Runs blocking work off the event loop and brings the result back to it.
class worker_pool {
public:
  explicit worker_pool(size_t threads) : pool_(threads) {}
  ~worker_pool() { pool_.join(); }

  template <class T, class F>
  kj::Promise<T> run(F f) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    auto holder = std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<T>>>(kj::mv(paf.fulfiller));
    boost::asio::post(pool_, [holder, f = std::move(f)]() mutable {
      try {
        (*holder)->fulfill(f());
      } catch (kj::Exception& e) {
        (*holder)->reject(kj::mv(e));
      } catch (std::exception& e) {
        (*holder)->reject(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                        kj::str("internal error: ", e.what())));
      }
    });
    return kj::mv(paf.promise);
  }

private:
  boost::asio::thread_pool pool_;
};

// Brings an actor's answer (delivered on a CAF thread) back to the loop.
template <class T>
std::pair<kj::Promise<T>, std::function<void(T)>> bridge() {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
  auto holder = std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<T>>>(kj::mv(paf.fulfiller));
  return {kj::mv(paf.promise), [holder](T value) { (*holder)->fulfill(kj::mv(value)); }};
}

// What every capability of one server uses. Outlives them all; its pool
// joins before the node can go.
struct shared_state {
  shared_state(node& node_ref, kj::Timer& t, std::vector<rpc_token> token_list)
    : n(node_ref), timer(t), tokens(std::move(token_list)), check(entries(tokens)),
      login_failures(n.probe().adapter_series("twinrt_rpc_login_failures_total", {})),
      logins_delayed(n.probe().adapter_series("twinrt_rpc_logins_delayed_total", {})) {}
  node& n;
  kj::Timer& timer;
  std::vector<rpc_token> tokens;
  token_check check;
  login_throttle throttle;
  std::atomic<int64_t>& login_failures;
  std::atomic<int64_t>& logins_delayed;
  std::unique_ptr<audit_log> audit; // null: no data directory, no trail
  worker_pool pool{2}; // last: joins before what its jobs use goes

  static std::vector<token_check::entry> entries(const std::vector<rpc_token>& tokens) {
    std::vector<token_check::entry> out;
    for (auto& t : tokens)
      out.push_back({t.secret, t.secret_hash});
    return out;
  }
};

// Runs one RPC method and counts it in twinrt_rpc_requests_total and
// twinrt_rpc_request_duration_seconds, by method and result (the errc of
// its failure).
template <class F>
kj::Promise<void> timed(shared_state& shared, const char* method, F&& body) {
  auto t0 = std::chrono::steady_clock::now();
  auto seconds = [t0] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  return kj::evalNow(kj::fwd<F>(body))
    .then([&shared, method, seconds]() { shared.n.probe().rpc_done(method, "ok", seconds()); },
          [&shared, method, seconds](kj::Exception&& e) {
            auto code = code_of(e);
            const char* result = code == errc::overloaded          ? "overloaded"
                                 : code == errc::permission_denied ? "denied"
                                                                   : "error";
            shared.n.probe().rpc_done(method, result, seconds());
            if (code == errc::none)
              kj::throwFatalException(kj::mv(e));
            // Without the code: Cap'n Proto would show it the client.
            kj::throwFatalException(kj::Exception(e.getType(), e.getFile(), e.getLine(),
                                                  kj::heapString(e.getDescription())));
          });
}

// Records a call in the audit trail once it is answered: who, from where,
// what, and "ok" or the error the caller got. `detail` may be filled in by
// the call itself (an ingest's counts) before it is answered.
kj::Promise<void> audited(shared_state& shared, const session_rights& who, const char* action,
                          std::string target, std::shared_ptr<std::string> detail,
                          kj::Promise<void> call);

kj::Promise<void> audited(shared_state& shared, const session_rights& who, const char* action,
                          std::string target, std::string detail, kj::Promise<void> call);

// What each capability of a session holds: who calls, and the server.
class session_capability {
protected:
  session_capability(session_rights rights, shared_state& shared)
    : rights_(std::move(rights)), shared_(shared) {}

  session_rights rights_;
  shared_state& shared_;
};

// The capabilities a session hands out, each limited to the calls in flight
// of the connection it was logged in on (call_limited).
rpc::Reader::Client make_reader(const session_rights& rights, shared_state& shared);
rpc::Writer::Client make_writer(const session_rights& rights, shared_state& shared);
rpc::Admin::Client make_admin(const session_rights& rights, shared_state& shared);
// Feeds `watcher` the changes of `sub` until either ends (watch.cpp).
rpc::Subscription::Client make_subscription(const session_rights& rights,
                                            std::shared_ptr<change_subscription> sub,
                                            rpc::Watcher::Client watcher, shared_state& shared);

} // namespace twinrt::runtime::rpc_api
