#include "twinrt/cluster/placer.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "twinrt/cluster/errc.hpp"
#include "twinrt/cluster/membership.hpp"
#include "twinrt/cluster/shard_map.hpp"

namespace twinrt::cluster {

namespace {

// etcd refuses transactions of more than 128 operations by default.
constexpr size_t max_ops_per_txn = 64;

caf::error fenced_out(const fence& f, int64_t now) {
  return make_error(errc::conflict, "placer fence " + f.key + " of revision "
                                      + std::to_string(f.revision) + " no longer holds (now "
                                      + std::to_string(now) + "): another placer leads");
}

/// What a round reads, at one revision.
struct snapshot {
  int64_t revision = 0;
  std::vector<member_info> members;
  std::set<std::string> draining;
  std::map<uint32_t, shard_entry> entries;
};

caf::expected<snapshot> read_snapshot(etcd::client& etcd, const layout& keys, const fence& f) {
  auto r = etcd.txn({}, {etcd::op::get_prefix(keys.members()), etcd::op::get_prefix(keys.shards()),
                         etcd::op::get_prefix(keys.drains()), etcd::op::get(f.key)});
  if (!r)
    return r.error();
  if (r->ranges.size() != 4)
    return make_error(errc::bad_reply, "placement snapshot: 4 range answers expected");
  auto& placer_key = r->ranges[3].kvs;
  int64_t holder = placer_key.empty() ? 0 : placer_key[0].create_revision;
  if (holder != f.revision)
    return fenced_out(f, holder);
  snapshot out;
  out.revision = r->revision;
  out.members = read_members(r->ranges[0], keys);
  for (auto& kv : r->ranges[2].kvs)
    out.draining.insert(kv.key.substr(keys.drains().size()));
  for (auto& kv : r->ranges[1].kvs) {
    auto s = keys.shard_of_key(kv.key);
    auto e = decode_entry(kv.value, kv.key);
    if (s < 0 || !e)
      return e ? make_error(errc::bad_reply, "key " + kv.key + " names no shard") : e.error();
    e->epoch = kv.mod_revision;
    out.entries[static_cast<uint32_t>(s)] = std::move(*e);
  }
  return out;
}

/// Entries for the shards that have none, in fenced batches; how many.
caf::expected<size_t> create_missing(etcd::client& etcd, const layout& keys, const fence& f,
                                     uint32_t shard_count, const snapshot& snap,
                                     const shard_map& target) {
  std::vector<uint32_t> missing;
  for (uint32_t s = 0; s < shard_count; ++s)
    if (!snap.entries.count(s))
      missing.push_back(s);
  for (size_t i = 0; i < missing.size(); i += max_ops_per_txn) {
    std::vector<etcd::compare> cmp{etcd::compare::create_revision(f.key, f.revision)};
    std::vector<etcd::op> puts;
    for (size_t j = i; j < std::min(missing.size(), i + max_ops_per_txn); ++j) {
      shard_entry e;
      e.owner = *target.owner(missing[j]);
      cmp.push_back(etcd::compare::absent(keys.shard(missing[j])));
      puts.push_back(etcd::op::put(keys.shard(missing[j]), encode_entry(e)));
    }
    auto r = etcd.txn(cmp, puts);
    if (!r)
      return r.error();
    if (!r->succeeded)
      return make_error(errc::conflict, "creating shard map entries: the fence or an entry changed");
  }
  return missing.size();
}

/// Owners that are no live members; members whose renewal is late.
caf::expected<std::vector<std::string>> find_suspects(etcd::client& etcd, const snapshot& snap) {
  std::vector<std::string> out;
  std::set<std::string> live;
  for (auto& m : snap.members)
    live.insert(m.node);
  std::map<std::string, size_t> orphaned;
  for (auto& [s, e] : snap.entries)
    if (!live.count(e.owner))
      ++orphaned[e.owner];
  for (auto& [owner, n] : orphaned)
    out.push_back("owner " + owner + " of " + std::to_string(n) + " shards is no live member");
  for (auto& m : snap.members) {
    if (m.lease == 0)
      continue;
    auto ttl = etcd.time_to_live(m.lease);
    if (!ttl && code_of(ttl.error()) == errc::lease_expired)
      out.push_back("member " + m.node + ": its lease has expired");
    else if (!ttl)
      return ttl.error();
    else if (ttl->first * 2 < ttl->second)
      out.push_back("member " + m.node + ": its lease has " + std::to_string(ttl->first) + " of "
                    + std::to_string(ttl->second) + " s left");
  }
  return out;
}

} // namespace

caf::expected<placement_round> place_once(etcd::client& etcd, const layout& keys,
                                          uint32_t shard_count, const fence& f,
                                          size_t max_moves) {
  auto snap = read_snapshot(etcd, keys, f);
  if (!snap)
    return snap.error();
  placement_round out;
  std::vector<std::string> targets; // live and not draining
  for (auto& m : snap->members) {
    out.members.push_back(m.node);
    if (snap->draining.count(m.node))
      out.draining.push_back(m.node);
    else
      targets.push_back(m.node);
  }
  std::sort(out.members.begin(), out.members.end());
  std::sort(out.draining.begin(), out.draining.end());
  if (targets.empty()) // no member, or every one draining: nowhere to put a shard
    return out;
  shard_map target(shard_count, targets);

  auto created = create_missing(etcd, keys, f, shard_count, *snap, target);
  if (!created)
    return created.error();
  out.created = *created;
  auto suspects = find_suspects(etcd, *snap);
  if (!suspects)
    return suspects.error();
  out.suspects = std::move(*suspects);

  std::vector<uint32_t> off_target;
  for (auto& [s, e] : snap->entries)
    if (s < shard_count && e.owner != *target.owner(s))
      off_target.push_back(s);
  out.pending = off_target.size();
  if (!out.suspects.empty() || off_target.empty() || max_moves == 0)
    return out;

  std::vector<etcd::compare> cmp{etcd::compare::create_revision(f.key, f.revision)};
  std::vector<etcd::op> puts;
  for (size_t i = 0; i < off_target.size() && puts.size() < std::min(max_moves, max_ops_per_txn); ++i) {
    auto s = off_target[i];
    auto next = snap->entries[s];
    next.owner = *target.owner(s);
    cmp.push_back(etcd::compare::mod_revision(keys.shard(s), snap->entries[s].epoch));
    puts.push_back(etcd::op::put(keys.shard(s), encode_entry(next)));
  }
  auto r = etcd.txn(cmp, puts);
  if (!r)
    return r.error();
  if (!r->succeeded)
    return make_error(errc::conflict, "moving shards: the fence or an entry changed since revision "
                                        + std::to_string(snap->revision));
  out.moved = puts.size();
  out.pending -= puts.size();
  return out;
}

caf::expected<void> drain(etcd::client& etcd, const layout& keys, const std::string& node, bool on) {
  if (auto ok = check_name(node, "node id"); !ok)
    return ok.error();
  auto r = on ? etcd.put(keys.drain(node), "") : etcd.del(keys.drain(node));
  if (!r)
    return r.error();
  return caf::unit;
}

caf::expected<std::unique_ptr<placer>> placer::start(options opts) {
  auto keys = layout::make(opts.cluster);
  if (!keys)
    return keys.error();
  if (auto ok = check_name(opts.node, "node id"); !ok)
    return ok.error();
  if (opts.ttl_s < 1 || opts.shard_count < 1 || opts.shard_count > 65536)
    return make_error(errc::bad_argument, "placer: ttl " + std::to_string(opts.ttl_s)
                                            + " s and shard count "
                                            + std::to_string(opts.shard_count)
                                            + " must be at least 1 (shards at most 65536)");
  std::unique_ptr<placer> p{new placer(std::move(opts), std::move(*keys))};
  p->worker_.start([raw = p.get()] { raw->run(); });
  return p;
}

placer::~placer() { worker_.stop(); }

std::string placer::last_round() const {
  std::lock_guard<std::mutex> g(mtx_);
  return last_;
}

void placer::step_down(etcd::client& etcd) {
  token_ = 0;
  if (lease_ != 0)
    etcd.revoke(lease_); // best effort; otherwise it expires
  lease_ = 0;
}

std::string placer::campaign(etcd::client& etcd) {
  if (lease_ == 0) {
    auto l = etcd.grant(opts_.ttl_s);
    if (!l)
      return "not elected: " + describe(l.error());
    lease_ = l->id;
    renewed_ = std::chrono::steady_clock::now();
  }
  auto key = keys_.placer();
  auto r = etcd.txn({etcd::compare::absent(key)}, {etcd::op::put(key, opts_.node, lease_)},
                    {etcd::op::get(key)});
  if (!r)
    return "not elected: " + describe(r.error());
  if (!r->succeeded) {
    bool known = !r->ranges.empty() && !r->ranges[0].kvs.empty();
    return "not elected: " + (known ? r->ranges[0].kvs[0].value + " is the placer"
                                    : std::string{"the placer key changed"});
  }
  token_ = r->revision; // the key's create revision
  return {};
}

std::string placer::round(etcd::client& etcd) {
  auto now = std::chrono::steady_clock::now();
  if (lease_ != 0 && now - renewed_ >= renew_every()) {
    auto k = etcd.keepalive(lease_);
    if (k) {
      renewed_ = now;
    } else if (code_of(k.error()) == errc::lease_expired
               || now - renewed_ >= std::chrono::seconds{opts_.ttl_s}) {
      token_ = 0; // the lease is gone, or may be: no longer the placer
      lease_ = 0;
    }
  }
  if (token_ == 0)
    if (auto lost = campaign(etcd); !lost.empty())
      return lost;
  if (!count_agreed_) {
    auto c = agree_shard_count(etcd, keys_, opts_.shard_count);
    if (!c)
      return describe(c.error());
    count_agreed_ = true;
  }
  ++rounds_;
  auto r = place_once(etcd, keys_, opts_.shard_count, fence{keys_.placer(), token_}, opts_.max_moves);
  if (!r) {
    // A conflict may mean another placer leads: then step down.
    auto held = etcd.get(keys_.placer());
    if (held && (held->kvs.empty() || held->kvs[0].create_revision != token_))
      step_down(etcd);
    return describe(r.error());
  }
  moves_ += r->moved;
  auto outcome = std::to_string(r->members.size()) + " members, " + std::to_string(r->created)
                 + " created, " + std::to_string(r->moved) + " moved, "
                 + std::to_string(r->pending) + " pending";
  for (auto& s : r->suspects)
    outcome += "; suspect: " + s;
  for (auto& d : r->draining)
    outcome += "; draining: " + d;
  return outcome;
}

void placer::run() {
  etcd::client etcd(opts_.endpoint, std::chrono::milliseconds{1000});
  do {
    auto outcome = round(etcd);
    std::lock_guard<std::mutex> g(mtx_);
    last_ = std::move(outcome);
    // Renewals come every third of the TTL however long a round is.
  } while (worker_.pause(std::min<std::chrono::milliseconds>(opts_.round, renew_every())));
  if (token_ != 0 || lease_ != 0)
    step_down(etcd);
}

} // namespace twinrt::cluster
