#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <nlohmann/json_fwd.hpp>

#include "twinrt/cluster/errc.hpp"

namespace twinrt::cluster::etcd {

/// One key of etcd with its revisions (etcd's mvccpb.KeyValue).
struct kv {
  std::string key;
  std::string value;
  int64_t create_revision = 0; // 0: the key does not exist
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

/// The keys a range read found, and the store's revision when it read them.
struct range_result {
  int64_t revision = 0;
  std::vector<kv> kvs;
};

/// One condition of a transaction: a key's revision, version or value
/// compared with a given one. A key that does not exist has every revision
/// and its version 0.
struct compare {
  enum class target { version, create, mod, value };
  enum class op { equal, greater, less, not_equal };
  std::string key;
  target what = target::mod;
  op how = op::equal;
  int64_t number = 0;
  std::string value;

  static compare mod_revision(std::string key, int64_t rev) {
    return {std::move(key), target::mod, op::equal, rev, {}};
  }
  static compare create_revision(std::string key, int64_t rev) {
    return {std::move(key), target::create, op::equal, rev, {}};
  }
  static compare version(std::string key, int64_t v) {
    return {std::move(key), target::version, op::equal, v, {}};
  }
  /// The key does not exist (its create revision is 0).
  static compare absent(std::string key) { return create_revision(std::move(key), 0); }
};

/// One operation of a transaction.
struct op {
  enum class kind { put, del, range };
  kind what = kind::range;
  std::string key;
  std::string range_end; // empty: just `key`
  std::string value;
  int64_t lease = 0;

  static op put(std::string key, std::string value, int64_t lease = 0) {
    return {kind::put, std::move(key), {}, std::move(value), lease};
  }
  static op del(std::string key) { return {kind::del, std::move(key), {}, {}, 0}; }
  static op get(std::string key) { return {kind::range, std::move(key), {}, {}, 0}; }
  static op get_prefix(std::string prefix);
};

/// What a transaction did: which branch ran, at which revision, and the
/// answer of each range operation of that branch, in order.
struct txn_result {
  bool succeeded = false;
  int64_t revision = 0;
  std::vector<range_result> ranges;
};

struct lease_grant {
  int64_t id = 0;
  int64_t ttl_s = 0;
};

/// The end of the range of every key starting with `prefix` (etcd's
/// range_end: the prefix with its last byte incremented).
std::string prefix_end(const std::string& prefix);

/// A client of one etcd member's v3 JSON gateway (HTTP/1.1 and JSON; keys and
/// values travel base64-encoded, 64-bit numbers as strings). Every call
/// blocks for at most the timeout and answers etcd's result or an error of
/// the cluster's errc: unreachable when etcd did not answer, refused when it
/// answered with an error, bad_reply when the answer does not read.
/// Thread-safe: calls from several threads take turns on one connection
/// (a caller that needs parallel requests uses one client per thread).
class client {
public:
  /// `endpoint`: "http://127.0.0.1:2379".
  explicit client(std::string endpoint,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds{3000});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  const std::string& endpoint() const { return endpoint_; }

  caf::expected<range_result> get(const std::string& key);
  caf::expected<range_result> get_prefix(const std::string& prefix);
  /// Keys in [key, range_end).
  caf::expected<range_result> range(const std::string& key, const std::string& range_end);
  /// The revision of the put.
  caf::expected<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);
  /// The number of keys deleted.
  caf::expected<int64_t> del(const std::string& key);
  caf::expected<int64_t> del_prefix(const std::string& prefix);

  /// If every compare holds, runs `success`, else `failure`; atomically.
  caf::expected<txn_result> txn(const std::vector<compare>& compares,
                                const std::vector<op>& success,
                                const std::vector<op>& failure = {});

  /// A new lease of `ttl_s` seconds.
  caf::expected<lease_grant> grant(int64_t ttl_s);
  /// Renews lease `id`; its TTL again. errc::lease_expired when etcd no
  /// longer knows it (it answers without a TTL then).
  caf::expected<int64_t> keepalive(int64_t id);
  /// The seconds lease `id` has left and the TTL it was granted with;
  /// errc::lease_expired when it is gone.
  caf::expected<std::pair<int64_t, int64_t>> time_to_live(int64_t id);
  /// Ends lease `id` and deletes its keys; errc::lease_expired when it was gone.
  caf::expected<void> revoke(int64_t id);

  /// POSTs `body` (JSON) to `path` ("/v3/kv/range"); the answer's body.
  caf::expected<std::string> post(const std::string& path, const std::string& body);

private:
  caf::expected<nlohmann::json> call(const std::string& path, const nlohmann::json& req);

  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  std::mutex mtx_;
  void* curl_ = nullptr; // CURL*, reused so that the connection stays open
};

} // namespace twinrt::cluster::etcd
