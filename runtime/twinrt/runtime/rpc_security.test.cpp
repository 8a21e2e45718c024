#include "twinrt/runtime/rpc_security.hpp"

#include <gtest/gtest.h>

namespace twinrt::runtime {
namespace {

using namespace std::chrono_literals;

TEST(SecretHash, MatchesItsSecretAndNoOther) {
  auto h = hash_secret("s3cret", min_hash_iterations);
  EXPECT_EQ(h.rfind("pbkdf2-sha256$1000$", 0), 0u) << h;
  EXPECT_FALSE(check_secret_hash(h));
  EXPECT_TRUE(secret_matches_hash("s3cret", h));
  EXPECT_FALSE(secret_matches_hash("s3cret ", h));
  EXPECT_FALSE(secret_matches_hash("", h));
  EXPECT_FALSE(secret_matches_hash("s3cret", "not a hash"));
}

TEST(SecretHash, EachHashHasItsOwnSalt) {
  auto a = hash_secret("same", min_hash_iterations);
  auto b = hash_secret("same", min_hash_iterations);
  EXPECT_NE(a, b);
  EXPECT_TRUE(secret_matches_hash("same", a));
  EXPECT_TRUE(secret_matches_hash("same", b));
}

TEST(SecretHash, DefaultIterationsAreWritten) {
  auto h = hash_secret("x");
  EXPECT_EQ(h.rfind("pbkdf2-sha256$" + std::to_string(default_hash_iterations) + "$", 0), 0u);
}

TEST(SecretHash, MalformedHashesSayWhatIsWrong) {
  EXPECT_EQ(code_of(check_secret_hash("")), errc::bad_request);
  EXPECT_NE(describe(check_secret_hash("")).find("expected pbkdf2-sha256$"), std::string::npos);
  EXPECT_NE(describe(check_secret_hash("sha1$1000$AAAAAAAAAAA=$AAAA")).find("expected"), std::string::npos);
  auto h = hash_secret("x", min_hash_iterations);
  auto rest = h.substr(h.find('$', 14)); // "$SALT$HASH"
  EXPECT_NE(describe(check_secret_hash("pbkdf2-sha256$abc" + rest)).find("iterations 'abc'"),
            std::string::npos);
  EXPECT_NE(describe(check_secret_hash("pbkdf2-sha256$999" + rest)).find("are not from 1000"),
            std::string::npos);
  EXPECT_NE(describe(check_secret_hash(h + "AAAA")).find("hash is not base64 of 32 bytes"),
            std::string::npos);
}

TEST(SecretsEqual, ComparesContentOfAnyLength) {
  EXPECT_TRUE(secrets_equal("abc", "abc"));
  EXPECT_FALSE(secrets_equal("abc", "abd"));
  EXPECT_FALSE(secrets_equal("abc", "abcd"));
  EXPECT_FALSE(secrets_equal("", "a"));
}

TEST(TokenCheck, FindsPlainAndHashedTokens) {
  token_check check({{"plain-one", ""}, {"", hash_secret("hashed-one", min_hash_iterations)}});
  EXPECT_EQ(check.find("plain-one"), std::optional<size_t>(0));
  EXPECT_TRUE(check.has_unverified_hashes());
  EXPECT_EQ(check.find_fast("hashed-one"), std::nullopt); // needs PBKDF2 the first time
  EXPECT_EQ(check.find("hashed-one"), std::optional<size_t>(1));
  EXPECT_FALSE(check.has_unverified_hashes());
  EXPECT_EQ(check.find_fast("hashed-one"), std::optional<size_t>(1)); // proven: no PBKDF2
  EXPECT_EQ(check.find("wrong"), std::nullopt);
  EXPECT_EQ(check.find(""), std::nullopt);
  // The hash text itself is not a secret that logs in.
  token_check by_hash({{"", hash_secret("x", min_hash_iterations)}});
  EXPECT_EQ(by_hash.find("pbkdf2-sha256"), std::nullopt);
}

TEST(LoginThrottle, FirstFailuresAreFreeThenTheDelayDoublesUpToTheMaximum) {
  login_throttle::settings s;
  s.free_failures = 3;
  s.base_delay = 100ms;
  s.max_delay = 1000ms;
  login_throttle t(s);
  auto now = login_throttle::clock::time_point{} + 1h;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(t.before_login("10.0.0.1", now), 0ms);
    t.failed("10.0.0.1", now);
  }
  EXPECT_EQ(t.before_login("10.0.0.1", now), 0ms);
  t.failed("10.0.0.1", now); // third failure: from now on each login waits
  EXPECT_EQ(t.before_login("10.0.0.1", now), 100ms);
  now += 100ms;
  t.failed("10.0.0.1", now);
  EXPECT_EQ(t.before_login("10.0.0.1", now), 200ms);
  now += 200ms;
  for (int i = 0; i < 5; ++i) {
    t.failed("10.0.0.1", now);
    now += t.before_login("10.0.0.1", now);
  }
  t.failed("10.0.0.1", now);
  EXPECT_EQ(t.before_login("10.0.0.1", now), 1000ms); // capped
  // Another peer is not slowed by this one.
  EXPECT_EQ(t.before_login("10.0.0.2", now), 0ms);
  EXPECT_EQ(t.failures("10.0.0.1"), 10u);
}

TEST(LoginThrottle, LoginsSentAtOnceWaitInTurn) {
  login_throttle::settings s;
  s.free_failures = 1;
  s.base_delay = 100ms;
  login_throttle t(s);
  auto now = login_throttle::clock::time_point{} + 1h;
  t.failed("p", now);
  EXPECT_EQ(t.before_login("p", now), 100ms);
  EXPECT_EQ(t.before_login("p", now), 200ms);
  EXPECT_EQ(t.before_login("p", now), 300ms);
}

TEST(LoginThrottle, SuccessOrQuietForgetsThePeer) {
  login_throttle::settings s;
  s.free_failures = 1;
  s.forget_after = 60s;
  login_throttle t(s);
  auto now = login_throttle::clock::time_point{} + 1h;
  t.failed("a", now);
  t.failed("b", now);
  t.succeeded("a");
  EXPECT_EQ(t.failures("a"), 0u);
  EXPECT_EQ(t.before_login("a", now), 0ms);
  EXPECT_EQ(t.before_login("b", now + 61s), 0ms);
  EXPECT_EQ(t.failures("b"), 0u);
}

TEST(LoginThrottle, KeepsAtMostMaxPeersForgettingTheLeastRecentlyFailed) {
  login_throttle::settings s;
  s.max_peers = 100;
  login_throttle t(s);
  auto now = login_throttle::clock::time_point{} + 1h;
  for (int i = 0; i < 10'000; ++i)
    t.failed("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), now);
  EXPECT_EQ(t.peers(), 100u);
  EXPECT_EQ(t.failures("10.0.0.0"), 0u);
  EXPECT_EQ(t.failures("10.0.39.15"), 1u); // the 10,000th
}

} // namespace
} // namespace twinrt::runtime
