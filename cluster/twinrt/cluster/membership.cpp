#include "twinrt/cluster/membership.hpp"

#include <nlohmann/json.hpp>

#include "twinrt/cluster/errc.hpp"

namespace twinrt::cluster {

std::vector<member_info> read_members(const etcd::range_result& got, const layout& keys) {
  std::vector<member_info> out;
  auto prefix = keys.members();
  for (auto& kv : got.kvs) {
    member_info m;
    m.node = kv.key.substr(prefix.size());
    m.lease = kv.lease;
    m.joined_revision = kv.create_revision;
    auto j = nlohmann::json::parse(kv.value, nullptr, false);
    if (j.is_object() && j.contains("address") && j["address"].is_string())
      m.address = j["address"].get<std::string>();
    out.push_back(std::move(m));
  }
  return out;
}

caf::expected<std::vector<member_info>> list_members(etcd::client& etcd, const layout& keys,
                                                     int64_t* revision) {
  auto got = etcd.get_prefix(keys.members());
  if (!got)
    return got.error();
  if (revision)
    *revision = got->revision;
  return read_members(*got, keys);
}

caf::expected<std::unique_ptr<membership>> membership::join(options opts) {
  auto keys = layout::make(opts.cluster);
  if (!keys)
    return keys.error();
  if (auto ok = check_name(opts.node, "node id"); !ok)
    return ok.error();
  if (opts.ttl_s < 1)
    return make_error(errc::bad_argument, "member lease TTL must be at least 1 s, not "
                                            + std::to_string(opts.ttl_s));
  std::unique_ptr<membership> self{new membership(opts)};
  etcd::client etcd(opts.endpoint);
  auto lease = etcd.grant(opts.ttl_s);
  if (!lease)
    return lease.error();
  self->lease_ = lease->id;
  auto key = keys->member(opts.node);
  nlohmann::json value{{"node", opts.node}, {"address", opts.address}};
  auto r = etcd.txn({etcd::compare::absent(key)}, {etcd::op::put(key, value.dump(), lease->id)},
                    {etcd::op::get(key)});
  if (!r || !r->succeeded) {
    etcd.revoke(lease->id);
    if (!r)
      return r.error();
    int64_t since = r->ranges.empty() || r->ranges[0].kvs.empty()
                      ? 0
                      : r->ranges[0].kvs[0].create_revision;
    return make_error(errc::conflict, "node " + opts.node + " is already a live member of cluster "
                                        + opts.cluster + " since revision " + std::to_string(since));
  }
  self->worker_.start([s = self.get()] { s->renew(); });
  return self;
}

membership::~membership() {
  worker_.stop();
  if (alive_) {
    etcd::client etcd(opts_.endpoint, std::chrono::milliseconds{1000});
    etcd.revoke(lease_); // best effort: if etcd is away, the lease expires by itself
  }
}

void membership::renew() {
  etcd::client etcd(opts_.endpoint, std::chrono::milliseconds{opts_.ttl_s * 1000 / 3 + 500});
  auto period = std::chrono::milliseconds{opts_.ttl_s * 1000 / 3};
  // A renewal that failed to reach etcd is tried again sooner.
  while (worker_.pause(failed_ == 0 ? period : period / 4)) {
    auto r = etcd.keepalive(lease_);
    if (r) {
      failed_ = 0;
    } else if (code_of(r.error()) == errc::lease_expired) {
      alive_ = false;
      return;
    } else {
      ++failed_;
    }
  }
}

} // namespace twinrt::cluster
