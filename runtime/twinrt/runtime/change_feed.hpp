#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt::runtime {

/// A twin as it is after a change.
struct twin_change {
  twin_meta meta;
  size_t children = 0;
  twins::twin_state state;
};

/// One watcher's view of the feed: the latest change of each twin not yet
/// taken. A newer change of the same twin replaces the older one (coalesced),
/// so memory is bounded by the number of twins watched, however slow the
/// consumer. Publishers (twin actors) and the consumer may be on any threads.
class change_subscription {
public:
  /// Which twins the subscriber may see; asked on the publisher's thread for
  /// each change and on the consumer's for each change it takes.
  using filter = std::function<bool(const std::string& id)>;

  explicit change_subscription(filter covers) : covers_(std::move(covers)) {}

  bool covers(const std::string& id) const { return covers_(id); }

  /// Publisher side: keep `c` as the latest change of its twin.
  void offer(const twin_change& c);

  /// Consumer side: runs `ready` once (on the publisher's thread, or right
  /// away) as soon as something is pending. One waiter at a time.
  void when_ready(std::function<void()> ready);
  /// Consumer side: all pending changes, in id order, of twins the filter
  /// still covers (one moved away since its change is dropped); `coalesced`
  /// is how many offers were folded into them.
  std::vector<twin_change> take(uint64_t& coalesced);
  /// Offers folded into the pending changes since the last take().
  uint64_t coalesced_pending() const;

  /// Ends the subscription: further offers are dropped.
  void close();
  bool closed() const;

private:
  filter covers_;
  mutable std::mutex mtx_;
  std::map<std::string, twin_change> pending_;
  uint64_t coalesced_ = 0;
  std::function<void()> ready_;
  bool closed_ = false;
};

/// Fans twin changes out to the subscriptions whose filter covers them.
/// Costs one atomic load per change while nobody watches.
class change_feed {
public:
  std::shared_ptr<change_subscription> subscribe(change_subscription::filter covers);
  bool watched() const { return live_.load(std::memory_order_relaxed) > 0; }
  void publish(const twin_change& c);

private:
  std::mutex mtx_;
  std::vector<std::weak_ptr<change_subscription>> subs_;
  std::atomic<int> live_{0};
};

/// True when the id `id` is `subtree` or starts with `subtree` + "/" ("" covers
/// everything): by name, not by the rollup tree (node::in_tree).
bool in_subtree(const std::string& id, const std::string& subtree);

} // namespace twinrt::runtime
