#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/cluster/etcd_client.hpp"
#include "twinrt/cluster/layout.hpp"
#include "twinrt/cluster/shard_table.hpp"
#include "twinrt/cluster/worker.hpp"

namespace twinrt::cluster {

/// What one placement round saw and did.
struct placement_round {
  std::vector<std::string> members;  // live, sorted
  std::vector<std::string> draining; // live members asked to hand over their shards
  std::vector<std::string> suspects; // why nothing moved, when not empty
  size_t created = 0;                // entries written for shards that had none
  size_t moved = 0;                  // owners changed this round
  size_t pending = 0;                // shards still not on their rendezvous owner
};

/// One round of the placer holding fence `f`, over a snapshot read in one
/// transaction (members, shard map, placer key):
/// - the targets are the live members not draining (a key drain/<node>,
///   see drain()); none: nothing;
/// - shards without an entry get their rendezvous owner among the targets (shard_map.hpp);
///   nothing is stored for them yet, so this is no move;
/// - a member is suspect when its lease has less than half its TTL left (a
///   renewal is late), and so is an owner that is no member any more (its
///   lease expired; its shards stay with it until it returns or is drained):
///   while any is suspect, nothing moves;
/// - otherwise at most `max_moves` shards whose owner is not their rendezvous
///   owner among the targets get it (so a draining member's shards leave it), in one transaction fenced by `f` and every moved entry's epoch.
/// errc::conflict when the fence no longer holds (another placer leads) or an
/// entry changed since the snapshot (the next round reads again).
caf::expected<placement_round> place_once(etcd::client& etcd, const layout& keys,
                                          uint32_t shard_count, const fence& f,
                                          size_t max_moves);

/// Asks the placer to move every shard away from `node` (a key drain/<node>;
/// `on` false withdraws it). The node may leave once it owns nothing.
caf::expected<void> drain(etcd::client& etcd, const layout& keys, const std::string& node, bool on);

/// Runs for election as the cluster's placer and, while elected, places
/// shards round after round on a thread of its own. Election: create the
/// key `placer` bound to a lease of `ttl_s` only if it is absent; its create
/// revision is the placer's fence token for every write (no etcd lock). A
/// placer whose lease expired (killed, stopped, cut off) loses the key; the
/// next candidate's create makes a new one, and the old placer's fenced
/// writes fail from then on.
class placer {
public:
  struct options {
    std::string endpoint;
    std::string cluster;
    std::string node;
    int64_t ttl_s = 3;
    uint32_t shard_count = 256;
    size_t max_moves = 4; // per round
    std::chrono::milliseconds round{250};
  };

  /// Refuses a bad cluster name, node id or setting (errc::bad_argument).
  static caf::expected<std::unique_ptr<placer>> start(options opts);
  /// Stops; an elected placer steps down (revokes its lease) so that
  /// another is elected at once.
  ~placer();
  placer(const placer&) = delete;
  placer& operator=(const placer&) = delete;

  bool elected() const { return token_.load() != 0; }
  /// The create revision of the placer key while elected, 0 otherwise.
  int64_t token() const { return token_.load(); }
  uint64_t rounds() const { return rounds_.load(); }
  uint64_t moves() const { return moves_.load(); }
  /// The last round's outcome, or the error that ended it.
  std::string last_round() const;

private:
  explicit placer(options opts, layout keys) : opts_(std::move(opts)), keys_(std::move(keys)) {}
  void run();
  /// One round: renew, campaign or place; what happened, for last_round().
  std::string round(etcd::client& etcd);
  /// Tries to become the placer; empty when elected, else why not.
  std::string campaign(etcd::client& etcd);
  std::chrono::milliseconds renew_every() const {
    return std::chrono::milliseconds{opts_.ttl_s * 1000 / 3};
  }
  void step_down(etcd::client& etcd);

  options opts_;
  layout keys_;
  int64_t lease_ = 0; // placer thread only, as are the two below
  std::chrono::steady_clock::time_point renewed_;
  bool count_agreed_ = false;
  std::atomic<int64_t> token_{0};
  std::atomic<uint64_t> rounds_{0}, moves_{0};
  mutable std::mutex mtx_; // guards last_
  std::string last_;
  worker worker_;
};

} // namespace twinrt::cluster
