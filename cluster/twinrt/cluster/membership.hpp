#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/cluster/etcd_client.hpp"
#include "twinrt/cluster/layout.hpp"
#include "twinrt/cluster/worker.hpp"

namespace twinrt::cluster {

/// A live member as etcd lists it: its key exists only while its lease does.
struct member_info {
  std::string node;
  std::string address;     // where its peers reach it (given at join)
  int64_t lease = 0;
  int64_t joined_revision = 0; // the create revision of its key
};

/// The members in a range read of keys.members().
std::vector<member_info> read_members(const etcd::range_result& got, const layout& keys);

/// Every live member of the cluster, by node id; and the store's revision.
caf::expected<std::vector<member_info>> list_members(etcd::client& etcd, const layout& keys,
                                                     int64_t* revision = nullptr);

/// This node's membership: a key members/<node> bound to a lease of
/// `ttl` seconds, renewed by a thread of its own every third of the TTL.
/// When the node stops renewing (killed, stopped, cut off from etcd for
/// longer than the TTL), etcd deletes the key and the others see it gone.
class membership {
public:
  struct options {
    std::string endpoint; // "http://127.0.0.1:2379"
    std::string cluster;
    std::string node;
    std::string address; // where peers reach this node; informational for now
    int64_t ttl_s = 3;
  };

  /// Joins: grants the lease and creates the member key if absent. A node id
  /// already live answers errc::conflict ("node n1 is already a live member
  /// of cluster c since revision 12"); etcd down answers errc::unreachable.
  static caf::expected<std::unique_ptr<membership>> join(options opts);

  /// Leaves: stops renewing and revokes the lease, so the key goes at once.
  ~membership();
  membership(const membership&) = delete;
  membership& operator=(const membership&) = delete;

  const std::string& node() const { return opts_.node; }
  int64_t lease() const { return lease_; }
  /// False once a renewal found the lease expired: the node is no member any
  /// more and must act as one that was declared dead (stop owning shards).
  bool alive() const { return alive_.load(); }
  /// Renewals that did not reach etcd in a row (0 when the last one did).
  uint64_t failed_renewals() const { return failed_.load(); }

private:
  explicit membership(options opts) : opts_(std::move(opts)) {}
  void renew();

  options opts_;
  int64_t lease_ = 0;
  std::atomic<bool> alive_{true};
  std::atomic<uint64_t> failed_{0};
  worker worker_;
};

} // namespace twinrt::cluster
