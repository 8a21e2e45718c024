#pragma once

// What the operator API does against stolen secrets and guessing: token
// secrets kept as salted PBKDF2 hashes and compared in constant time, and
// failed logins slowed down per peer address. Plain classes; the RPC server
// (its shared state, rpc/session.hpp) owns one of each and calls them from its event loop
// (login_throttle) and its worker pool (token_check).

#include <array>
#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "twinrt/runtime/errc.hpp"

namespace twinrt::runtime {

/// Iterations `twinrt token hash` uses unless told otherwise.
inline constexpr uint32_t default_hash_iterations = 100'000;
/// Bounds a hash in the config may give (fewer is too cheap to guess, more
/// makes each login take seconds).
inline constexpr uint32_t min_hash_iterations = 1'000;
inline constexpr uint32_t max_hash_iterations = 10'000'000;

/// A new salted hash of `secret`: "pbkdf2-sha256$ITERATIONS$SALT$HASH", salt
/// (16 random bytes) and hash (32 bytes) in base64. Empty when the system
/// has no randomness to give (never seen on Linux).
std::string hash_secret(const std::string& secret, uint32_t iterations = default_hash_iterations);

/// Nothing when `hash` is a hash that hash_secret() could have made, else
/// errc::bad_request saying why: "expected
/// pbkdf2-sha256$ITERATIONS$SALT$HASH", "iterations 10 are not from 1000
/// to ...", ...
caf::error check_secret_hash(const std::string& hash);

/// Whether `secret` hashes to `hash` (a well-formed one; false otherwise).
/// Takes the hash's iterations of PBKDF2; the last comparison is constant
/// time.
bool secret_matches_hash(const std::string& secret, const std::string& hash);

/// Constant-time equality of two secrets of any lengths (compared as their
/// SHA-256 digests, so the time depends on neither content nor length).
bool secrets_equal(const std::string& a, const std::string& b);

/// The tokens of one server, and which one a presented secret belongs to.
/// A token has a plain `secret` or a `secret_hash`. Thread-safe: the server
/// asks from its worker threads.
class token_check {
public:
  struct entry {
    std::string secret;      // plain; empty when hashed
    std::string secret_hash; // empty when plain
  };
  explicit token_check(std::vector<entry> tokens);

  /// The index of the token whose secret `presented` is, or nothing. Tokens
  /// with a plain secret and hashed tokens matched before cost a digest and a
  /// constant-time compare each; the rest one PBKDF2 each (tens of
  /// milliseconds): call from a worker thread.
  std::optional<size_t> find(const std::string& presented);

  /// find() without PBKDF2: nothing when only a hashed token not matched
  /// before could match. Cheap enough for the event loop.
  std::optional<size_t> find_fast(const std::string& presented);

  /// Whether find() may need PBKDF2 for a secret find_fast() did not match.
  bool has_unverified_hashes();

private:
  using digest = std::array<unsigned char, 32>;
  std::vector<entry> tokens_;
  std::mutex mtx_;
  // Per hashed token: SHA-256 of its secret once a login proved it, so the
  // next login with it needs no PBKDF2. The secret itself is never kept.
  std::vector<std::optional<digest>> proven_;
};

/// Failed logins per peer address, and how long the next login from that
/// peer waits. The first `free_failures` failures cost nothing; from then on
/// every login from the peer (right or wrong) is answered after a delay that
/// doubles with each further failure, from `base_delay` up to `max_delay`,
/// and logins from the peer are spaced by that delay (logins sent at once
/// wait in turn). A successful login forgets the peer; so does a peer quiet
/// for `forget_after`. At most `max_peers` peers are kept, the least recently
/// failed forgotten first, so a flood of addresses cannot grow memory. Not
/// thread-safe: the server calls it from its event loop.
class login_throttle {
public:
  using clock = std::chrono::steady_clock;
  struct settings {
    uint32_t free_failures = 5;
    std::chrono::milliseconds base_delay{100};
    std::chrono::milliseconds max_delay{10'000};
    std::chrono::milliseconds forget_after{15 * 60'000};
    size_t max_peers = 10'000;
  };
  login_throttle() : login_throttle(settings{}) {}
  explicit login_throttle(settings s) : s_(s) {}

  /// A login from `peer` arrives at `now`: how long to wait before checking
  /// it (zero for a peer with few failures).
  clock::duration before_login(const std::string& peer, clock::time_point now);
  /// The login from `peer` was refused.
  void failed(const std::string& peer, clock::time_point now);
  /// The login from `peer` was accepted.
  void succeeded(const std::string& peer);

  /// Failures counted for `peer` (0 when unknown or forgotten).
  uint32_t failures(const std::string& peer) const;
  size_t peers() const { return peers_.size(); }

private:
  struct peer_state {
    std::string peer;
    uint32_t failures = 0;
    clock::time_point last_failure;
    clock::time_point not_before; // the next login is checked no earlier
  };
  clock::duration delay_after(uint32_t failures) const;
  peer_state* find(const std::string& peer, clock::time_point now);

  settings s_;
  std::list<peer_state> order_; // least recently failed first
  std::unordered_map<std::string, std::list<peer_state>::iterator> peers_;
};

} // namespace twinrt::runtime
