#include "twinrt/cluster/shard_table.hpp"

#include <nlohmann/json.hpp>

#include "twinrt/cluster/errc.hpp"

namespace twinrt::cluster {

std::string encode_entry(const shard_entry& e) {
  return nlohmann::json{{"owner", e.owner}, {"replicas", e.replicas}, {"in_sync", e.in_sync}}.dump();
}

caf::expected<shard_entry> decode_entry(const std::string& value, const std::string& key) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::bad_reply, "shard map entry " + key + ": " + why);
  };
  auto j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return bad("not a JSON object: " + value.substr(0, 80));
  shard_entry out;
  if (!j.contains("owner") || !j["owner"].is_string())
    return bad("no owner string");
  out.owner = j["owner"].get<std::string>();
  for (auto [name, list] : {std::pair{"replicas", &out.replicas}, std::pair{"in_sync", &out.in_sync}}) {
    if (!j.contains(name))
      continue;
    if (!j[name].is_array())
      return bad(std::string{name} + " is not a list");
    for (auto& n : j[name]) {
      if (!n.is_string())
        return bad(std::string{name} + " holds a non-string");
      list->push_back(n.get<std::string>());
    }
  }
  return out;
}

caf::expected<shard_snapshot> load_shards(etcd::client& etcd, const layout& keys) {
  auto got = etcd.get_prefix(keys.shards());
  if (!got)
    return got.error();
  shard_snapshot out;
  out.revision = got->revision;
  for (auto& kv : got->kvs) {
    auto s = keys.shard_of_key(kv.key);
    if (s < 0)
      return make_error(errc::bad_reply, "key " + kv.key + " under the shard map names no shard");
    auto e = decode_entry(kv.value, kv.key);
    if (!e)
      return e.error();
    e->epoch = kv.mod_revision;
    out.entries[static_cast<uint32_t>(s)] = std::move(*e);
  }
  return out;
}

caf::expected<int64_t> cas_shard(etcd::client& etcd, const layout& keys, uint32_t shard,
                                 const shard_entry& next, int64_t epoch,
                                 const std::optional<fence>& f) {
  auto key = keys.shard(shard);
  std::vector<etcd::compare> cmp{etcd::compare::mod_revision(key, epoch)};
  std::vector<etcd::op> on_failure{etcd::op::get(key)};
  if (f) {
    cmp.push_back(etcd::compare::create_revision(f->key, f->revision));
    on_failure.push_back(etcd::op::get(f->key));
  }
  auto r = etcd.txn(cmp, {etcd::op::put(key, encode_entry(next))}, on_failure);
  if (!r)
    return r.error();
  if (r->succeeded)
    return r->revision;
  int64_t now = r->ranges.size() > 0 && !r->ranges[0].kvs.empty() ? r->ranges[0].kvs[0].mod_revision : 0;
  if (now != epoch)
    return make_error(errc::conflict, "shard " + std::to_string(shard) + " has epoch "
                                        + std::to_string(now) + ", not " + std::to_string(epoch));
  int64_t fence_now = r->ranges.size() > 1 && !r->ranges[1].kvs.empty()
                        ? r->ranges[1].kvs[0].create_revision
                        : 0;
  return make_error(errc::conflict, "fence " + (f ? f->key : std::string{}) + " of revision "
                                      + std::to_string(f ? f->revision : 0)
                                      + " no longer holds (now " + std::to_string(fence_now)
                                      + "): shard " + std::to_string(shard) + " left unchanged");
}

caf::expected<uint32_t> agree_shard_count(etcd::client& etcd, const layout& keys, uint32_t count) {
  auto key = keys.shard_count();
  auto r = etcd.txn({etcd::compare::absent(key)}, {etcd::op::put(key, std::to_string(count))},
                    {etcd::op::get(key)});
  if (!r)
    return r.error();
  if (r->succeeded)
    return count;
  auto stored = r->ranges.empty() || r->ranges[0].kvs.empty() ? std::string{}
                                                              : r->ranges[0].kvs[0].value;
  if (stored != std::to_string(count))
    return make_error(errc::bad_argument, "cluster " + keys.cluster() + " has " + stored
                                            + " virtual shards, not " + std::to_string(count));
  return count;
}

} // namespace twinrt::cluster
