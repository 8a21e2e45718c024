#include "twinrt/cluster/etcd_client.hpp"

#include <mutex>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "twinrt/cluster/etcd_json.hpp"

namespace twinrt::cluster::etcd {

using nlohmann::json;

namespace wire {

void curl_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string encode64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(bytes.data()),
                           static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

caf::expected<std::string> decode64(const std::string& text) {
  auto bad = [&] {
    return make_error(errc::bad_reply, "'" + text.substr(0, 80) + "' is not base64");
  };
  if (text.size() % 4 != 0)
    return bad();
  if (text.empty())
    return std::string{};
  std::string out(text.size() / 4 * 3, '\0');
  auto n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(text.data()),
                           static_cast<int>(text.size()));
  if (n < 0)
    return bad();
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t pad = text[text.size() - 1] == '=' ? (text[text.size() - 2] == '=' ? 2 : 1) : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

caf::expected<int64_t> int_field(const nlohmann::json& obj, const char* name) {
  auto i = obj.find(name);
  if (i == obj.end())
    return int64_t{0};
  if (i->is_number_integer())
    return i->get<int64_t>();
  if (i->is_string()) {
    try {
      size_t used = 0;
      auto s = i->get<std::string>();
      auto v = std::stoll(s, &used);
      if (used == s.size())
        return static_cast<int64_t>(v);
    } catch (const std::exception&) {
    }
  }
  return make_error(errc::bad_reply, std::string{"field "} + name + " is not a 64-bit integer: "
                                       + i->dump().substr(0, 80));
}

caf::expected<kv> read_kv(const nlohmann::json& obj) {
  kv out;
  auto key = decode64(obj.value("key", ""));
  if (!key)
    return key.error();
  auto value = decode64(obj.value("value", ""));
  if (!value)
    return value.error();
  out.key = std::move(*key);
  out.value = std::move(*value);
  for (auto [name, field] : {std::pair{"create_revision", &out.create_revision},
                             std::pair{"mod_revision", &out.mod_revision},
                             std::pair{"version", &out.version}, std::pair{"lease", &out.lease}}) {
    auto v = int_field(obj, name);
    if (!v)
      return v.error();
    *field = *v;
  }
  return out;
}

caf::expected<range_result> read_range(const nlohmann::json& obj) {
  range_result out;
  if (auto h = obj.find("header"); h != obj.end()) {
    auto rev = int_field(*h, "revision");
    if (!rev)
      return rev.error();
    out.revision = *rev;
  }
  if (auto k = obj.find("kvs"); k != obj.end() && k->is_array())
    for (auto& item : *k) {
      auto one = read_kv(item);
      if (!one)
        return one.error();
      out.kvs.push_back(std::move(*one));
    }
  return out;
}

curl_slist* json_post(CURL* c, const std::string& url, const std::string& body,
                      size_t (*write)(char*, size_t, size_t, void*), void* data) {
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, data);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  return headers;
}

} // namespace wire

namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

caf::expected<nlohmann::json> parse(const std::string& body, const std::string& what) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(errc::bad_reply, what + ": the answer is not a JSON object: " + body.substr(0, 120));
  return j;
}

json op_json(const op& o) {
  json req{{"key", wire::encode64(o.key)}};
  if (!o.range_end.empty())
    req["range_end"] = wire::encode64(o.range_end);
  switch (o.what) {
    case op::kind::put:
      req["value"] = wire::encode64(o.value);
      if (o.lease != 0)
        req["lease"] = std::to_string(o.lease);
      return json{{"request_put", req}};
    case op::kind::del:
      return json{{"request_delete_range", req}};
    case op::kind::range:
      break;
  }
  return json{{"request_range", req}};
}

json compare_json(const compare& c) {
  static const char* targets[] = {"VERSION", "CREATE", "MOD", "VALUE"};
  static const char* fields[] = {"version", "create_revision", "mod_revision", "value"};
  static const char* results[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
  auto t = static_cast<size_t>(c.what);
  json out{{"key", wire::encode64(c.key)},
           {"target", targets[t]},
           {"result", results[static_cast<size_t>(c.how)]}};
  if (c.what == compare::target::value)
    out[fields[t]] = wire::encode64(c.value);
  else
    out[fields[t]] = std::to_string(c.number);
  return out;
}

} // namespace

op op::get_prefix(std::string prefix) {
  op o{kind::range, std::move(prefix), {}, {}, 0};
  o.range_end = prefix_end(o.key);
  return o;
}

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = end.back();
    if (static_cast<unsigned char>(last) < 0xff) {
      last = static_cast<char>(static_cast<unsigned char>(last) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0'); // every key
}

client::client(std::string endpoint, std::chrono::milliseconds timeout)
  : endpoint_(std::move(endpoint)), timeout_(timeout) {
  while (!endpoint_.empty() && endpoint_.back() == '/')
    endpoint_.pop_back();
  wire::curl_init();
  curl_ = curl_easy_init();
}

client::~client() {
  if (curl_)
    curl_easy_cleanup(static_cast<CURL*>(curl_));
}

caf::expected<std::string> client::post(const std::string& path, const std::string& body) {
  std::lock_guard<std::mutex> guard(mtx_);
  auto* c = static_cast<CURL*>(curl_);
  if (!c)
    return make_error(errc::unreachable, "libcurl could not start a handle");
  std::string answer;
  auto url = endpoint_ + path;
  auto* headers = wire::json_post(c, url, body, collect, &answer);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
  auto rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK)
    return make_error(errc::unreachable, url + ": " + curl_easy_strerror(rc));
  if (status != 200) {
    auto j = nlohmann::json::parse(answer, nullptr, false);
    std::string message = answer.substr(0, 200);
    int64_t code = -1;
    if (j.is_object()) {
      if (j.contains("message") && j["message"].is_string())
        message = j["message"].get<std::string>();
      if (j.contains("code") && j["code"].is_number_integer())
        code = j["code"].get<int64_t>();
    }
    // gRPC code 5 (NotFound) is what etcd answers for an unknown lease.
    auto e = code == 5 && message.find("lease not found") != std::string::npos ? errc::lease_expired
                                                                               : errc::refused;
    return make_error(e, url + " answered HTTP " + std::to_string(status) + ": " + message);
  }
  return answer;
}

caf::expected<nlohmann::json> client::call(const std::string& path, const nlohmann::json& req) {
  auto body = post(path, req.dump());
  if (!body)
    return body.error();
  return parse(*body, path);
}

caf::expected<range_result> client::range(const std::string& key, const std::string& range_end) {
  json req{{"key", wire::encode64(key)}};
  if (!range_end.empty())
    req["range_end"] = wire::encode64(range_end);
  auto j = call("/v3/kv/range", req);
  if (!j)
    return j.error();
  return wire::read_range(*j);
}

caf::expected<range_result> client::get(const std::string& key) { return range(key, {}); }

caf::expected<range_result> client::get_prefix(const std::string& prefix) {
  return range(prefix, prefix_end(prefix));
}

caf::expected<int64_t> client::put(const std::string& key, const std::string& value, int64_t lease) {
  json req{{"key", wire::encode64(key)}, {"value", wire::encode64(value)}};
  if (lease != 0)
    req["lease"] = std::to_string(lease);
  auto j = call("/v3/kv/put", req);
  if (!j)
    return j.error();
  return wire::int_field(j->value("header", json::object()), "revision");
}

caf::expected<int64_t> client::del(const std::string& key) {
  auto j = call("/v3/kv/deleterange", json{{"key", wire::encode64(key)}});
  if (!j)
    return j.error();
  return wire::int_field(*j, "deleted");
}

caf::expected<int64_t> client::del_prefix(const std::string& prefix) {
  json req{{"key", wire::encode64(prefix)}, {"range_end", wire::encode64(prefix_end(prefix))}};
  auto j = call("/v3/kv/deleterange", req);
  if (!j)
    return j.error();
  return wire::int_field(*j, "deleted");
}

caf::expected<txn_result> client::txn(const std::vector<compare>& compares,
                                      const std::vector<op>& success,
                                      const std::vector<op>& failure) {
  json req{{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (auto& c : compares)
    req["compare"].push_back(compare_json(c));
  for (auto& o : success)
    req["success"].push_back(op_json(o));
  for (auto& o : failure)
    req["failure"].push_back(op_json(o));
  auto j = call("/v3/kv/txn", req);
  if (!j)
    return j.error();
  txn_result out;
  // A failed transaction has no "succeeded" field at all (protobuf leaves
  // false out).
  out.succeeded = j->value("succeeded", false);
  auto rev = wire::int_field(j->value("header", json::object()), "revision");
  if (!rev)
    return rev.error();
  out.revision = *rev;
  if (auto r = j->find("responses"); r != j->end() && r->is_array())
    for (auto& one : *r)
      if (auto rr = one.find("response_range"); rr != one.end()) {
        auto got = wire::read_range(*rr);
        if (!got)
          return got.error();
        out.ranges.push_back(std::move(*got));
      }
  return out;
}

caf::expected<lease_grant> client::grant(int64_t ttl_s) {
  auto j = call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}});
  if (!j)
    return j.error();
  auto id = wire::int_field(*j, "ID");
  auto ttl = wire::int_field(*j, "TTL");
  if (!id || !ttl || *id == 0)
    return make_error(errc::bad_reply, "lease grant answered " + j->dump().substr(0, 200));
  return lease_grant{*id, *ttl};
}

caf::expected<int64_t> client::keepalive(int64_t id) {
  auto j = call("/v3/lease/keepalive", json{{"ID", std::to_string(id)}});
  if (!j)
    return j.error();
  // A streaming call: the answer is wrapped in "result" (or "error").
  if (auto e = j->find("error"); e != j->end())
    return make_error(errc::refused, "lease keepalive of " + std::to_string(id) + ": " + e->dump());
  auto ttl = wire::int_field(j->value("result", json::object()), "TTL");
  if (!ttl)
    return ttl.error();
  if (*ttl <= 0)
    return make_error(errc::lease_expired, "lease " + std::to_string(id) + " has expired");
  return *ttl;
}

caf::expected<std::pair<int64_t, int64_t>> client::time_to_live(int64_t id) {
  auto j = call("/v3/lease/timetolive", json{{"ID", std::to_string(id)}});
  if (!j)
    return j.error();
  auto ttl = wire::int_field(*j, "TTL");
  auto granted = wire::int_field(*j, "grantedTTL");
  if (!ttl || !granted)
    return make_error(errc::bad_reply, "lease timetolive answered " + j->dump().substr(0, 200));
  if (*ttl <= 0)
    return make_error(errc::lease_expired, "lease " + std::to_string(id) + " has expired");
  return std::pair{*ttl, *granted};
}

caf::expected<void> client::revoke(int64_t id) {
  auto j = call("/v3/lease/revoke", json{{"ID", std::to_string(id)}});
  if (!j)
    return j.error();
  return caf::unit;
}

} // namespace twinrt::cluster::etcd
