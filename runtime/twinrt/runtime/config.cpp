#include "twinrt/runtime/config.hpp"

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <vector>

#include <toml++/toml.h>

#include "twinrt/runtime/rpc_security.hpp"
#include "twinrt/runtime/sharding.hpp"

namespace twinrt::runtime {

namespace {

struct bad_setting {
  std::string where;
};

// Reads node `n` (may be null: nothing to read) called `section.key`.
template <class T>
void read_node(const toml::node* n, const char* section, const char* key, T& out) {
  if (n == nullptr)
    return;
  auto fail = [&](const char* what) {
    throw bad_setting{std::to_string(n->source().begin.line) + ": '" + section + "."
                      + key + "' must be " + what};
  };
  if constexpr (std::is_same_v<T, std::string>) {
    auto v = n->value<std::string>();
    if (!v)
      fail("a string");
    out = *v;
  } else if constexpr (std::is_same_v<T, bool>) {
    auto v = n->value_exact<bool>(); // value<bool>() would also take 0 and 1
    if (!v)
      fail("true or false");
    out = *v;
  } else {
    // value_exact: value<int64_t>() would also take `true` and `2.0`.
    auto v = n->value_exact<int64_t>();
    if (!v || *v < 0)
      fail("a whole number, not negative");
    if (static_cast<uint64_t>(*v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
      fail(("at most " + std::to_string(std::numeric_limits<T>::max())).c_str());
    out = static_cast<T>(*v);
  }
}

template <class T>
void read(const toml::table& t, const char* section, const char* key, T& out) {
  read_node(t.at_path(std::string(section) + "." + key).node(), section, key, out);
}

void check_keys(const toml::table& doc) {
  static const std::map<std::string, std::vector<std::string>> known{
    {"node", {"data_dir", "models_dir", "threads", "shards"}},
    {"ingest", {"max_batch_samples", "max_inflight_batches", "future_skew_ms"}},
    {"twins", {"passivate_after_ms", "rollup_delay_ms", "sweep_interval_ms"}},
    {"storage", {"sync_wal", "write_buffer_mb", "block_cache_mb", "virtual_shards"}},
    {"metrics", {"address", "max_asset_series"}},
    {"rpc", {"address", "read_cache", "tokens", "tls", "plaintext", "max_connections",
             "max_calls_in_flight", "max_message_bytes", "login_timeout_ms"}},
    {"events", {"keep"}},
    {"audit", {"max_mb"}},
    {"sparkplug", {"broker", "tls", "client_id", "username", "password", "groups", "host_id",
                   "max_payload_bytes", "rebirth_interval_ms", "devices"}},
    {"mqtt", {"broker", "tls", "client_id", "username", "password", "qos", "keep_alive_s",
              "dead_letter_topic", "max_payload_bytes", "batch_messages", "linger_ms",
              "routes"}},
    {"edge", {"id", "central", "tls", "token", "buffer_dir", "disk_budget_mb", "forward_batch",
              "channels"}},
  };
  for (auto&& [section, node] : doc) {
    if (section.str() == "sinks" || section.str() == "routes")
      continue; // arrays of tables, checked by read_routing
    auto k = known.find(std::string(section.str()));
    if (k == known.end())
      throw bad_setting{std::to_string(node.source().begin.line) + ": unknown section ["
                        + std::string(section.str()) + "]"};
    auto t = node.as_table();
    if (!t)
      throw bad_setting{std::to_string(node.source().begin.line) + ": ["
                        + std::string(section.str()) + "] must be a table"};
    for (auto&& [key, value] : *t) {
      if (std::find(k->second.begin(), k->second.end(), std::string(key.str())) == k->second.end())
        throw bad_setting{std::to_string(value.source().begin.line) + ": unknown key '"
                          + std::string(key.str()) + "' in ["
                          + std::string(section.str()) + "]"};
    }
  }
}

// The table `name` (e.g. "mqtt.tls"), whose keys must all be in `keys`; null when absent.
const toml::table* tls_table(const toml::table& doc, const std::string& name,
                             std::initializer_list<const char*> keys) {
  auto n = doc.at_path(name).node();
  if (n == nullptr)
    return nullptr;
  auto t = n->as_table();
  if (!t)
    throw bad_setting{std::to_string(n->source().begin.line) + ": [" + name + "] must be a table"};
  for (auto&& [key, value] : *t)
    if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return key.str() == k; }))
      throw bad_setting{std::to_string(value.source().begin.line) + ": unknown key '"
                        + std::string(key.str()) + "' in [" + name + "]"};
  return t;
}

// [mqtt.tls] / [sparkplug.tls]: the files for an mqtts:// broker (tls.enabled
// comes from the broker's scheme).
void read_broker_tls(const toml::table& doc, const std::string& section, const std::string& broker,
                     node_config::broker_tls& tls) {
  auto name = section + ".tls";
  auto t = tls_table(doc, name,
                     {"ca", "certificate", "private_key", "server_name", "verify_server_name"});
  if (t == nullptr)
    return;
  auto line = std::to_string(t->source().begin.line);
  if (!tls.enabled)
    throw bad_setting{line + ": [" + name + "] needs " + section + ".broker = \"mqtts://HOST:PORT\""
                      + (broker.empty() ? std::string() : ", not '" + broker + "'")};
  read_node(t->get("ca"), name.c_str(), "ca", tls.ca);
  read_node(t->get("certificate"), name.c_str(), "certificate", tls.certificate);
  read_node(t->get("private_key"), name.c_str(), "private_key", tls.private_key);
  read_node(t->get("server_name"), name.c_str(), "server_name", tls.server_name);
  read_node(t->get("verify_server_name"), name.c_str(), "verify_server_name",
            tls.verify_server_name);
  if (tls.certificate.empty() != tls.private_key.empty())
    throw bad_setting{line + ": [" + name + "] needs both certificate and private_key, or neither"};
}

// [rpc.tls]: certificate and private_key, both or neither.
void read_tls(const toml::table& doc, node_config& cfg) {
  auto n = doc.at_path("rpc.tls").node();
  if (n == nullptr)
    return;
  auto line = std::to_string(n->source().begin.line);
  auto t = n->as_table();
  if (!t)
    throw bad_setting{line + ": [rpc.tls] must be a table"};
  for (auto&& [key, value] : *t) {
    auto k = std::string(key.str());
    if (k != "certificate" && k != "private_key")
      throw bad_setting{std::to_string(value.source().begin.line) + ": unknown key '" + k
                        + "' in [rpc.tls]"};
  }
  read_node(t->get("certificate"), "rpc.tls", "certificate", cfg.rpc_tls_certificate);
  read_node(t->get("private_key"), "rpc.tls", "private_key", cfg.rpc_tls_private_key);
  if (cfg.rpc_tls_certificate.empty() || cfg.rpc_tls_private_key.empty())
    throw bad_setting{line + ": [rpc.tls] needs both certificate and private_key"};
}

// [[rpc.tokens]] entries: name, secret or secret_hash, role, scope.
void read_tokens(const toml::table& doc, node_config& cfg) {
  auto n = doc.at_path("rpc.tokens").node();
  if (n == nullptr)
    return;
  auto arr = n->as_array();
  if (!arr)
    throw bad_setting{std::to_string(n->source().begin.line)
                      + ": 'rpc.tokens' must be an array of tables ([[rpc.tokens]])"};
  for (auto&& e : *arr) {
    auto t = e.as_table();
    auto line = std::to_string(e.source().begin.line);
    if (!t)
      throw bad_setting{line + ": each [[rpc.tokens]] entry must be a table"};
    node_config::token tok;
    for (auto&& [key, value] : *t) {
      auto v = value.value<std::string>();
      auto k = std::string(key.str());
      if (!v)
        throw bad_setting{std::to_string(value.source().begin.line) + ": 'rpc.tokens." + k
                          + "' must be a string"};
      if (k == "name")
        tok.name = *v;
      else if (k == "secret")
        tok.secret = *v;
      else if (k == "secret_hash")
        tok.secret_hash = *v;
      else if (k == "role")
        tok.role = *v;
      else if (k == "scope")
        tok.scope = *v;
      else
        throw bad_setting{std::to_string(value.source().begin.line) + ": unknown key '" + k
                          + "' in [[rpc.tokens]]"};
    }
    if (tok.name.empty() || (tok.secret.empty() && tok.secret_hash.empty()))
      throw bad_setting{line + ": [[rpc.tokens]] needs a name and a secret (or secret_hash)"};
    if (!tok.secret.empty() && !tok.secret_hash.empty())
      throw bad_setting{line + ": token '" + tok.name
                        + "' gives both secret and secret_hash; keep one"};
    if (!tok.secret_hash.empty())
      if (auto why = check_secret_hash(tok.secret_hash))
        throw bad_setting{line + ": token '" + tok.name + "': secret_hash is malformed: "
                          + describe(why)};
    if (tok.role != "read" && tok.role != "write" && tok.role != "admin")
      throw bad_setting{line + ": token '" + tok.name + "': role '" + tok.role
                        + "' is not read, write or admin"};
    cfg.rpc_tokens.push_back(std::move(tok));
  }
}

// [sparkplug]: the scalar keys, `groups` and the [[sparkplug.devices]] rules.
void read_sparkplug(const toml::table& doc, node_config& cfg) {
  if (doc.get("sparkplug") == nullptr)
    return;
  auto& sp = cfg.sparkplug;
  sp.enabled = true;
  read(doc, "sparkplug", "broker", sp.broker);
  if (!sp.broker.empty()) {
    auto b = parse_broker(sp.broker);
    if (!b)
      throw bad_setting{std::to_string(doc.at_path("sparkplug.broker").node()->source().begin.line)
                        + ": 'sparkplug.broker' must be HOST:PORT or mqtts://HOST:PORT, not '"
                        + sp.broker + "'"};
    sp.tls.enabled = b->tls;
  }
  read_broker_tls(doc, "sparkplug", sp.broker, sp.tls);
  read(doc, "sparkplug", "client_id", sp.client_id);
  read(doc, "sparkplug", "username", sp.username);
  read(doc, "sparkplug", "password", sp.password);
  read(doc, "sparkplug", "host_id", sp.host_id);
  read(doc, "sparkplug", "max_payload_bytes", sp.max_payload_bytes);
  read(doc, "sparkplug", "rebirth_interval_ms", sp.rebirth_interval_ms);
  auto line_of = [](const toml::node& n) { return std::to_string(n.source().begin.line); };
  if (auto g = doc.at_path("sparkplug.groups").node()) {
    auto arr = g->as_array();
    if (!arr)
      throw bad_setting{line_of(*g) + ": 'sparkplug.groups' must be an array of group ids"};
    for (auto&& e : *arr) {
      auto v = e.value<std::string>();
      if (!v || v->empty() || v->find_first_of("/+#") != std::string::npos)
        throw bad_setting{line_of(e) + ": 'sparkplug.groups' entries must be group ids "
                                       "(not empty, no '/', '+' or '#')"};
      sp.groups.push_back(*v);
    }
  }
  auto d = doc.at_path("sparkplug.devices").node();
  if (d == nullptr)
    return;
  auto arr = d->as_array();
  if (!arr)
    throw bad_setting{line_of(*d)
                      + ": 'sparkplug.devices' must be an array of tables ([[sparkplug.devices]])"};
  for (auto&& e : *arr) {
    auto t = e.as_table();
    if (!t)
      throw bad_setting{line_of(e) + ": each [[sparkplug.devices]] entry must be a table"};
    node_config::sparkplug_rule rule;
    for (auto&& [key, value] : *t) {
      auto k = std::string(key.str());
      if (k == "channels") {
        auto renames = value.as_table();
        if (!renames)
          throw bad_setting{line_of(value) + ": 'sparkplug.devices.channels' must be a table "
                                             "of metric name = \"channel\""};
        for (auto&& [metric, channel] : *renames) {
          auto c = channel.value<std::string>();
          if (!c)
            throw bad_setting{line_of(channel) + ": channel for metric '"
                              + std::string(metric.str()) + "' must be a string"};
          rule.channels.emplace_back(std::string(metric.str()), *c);
        }
        continue;
      }
      auto v = value.value<std::string>();
      if (!v)
        throw bad_setting{line_of(value) + ": 'sparkplug.devices." + k + "' must be a string"};
      if (k == "group")
        rule.group = *v;
      else if (k == "node")
        rule.node = *v;
      else if (k == "device")
        rule.device = *v;
      else if (k == "twin")
        rule.twin = *v;
      else if (k == "kind")
        rule.kind = *v;
      else if (k == "parent")
        rule.parent = *v;
      else
        throw bad_setting{line_of(value) + ": unknown key '" + k + "' in [[sparkplug.devices]]"};
    }
    if (rule.twin.empty() || rule.kind.empty())
      throw bad_setting{line_of(e) + ": [[sparkplug.devices]] needs a twin and a kind"};
    sp.devices.push_back(std::move(rule));
  }
}

// [mqtt] and its [[mqtt.routes]] entries (topic, twin).
void read_mqtt(const toml::table& doc, node_config& cfg) {
  if (doc.get("mqtt") == nullptr)
    return;
  auto& m = cfg.mqtt;
  m.enabled = true;
  auto where = [](const toml::node& n) { return std::to_string(n.source().begin.line); };
  std::string broker;
  read(doc, "mqtt", "broker", broker);
  if (!broker.empty()) {
    auto b = parse_broker(broker);
    if (!b)
      throw bad_setting{where(*doc.at_path("mqtt.broker").node())
                        + ": 'mqtt.broker' must be HOST:PORT or mqtts://HOST:PORT, not '" + broker
                        + "'"};
    m.host = b->host;
    m.port = b->port;
    m.tls.enabled = b->tls;
  }
  read_broker_tls(doc, "mqtt", broker, m.tls);
  read(doc, "mqtt", "client_id", m.client_id);
  read(doc, "mqtt", "username", m.username);
  read(doc, "mqtt", "password", m.password);
  read(doc, "mqtt", "qos", m.qos);
  read(doc, "mqtt", "keep_alive_s", m.keep_alive_s);
  read(doc, "mqtt", "dead_letter_topic", m.dead_letter_topic);
  read(doc, "mqtt", "max_payload_bytes", m.max_payload_bytes);
  read(doc, "mqtt", "batch_messages", m.batch_messages);
  read(doc, "mqtt", "linger_ms", m.linger_ms);
  if (auto q = doc.at_path("mqtt.qos").node(); q != nullptr && m.qos > 1)
    throw bad_setting{where(*q) + ": 'mqtt.qos' must be 0 or 1"};
  if (auto c = doc.at_path("mqtt.client_id").node(); c != nullptr && m.client_id.empty())
    throw bad_setting{where(*c) + ": 'mqtt.client_id' must not be empty"};
  if (auto b = doc.at_path("mqtt.batch_messages").node(); b != nullptr && m.batch_messages == 0)
    throw bad_setting{where(*b) + ": 'mqtt.batch_messages' must be at least 1"};
  if (auto d = doc.at_path("mqtt.dead_letter_topic").node();
      d != nullptr && m.dead_letter_topic.find_first_of("+#") != std::string::npos)
    throw bad_setting{where(*d) + ": 'mqtt.dead_letter_topic' must be a topic name, without + or #"};
  auto n = doc.at_path("mqtt.routes").node();
  if (n == nullptr)
    return;
  auto arr = n->as_array();
  if (!arr)
    throw bad_setting{where(*n) + ": 'mqtt.routes' must be an array of tables ([[mqtt.routes]])"};
  for (auto&& e : *arr) {
    auto t = e.as_table();
    if (!t)
      throw bad_setting{where(e) + ": each [[mqtt.routes]] entry must be a table"};
    node_config::mqtt_route r;
    for (auto&& [key, value] : *t) {
      auto v = value.value<std::string>();
      auto k = std::string(key.str());
      if (k != "topic" && k != "twin")
        throw bad_setting{where(value) + ": unknown key '" + k + "' in [[mqtt.routes]]"};
      if (!v)
        throw bad_setting{where(value) + ": 'mqtt.routes." + k + "' must be a string"};
      (k == "topic" ? r.topic : r.twin) = *v;
    }
    if (r.topic.empty() || r.twin.empty())
      throw bad_setting{where(e) + ": [[mqtt.routes]] needs a topic and a twin"};
    m.routes.push_back(std::move(r));
  }
}

// The entries of a top-level array of tables such as [[sinks]], each checked
// against its known keys.
std::vector<const toml::table*> entries(const toml::table& doc, const std::string& name,
                                        std::initializer_list<std::string_view> keys) {
  std::vector<const toml::table*> out;
  auto n = doc.get(name);
  if (n == nullptr)
    return out;
  auto arr = n->as_array();
  if (!arr)
    throw bad_setting{std::to_string(n->source().begin.line) + ": '" + name
                      + "' must be an array of tables ([[" + name + "]])"};
  for (auto&& e : *arr) {
    auto t = e.as_table();
    if (!t)
      throw bad_setting{std::to_string(e.source().begin.line) + ": each [[" + name
                        + "]] entry must be a table"};
    for (auto&& [key, value] : *t)
      if (std::find(keys.begin(), keys.end(), key.str()) == keys.end())
        throw bad_setting{std::to_string(value.source().begin.line) + ": unknown key '"
                          + std::string(key.str()) + "' in [[" + name + "]]"};
    out.push_back(t);
  }
  return out;
}

std::vector<std::string> string_list(const toml::table& t, const char* section,
                                     const char* key) {
  std::vector<std::string> out;
  auto n = t.get(key);
  if (n == nullptr)
    return out;
  auto fail = [&] {
    throw bad_setting{std::to_string(n->source().begin.line) + ": '" + section + "." + key
                      + "' must be an array of strings"};
  };
  auto arr = n->as_array();
  if (!arr)
    fail();
  for (auto&& e : *arr) {
    auto v = e.value<std::string>();
    if (!v)
      fail();
    out.push_back(*v);
  }
  return out;
}

// [[sinks]] and [[routes]].
void read_routing(const toml::table& doc, node_config& cfg) {
  cfg.sinks.clear(); // the file names every sink and route
  cfg.routes.clear();
  for (auto* t : entries(doc, "sinks",
                         {"name", "type", "url", "topic", "timeout_ms", "backoff_min_ms",
                          "backoff_max_ms", "max_batch", "ca", "certificate", "private_key",
                          "server_name"})) {
    node_config::sink s;
    auto line = std::to_string(t->source().begin.line);
    read_node(t->get("name"), "sinks", "name", s.name);
    read_node(t->get("type"), "sinks", "type", s.type);
    read_node(t->get("url"), "sinks", "url", s.url);
    read_node(t->get("topic"), "sinks", "topic", s.topic);
    read_node(t->get("timeout_ms"), "sinks", "timeout_ms", s.timeout_ms);
    read_node(t->get("backoff_min_ms"), "sinks", "backoff_min_ms", s.backoff_min_ms);
    read_node(t->get("backoff_max_ms"), "sinks", "backoff_max_ms", s.backoff_max_ms);
    read_node(t->get("max_batch"), "sinks", "max_batch", s.max_batch);
    read_node(t->get("ca"), "sinks", "ca", s.tls.ca);
    read_node(t->get("certificate"), "sinks", "certificate", s.tls.certificate);
    read_node(t->get("private_key"), "sinks", "private_key", s.tls.private_key);
    read_node(t->get("server_name"), "sinks", "server_name", s.tls.server_name);
    bool tls_keys = !s.tls.ca.empty() || !s.tls.certificate.empty() || !s.tls.private_key.empty()
                    || !s.tls.server_name.empty();
    if (s.name.empty())
      throw bad_setting{line + ": [[sinks]] needs a name"};
    for (auto& other : cfg.sinks)
      if (other.name == s.name)
        throw bad_setting{line + ": sink '" + s.name + "' is declared twice"};
    if (s.type == "webhook") {
      if (s.url.rfind("http://", 0) != 0)
        throw bad_setting{line + ": sink '" + s.name + "': url '" + s.url
                          + "' must be http://host:port/path"};
    } else if (s.type == "mqtt") {
      auto b = parse_broker(s.url);
      if (s.url.find("://") == std::string::npos || !b || s.topic.empty())
        throw bad_setting{line + ": sink '" + s.name
                          + "' needs url = \"mqtt://host:port\" (or mqtts://) and a topic"};
      s.tls.enabled = b->tls;
      if (tls_keys && !s.tls.enabled)
        throw bad_setting{line + ": sink '" + s.name
                          + "': ca, certificate, private_key and server_name need an mqtts:// url"};
      if (s.tls.certificate.empty() != s.tls.private_key.empty())
        throw bad_setting{line + ": sink '" + s.name
                          + "' needs both certificate and private_key, or neither"};
    } else {
      throw bad_setting{line + ": sink '" + s.name + "': type '" + s.type
                        + "' is not webhook or mqtt"};
    }
    if (s.max_batch == 0 || s.timeout_ms == 0 || s.backoff_min_ms == 0
        || s.backoff_max_ms < s.backoff_min_ms)
      throw bad_setting{line + ": sink '" + s.name
                        + "': max_batch, timeout_ms and backoff_min_ms must be at least 1, "
                          "backoff_max_ms at least backoff_min_ms"};
    cfg.sinks.push_back(std::move(s));
  }
  for (auto* t : entries(doc, "routes", {"sink", "kinds", "subtree", "min_severity", "types"})) {
    node_config::route r;
    auto line = std::to_string(t->source().begin.line);
    read_node(t->get("sink"), "routes", "sink", r.sink);
    read_node(t->get("subtree"), "routes", "subtree", r.subtree);
    read_node(t->get("min_severity"), "routes", "min_severity", r.min_severity);
    r.kinds = string_list(*t, "routes", "kinds");
    r.types = string_list(*t, "routes", "types");
    if (std::none_of(cfg.sinks.begin(), cfg.sinks.end(),
                     [&](auto& s) { return s.name == r.sink; }))
      throw bad_setting{line + ": route to sink '" + r.sink
                        + "': no [[sinks]] entry has that name"};
    if (r.min_severity != "info" && r.min_severity != "warning" && r.min_severity != "critical")
      throw bad_setting{line + ": route to sink '" + r.sink + "': min_severity '"
                        + r.min_severity + "' is not info, warning or critical"};
    cfg.routes.push_back(std::move(r));
  }
}

// [edge] and its [[edge.channels]] rules.
void read_edge(const toml::table& doc, node_config& cfg) {
  if (doc.get("edge") == nullptr)
    return;
  auto& e = cfg.edge;
  e.enabled = true;
  auto where = [](const toml::node& n) { return std::to_string(n.source().begin.line); };
  read(doc, "edge", "id", e.id);
  read(doc, "edge", "central", e.central);
  read(doc, "edge", "token", e.token);
  read(doc, "edge", "buffer_dir", e.buffer_dir);
  read(doc, "edge", "disk_budget_mb", e.disk_budget_mb);
  read(doc, "edge", "forward_batch", e.forward_batch);
  if (auto t = tls_table(doc, "edge.tls", {"ca", "server_name"})) {
    e.central_tls = true;
    read_node(t->get("ca"), "edge.tls", "ca", e.central_ca);
    read_node(t->get("server_name"), "edge.tls", "server_name", e.central_tls_name);
  }
  if (e.id.empty() || e.buffer_dir.empty() || e.forward_batch == 0 || e.disk_budget_mb == 0)
    throw bad_setting{where(*doc.get("edge"))
                      + ": [edge] needs a non-empty id and buffer_dir, and forward_batch and "
                        "disk_budget_mb of at least 1"};
  auto n = doc.at_path("edge.channels").node();
  if (n == nullptr)
    return;
  auto arr = n->as_array();
  if (!arr)
    throw bad_setting{where(*n) + ": 'edge.channels' must be an array of tables ([[edge.channels]])"};
  for (auto&& entry : *arr) {
    auto t = entry.as_table();
    if (!t)
      throw bad_setting{where(entry) + ": each [[edge.channels]] entry must be a table"};
    node_config::edge_channel_rule r;
    for (auto&& [key, value] : *t) {
      auto k = std::string(key.str());
      if (k == "twin" || k == "channel") {
        auto v = value.value<std::string>();
        if (!v || v->empty())
          throw bad_setting{where(value) + ": 'edge.channels." + k + "' must be a pattern string"};
        (k == "twin" ? r.twin : r.channel) = *v;
      } else if (k == "deadband" || k == "deadband_percent") {
        auto v = value.value<double>(); // integers are taken too
        if (!v || !(*v >= 0) || *v > 1e300)
          throw bad_setting{where(value) + ": 'edge.channels." + k + "' must be a number >= 0"};
        (k == "deadband" ? r.deadband : r.deadband_percent) = *v;
      } else if (k == "min_interval_ms") {
        auto v = value.value_exact<int64_t>();
        if (!v || *v < 0)
          throw bad_setting{where(value)
                            + ": 'edge.channels.min_interval_ms' must be a whole number, not negative"};
        r.min_interval_ms = *v;
      } else {
        throw bad_setting{where(value) + ": unknown key '" + k + "' in [[edge.channels]]"};
      }
    }
    e.channels.push_back(std::move(r));
  }
}

void read_config(const toml::table& doc, node_config& cfg) {
  check_keys(doc);
  read(doc, "node", "data_dir", cfg.data_dir);
  read(doc, "node", "models_dir", cfg.models_dir);
  read(doc, "node", "threads", cfg.threads);
  read(doc, "node", "shards", cfg.shards);
  read(doc, "ingest", "max_batch_samples", cfg.max_batch_samples);
  read(doc, "ingest", "max_inflight_batches", cfg.max_inflight_batches);
  read(doc, "ingest", "future_skew_ms", cfg.future_skew_ms);
  read(doc, "twins", "passivate_after_ms", cfg.passivate_after_ms);
  read(doc, "twins", "rollup_delay_ms", cfg.rollup_delay_ms);
  read(doc, "twins", "sweep_interval_ms", cfg.sweep_interval_ms);
  read(doc, "storage", "sync_wal", cfg.sync_wal);
  read(doc, "storage", "write_buffer_mb", cfg.write_buffer_mb);
  read(doc, "storage", "block_cache_mb", cfg.block_cache_mb);
  read(doc, "storage", "virtual_shards", cfg.virtual_shards);
  if (auto v = doc.at_path("storage.virtual_shards").node();
      v != nullptr && (cfg.virtual_shards == 0 || cfg.virtual_shards > max_virtual_shards))
    throw bad_setting{std::to_string(v->source().begin.line)
                      + ": 'storage.virtual_shards' must be from 1 to "
                      + std::to_string(max_virtual_shards)};
  read(doc, "metrics", "address", cfg.metrics_address);
  read(doc, "metrics", "max_asset_series", cfg.max_asset_series);
  read(doc, "rpc", "address", cfg.rpc_address);
  read(doc, "rpc", "read_cache", cfg.rpc_read_cache);
  read(doc, "rpc", "plaintext", cfg.rpc_plaintext);
  read(doc, "rpc", "max_connections", cfg.rpc_max_connections);
  read(doc, "rpc", "max_calls_in_flight", cfg.rpc_max_calls_in_flight);
  read(doc, "rpc", "max_message_bytes", cfg.rpc_max_message_bytes);
  read(doc, "rpc", "login_timeout_ms", cfg.rpc_login_timeout_ms);
  for (auto [key, value] : {std::pair{"max_connections", cfg.rpc_max_connections},
                            std::pair{"max_calls_in_flight", cfg.rpc_max_calls_in_flight}})
    if (auto n = doc.at_path(std::string("rpc.") + key).node(); n != nullptr && value == 0)
      throw bad_setting{std::to_string(n->source().begin.line) + ": 'rpc." + key
                        + "' must be at least 1"};
  if (auto n = doc.at_path("rpc.max_message_bytes").node();
      n != nullptr && cfg.rpc_max_message_bytes < 1024)
    throw bad_setting{std::to_string(n->source().begin.line)
                      + ": 'rpc.max_message_bytes' must be at least 1024"};
  if (auto n = doc.at_path("rpc.login_timeout_ms").node();
      n != nullptr && cfg.rpc_login_timeout_ms == 0)
    throw bad_setting{std::to_string(n->source().begin.line)
                      + ": 'rpc.login_timeout_ms' must be at least 1"};
  read_tls(doc, cfg);
  read_tokens(doc, cfg);
  read_sparkplug(doc, cfg);
  read(doc, "events", "keep", cfg.events_keep);
  read(doc, "audit", "max_mb", cfg.audit_max_mb);
  if (auto n = doc.at_path("audit.max_mb").node(); n != nullptr && cfg.audit_max_mb == 0)
    throw bad_setting{std::to_string(n->source().begin.line) + ": 'audit.max_mb' must be at least 1"};
  read_routing(doc, cfg);
  read_mqtt(doc, cfg);
  read_edge(doc, cfg);
}

// Parses the document `parse` returns (it throws toml::parse_error) into cfg;
// errors name `name`.
template <class Parse>
std::optional<std::string> load(const std::string& name, Parse&& parse, node_config& cfg) {
  try {
    read_config(parse(), cfg);
  } catch (const toml::parse_error& e) {
    return name + ":" + std::to_string(e.source().begin.line) + ": "
           + std::string(e.description());
  } catch (const bad_setting& e) {
    return name + ":" + e.where;
  }
  if (cfg.threads == 0 || cfg.shards == 0 || cfg.max_inflight_batches == 0
      || cfg.max_batch_samples == 0)
    return name + ": threads, shards, max_inflight_batches and max_batch_samples must be at least 1";
  return std::nullopt;
}

} // namespace

std::optional<broker_address> parse_broker(std::string_view text) {
  broker_address b;
  bool url = false;
  for (auto [scheme, tls] : {std::pair{std::string_view("mqtt://"), false},
                             std::pair{std::string_view("mqtts://"), true}})
    if (text.substr(0, scheme.size()) == scheme) {
      text.remove_prefix(scheme.size());
      b.tls = tls;
      url = true;
      if (!text.empty() && text.back() == '/')
        text.remove_suffix(1);
    }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || text.find(']', colon) != std::string_view::npos) {
    if (!url || text.empty() || text.find_first_of("/@?# ") != std::string_view::npos)
      return std::nullopt; // HOST alone only in a URL
    b.host = std::string(text);
    b.port = b.tls ? 8883 : 1883;
    return b;
  }
  auto port = text.substr(colon + 1);
  if (colon == 0 || port.empty() || port.size() > 5
      || port.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  auto n = std::stoul(std::string(port));
  if (n == 0 || n > 65535)
    return std::nullopt;
  b.host = std::string(text.substr(0, colon));
  if (b.host.size() > 2 && b.host.front() == '[' && b.host.back() == ']')
    b.host = b.host.substr(1, b.host.size() - 2); // [::1]:1883
  if (b.host.find_first_of("/@?# ") != std::string::npos)
    return std::nullopt;
  b.port = static_cast<uint16_t>(n);
  return b;
}

std::optional<std::string> load_config_file(const std::string& path, node_config& cfg) {
  auto err = load(path, [&] { return toml::parse_file(path); }, cfg);
  if (!err) {
    // TLS files are found next to the config file.
    auto dir = std::filesystem::path(path).parent_path();
    for (auto* f : {&cfg.rpc_tls_certificate, &cfg.rpc_tls_private_key, &cfg.mqtt.tls.ca,
                    &cfg.mqtt.tls.certificate, &cfg.mqtt.tls.private_key, &cfg.sparkplug.tls.ca,
                    &cfg.sparkplug.tls.certificate, &cfg.sparkplug.tls.private_key,
                    &cfg.edge.central_ca})
      if (!f->empty() && std::filesystem::path(*f).is_relative())
        *f = (dir / *f).lexically_normal().string();
    for (auto& s : cfg.sinks)
      for (auto* f : {&s.tls.ca, &s.tls.certificate, &s.tls.private_key})
        if (!f->empty() && std::filesystem::path(*f).is_relative())
          *f = (dir / *f).lexically_normal().string();
  }
  return err;
}

std::optional<std::string> parse_config(std::string_view text, const std::string& name,
                                        node_config& cfg) {
  return load(name, [&] { return toml::parse(text, name); }, cfg);
}

} // namespace twinrt::runtime
