// The operator API against guessing and abuse, over real loopback RPC: hashed
// token secrets, failed logins counted and slowed down per address, and the
// refusal to serve plaintext on a non-loopback address.
// (TLS end to end, with twinctl: tests/tls.sh.)

#include <chrono>
#include <functional>
#include <vector>
#include <memory>
#include <string>

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/timer.h>

#include "rpc.capnp.h"
#include "support.hpp"
#include "twinrt/runtime/rpc_security.hpp"

namespace {

using namespace twinrt;
using steady = std::chrono::steady_clock;

const std::string hashed_secret = "s3cret-hashed-admin";

class RpcSecurity : public ::testing::Test {
protected:
  void SetUp() override {
    cfg_ = twinrt::testing::test_config(dir_.str());
    cfg_.rpc_address = "127.0.0.1:0";
    runtime::node_config::token hashed{"hashed-admin", "", "admin", ""};
    hashed.secret_hash = runtime::hash_secret(hashed_secret, runtime::min_hash_iterations);
    cfg_.rpc_tokens = {{"viewer", "s3cret-viewer", "read", ""}, hashed};
    configure(cfg_);
    node_ = twinrt::testing::start_node(cfg_);
    ASSERT_TRUE(node_);
  }

  void TearDown() override {
    client_.reset();
    node_.reset();
  }

  virtual void configure(runtime::node_config&) {}

  capnp::EzRpcClient& client() {
    if (!client_)
      client_ = std::make_unique<capnp::EzRpcClient>(node_->rpc_address());
    return *client_;
  }
  kj::WaitScope& ws() { return client().getWaitScope(); }

  // Logs in with `secret`: the token name, or the error's description.
  std::string login(const std::string& secret) {
    auto req = client().getMain<rpc::Gateway>().loginRequest();
    req.setToken(secret);
    try {
      auto res = req.send().wait(ws());
      return std::string("ok: ") + res.getSession().getTokenName().cStr();
    } catch (const kj::Exception& e) {
      return e.getDescription().cStr();
    }
  }

  int64_t series(const std::string& family, runtime::runtime_probe::label_pairs labels = {}) {
    return node_->probe().adapter_series(family, std::move(labels)).load();
  }

  twinrt::testing::temp_dir dir_{"rpc-security"};
  runtime::node_config cfg_;
  std::unique_ptr<runtime::node> node_;
  std::unique_ptr<capnp::EzRpcClient> client_;
};

// -- hashed secrets and failed logins -----------------------------------------------

TEST_F(RpcSecurity, HashedTokenLogsInWithItsSecretAndNoOther) {
  EXPECT_EQ(login(hashed_secret), "ok: hashed-admin");
  EXPECT_EQ(login(hashed_secret), "ok: hashed-admin"); // again, without PBKDF2
  EXPECT_NE(login(hashed_secret + "x").find("permission denied: unknown token"), std::string::npos);
  // The hash in the config is no secret that logs in.
  EXPECT_NE(login(cfg_.rpc_tokens[1].secret_hash).find("permission denied: unknown token"),
            std::string::npos);
  EXPECT_EQ(login("s3cret-viewer"), "ok: viewer");
  EXPECT_EQ(series("twinrt_rpc_login_failures_total"), 2);
}

TEST_F(RpcSecurity, FailedLoginsAreCountedAndSlowedDownForTheirAddress) {
  // A failure recorded by the server sets the earliest time of the address's
  // next login: failure time + 100 ms after the sixth failure, 200 after the
  // seventh ... The server records a failure after its login was sent, so the
  // next answer comes at least that long after the failed login was sent,
  // however slow the machine (no upper bound is asserted).
  std::vector<steady::time_point> sent;
  auto attempt = [&](const std::string& secret) {
    sent.push_back(steady::now());
    return login(secret);
  };
  // The first five failures cost nothing.
  for (int i = 0; i < 5; ++i)
    EXPECT_NE(attempt("guess-" + std::to_string(i)).find("unknown token"), std::string::npos);
  EXPECT_EQ(series("twinrt_rpc_login_failures_total"), 5);
  EXPECT_EQ(series("twinrt_rpc_logins_delayed_total"), 0);
  // From then on every login from this address waits, doubling per failure.
  EXPECT_NE(attempt("guess-5").find("unknown token"), std::string::npos);
  EXPECT_GE(steady::now() - sent[4], std::chrono::milliseconds(100));
  EXPECT_NE(attempt("guess-6").find("unknown token"), std::string::npos);
  EXPECT_GE(steady::now() - sent[5], std::chrono::milliseconds(200));
  // The right secret waits its turn too, then clears the record.
  EXPECT_EQ(attempt(hashed_secret), "ok: hashed-admin");
  EXPECT_GE(steady::now() - sent[6], std::chrono::milliseconds(400));
  // Counted when the server made a login wait: all three, unless the client
  // itself was slower than the wait (a very busy machine).
  auto delayed = series("twinrt_rpc_logins_delayed_total");
  EXPECT_LE(delayed, 3);
  EXPECT_EQ(series("twinrt_rpc_login_failures_total"), 7);
  // The success cleared the address's record: no wait any more.
  EXPECT_EQ(login("s3cret-viewer"), "ok: viewer");
  EXPECT_EQ(series("twinrt_rpc_logins_delayed_total"), delayed);
}

TEST(RpcSecurityStart, MalformedSecretHashIsRefusedNamingTheToken) {
  twinrt::testing::temp_dir dir{"rpc-security-start"};
  auto cfg = twinrt::testing::test_config(dir.str());
  cfg.rpc_address = "127.0.0.1:0";
  runtime::node_config::token bad{"ops", "", "admin", ""};
  bad.secret_hash = "pbkdf2-sha256$1000$nope";
  cfg.rpc_tokens = {bad};
  auto n = runtime::node::start(cfg);
  ASSERT_FALSE(n);
  auto why = runtime::describe(n.error());
  EXPECT_NE(why.find("rpc token 'ops': secret_hash is malformed"), std::string::npos) << why;
}

// -- transport -------------------------------------------------------------------------

TEST(RpcSecurityStart, PlaintextOnANonLoopbackAddressIsRefusedUnlessTheConfigSaysSo) {
  twinrt::testing::temp_dir dir{"rpc-security-plaintext"};
  auto cfg = twinrt::testing::test_config(dir.str());
  cfg.rpc_address = "0.0.0.0:0";
  cfg.rpc_tokens = {{"viewer", "v", "read", ""}};
  auto refused = runtime::node::start(cfg);
  ASSERT_FALSE(refused);
  auto why = runtime::describe(refused.error());
  EXPECT_NE(why.find("rpc.address 0.0.0.0:0 is not a loopback address: serve it over TLS "
                     "([rpc.tls] certificate and private_key) or allow plaintext there with "
                     "rpc.plaintext = true"),
            std::string::npos)
    << why;
  cfg.rpc_plaintext = true;
  auto n = twinrt::testing::start_node(cfg);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->rpc_address().rfind("0.0.0.0:", 0), 0u) << n->rpc_address();
}

TEST(RpcSecurityStart, MissingCertificateIsRefusedNamingTheFile) {
  twinrt::testing::temp_dir dir{"rpc-security-cert"};
  auto cfg = twinrt::testing::test_config(dir.str());
  cfg.rpc_address = "127.0.0.1:0";
  cfg.rpc_tls_certificate = dir.str() + "/missing.pem";
  cfg.rpc_tls_private_key = dir.str() + "/missing.key";
  auto n = runtime::node::start(cfg);
  ASSERT_FALSE(n);
  auto why = runtime::describe(n.error());
  EXPECT_NE(why.find("cannot read rpc.tls.certificate " + dir.str() + "/missing.pem"),
            std::string::npos)
    << why;
}

// -- limits against abuse -------------------------------------------------------------

// Takes every update at once; the tests only need a subscription.
class quiet_watcher final : public rpc::Watcher::Server {
public:
  kj::Promise<void> update(UpdateContext) override { return kj::READY_NOW; }
};

class RpcLimits : public RpcSecurity {
protected:
  void configure(runtime::node_config& cfg) override {
    cfg.rpc_max_connections = 3;
    cfg.rpc_max_calls_in_flight = 4;
    cfg.rpc_max_message_bytes = 64 * 1024;
    cfg.rpc_login_timeout_ms = 1'000;
  }

  std::unique_ptr<capnp::EzRpcClient> connect() {
    return std::make_unique<capnp::EzRpcClient>(node_->rpc_address());
  }
};

TEST_F(RpcLimits, CallsBeyondTheConnectionsLimitAreAnsweredOverloadedAtOnce) {
  auto req = client().getMain<rpc::Gateway>().loginRequest();
  req.setToken("s3cret-viewer");
  auto login = req.send().wait(ws());
  auto reader = login.getSession().getReader();
  auto watch = reader.watchRequest();
  watch.setWatcher(kj::heap<quiet_watcher>());
  auto sub = watch.send().wait(ws()).getSubscription();
  // `ended` answers only when the subscription ends: four calls stay in flight.
  std::vector<kj::Promise<void>> pending;
  for (int i = 0; i < 4; ++i)
    pending.push_back(sub.endedRequest().send().ignoreResult().eagerlyEvaluate(nullptr));
  auto t0 = steady::now();
  try {
    reader.statusRequest().send().wait(ws());
    ADD_FAILURE() << "a fifth call in flight was served";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), kj::Exception::Type::OVERLOADED);
    EXPECT_NE(std::string(e.getDescription().cStr())
                .find("overloaded: this connection has 4 calls in flight, the most "
                      "rpc.max_calls_in_flight allows"),
              std::string::npos)
      << e.getDescription().cStr();
  }
  EXPECT_LT(steady::now() - t0, twinrt::testing::patience);
  EXPECT_EQ(series("twinrt_rpc_calls_refused_total", {{"reason", "max_calls_in_flight"}}), 1);
  // Cancelled calls give their slots back.
  pending.clear();
  auto status = reader.statusRequest().send().wait(ws());
  EXPECT_GE(status.getStatus().getTwins(), 0u);
}

TEST_F(RpcLimits, MessageLargerThanTheLimitEndsItsConnectionAndTheNodeServesOn) {
  auto req = client().getMain<rpc::Gateway>().loginRequest();
  req.setToken("s3cret-viewer");
  auto reader = req.send().wait(ws()).getSession().getReader();
  auto big = reader.getRequest();
  big.setId(std::string(100 * 1024, 'x'));
  try {
    big.send().wait(ws());
    ADD_FAILURE() << "a 100 KiB request was read with max_message_bytes = 64 KiB";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("too large"), std::string::npos)
      << e.getDescription().cStr();
  }
  // A request under the limit, on a new connection, is served.
  client_ = connect();
  EXPECT_EQ(login("s3cret-viewer"), "ok: viewer");
}

TEST_F(RpcLimits, ConnectionsBeyondTheLimitAreToldOverloadedAndCounted) {
  std::vector<std::unique_ptr<capnp::EzRpcClient>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect());
    auto req = held.back()->getMain<rpc::Gateway>().loginRequest();
    req.setToken("s3cret-viewer");
    req.send().wait(held.back()->getWaitScope());
  }
  auto extra = connect();
  auto req = extra->getMain<rpc::Gateway>().loginRequest();
  req.setToken("s3cret-viewer");
  try {
    req.send().wait(extra->getWaitScope());
    ADD_FAILURE() << "a fourth connection was served with max_connections = 3";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), kj::Exception::Type::OVERLOADED);
    EXPECT_NE(std::string(e.getDescription().cStr())
                .find("overloaded: the node serves 3 connections, the most "
                      "rpc.max_connections allows; retry later"),
              std::string::npos)
      << e.getDescription().cStr();
  }
  EXPECT_EQ(series("twinrt_rpc_connections_refused_total", {{"reason", "max_connections"}}), 1);
  EXPECT_EQ(series("twinrt_rpc_connections"), 3);
  // One goes; a new connection is served once the node has seen it go.
  held.pop_back();
  extra.reset();
  EXPECT_TRUE(twinrt::testing::eventually([&] {
    client_ = connect();
    return login("s3cret-viewer") == "ok: viewer";
  }));
}

TEST_F(RpcLimits, ConnectionThatNeverLogsInIsClosedAfterTheLoginTimeout) {
  EXPECT_EQ(login("s3cret-viewer"), "ok: viewer"); // this connection logs in at once
  auto& io = client().getIoProvider();
  auto addr = io.getNetwork().parseAddress(node_->rpc_address()).wait(ws());
  auto silent = addr->connect().wait(ws());
  char byte = 0;
  auto t0 = steady::now();
  auto closed = silent->tryRead(&byte, 1, 1)
                  .exclusiveJoin(io.getTimer()
                                   .afterDelay(twinrt::testing::patience_ms * kj::MILLISECONDS)
                                   .then([]() -> size_t { return 1; }))
                  .wait(ws());
  EXPECT_EQ(closed, 0u) << "the node did not close a connection that never logged in";
  EXPECT_GE(steady::now() - t0, std::chrono::milliseconds(900));
  EXPECT_EQ(series("twinrt_rpc_connections_closed_total", {{"reason", "login_timeout"}}), 1);
  // The connection that logged in, opened before the silent one, is past its
  // timeout too, and still served.
  EXPECT_EQ(login("s3cret-viewer"), "ok: viewer");
}

} // namespace
