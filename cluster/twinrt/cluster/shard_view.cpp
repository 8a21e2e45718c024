#include "twinrt/cluster/shard_view.hpp"

#include <chrono>

#include "twinrt/cluster/errc.hpp"

namespace twinrt::cluster {

caf::expected<std::unique_ptr<shard_view>> shard_view::open(const std::string& endpoint,
                                                            const std::string& cluster) {
  auto keys = layout::make(cluster);
  if (!keys)
    return keys.error();
  std::unique_ptr<shard_view> v{new shard_view(endpoint, std::move(*keys))};
  if (auto ok = v->load(); !ok)
    return ok.error();
  v->worker_.start([raw = v.get()] { raw->resync_loop(); });
  return v;
}

shard_view::~shard_view() {
  worker_.stop();
  watch_.reset();
}

caf::expected<void> shard_view::load() {
  etcd::client etcd(endpoint_);
  auto snap = load_shards(etcd, keys_);
  if (!snap)
    return snap.error();
  watch_.reset(); // the old watch (if any) stopped: compacted
  {
    std::lock_guard<std::mutex> g(mtx_);
    entries_ = std::move(snap->entries);
    revision_ = snap->revision;
    resync_ = false;
  }
  ++loads_;
  watch_ = std::make_unique<etcd::watch>(
    endpoint_, keys_.shards(), etcd::prefix_end(keys_.shards()), snap->revision + 1,
    [this](const std::vector<etcd::watch_event>& evs) { apply(evs); },
    [this](const caf::error&) {
      // Compacted (or refused): read the whole map again, on the resync thread.
      {
        std::lock_guard<std::mutex> g(mtx_);
        resync_ = true;
      }
      worker_.wake();
    });
  return caf::unit;
}

void shard_view::apply(const std::vector<etcd::watch_event>& events) {
  std::lock_guard<std::mutex> g(mtx_);
  for (auto& e : events) {
    auto s = keys_.shard_of_key(e.current.key);
    if (s >= 0) {
      if (e.what == etcd::watch_event::kind::del) {
        entries_.erase(static_cast<uint32_t>(s));
      } else if (auto entry = decode_entry(e.current.value, e.current.key)) {
        entry->epoch = e.current.mod_revision;
        entries_[static_cast<uint32_t>(s)] = std::move(*entry);
      } else {
        // A garbled entry: the shard has no usable owner until it is fixed.
        entries_.erase(static_cast<uint32_t>(s));
      }
    }
    revision_ = std::max(revision_, e.current.mod_revision);
  }
}

void shard_view::resync_loop() {
  std::chrono::milliseconds idle = std::chrono::hours{1}, retry{500};
  auto wait = idle;
  while (worker_.pause(wait)) {
    bool needed;
    {
      std::lock_guard<std::mutex> g(mtx_);
      needed = resync_;
    }
    if (needed) // etcd away: try again shortly
      wait = load() ? idle : retry;
  }
}

std::optional<shard_entry> shard_view::entry(uint32_t shard) const {
  std::lock_guard<std::mutex> g(mtx_);
  auto i = entries_.find(shard);
  if (i == entries_.end())
    return std::nullopt;
  return i->second;
}

std::map<uint32_t, shard_entry> shard_view::entries() const {
  std::lock_guard<std::mutex> g(mtx_);
  return entries_;
}

int64_t shard_view::revision() const {
  std::lock_guard<std::mutex> g(mtx_);
  return revision_;
}

} // namespace twinrt::cluster
