#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "twinrt/runtime/sharding.hpp"
#include "twinrt/twins/clock.hpp"

namespace rocksdb {
class FileSystem;
}

namespace twinrt::runtime {

/// Everything a node is told at start-up: from the config file (TOML, see the
/// README) and then from command-line flags, which win.
struct node_config {
  // [node]
  std::string data_dir = "twinrt-data";
  std::string models_dir;          // empty: the models built into the binary
  uint32_t threads = 2;            // CAF scheduler threads
  uint32_t shards = 4;             // twin-owning shard actors on this node
  // [ingest]
  uint32_t max_batch_samples = 100'000;
  uint32_t max_inflight_batches = 16; // beyond this, ingest says "overloaded"
  int64_t future_skew_ms = 5'000;
  // [twins]
  int64_t passivate_after_ms = 60'000; // idle leaf twins leave memory
  int64_t rollup_delay_ms = 100;       // contribution coalescing delay
  int64_t sweep_interval_ms = 1'000;   // staleness and passivation check
  // [storage]
  bool sync_wal = true;  // fsync the WAL before acknowledging a batch
  uint64_t write_buffer_mb = 64;
  uint64_t block_cache_mb = 128;
  uint32_t virtual_shards = default_virtual_shards; // used when the data is created; stored and fixed then
  // Not from the config file: the file system RocksDB writes through; null
  // is the real one. Tests put a fault-injecting one here.
  std::shared_ptr<rocksdb::FileSystem> file_system;
  // Not from the config file: the wall clock of the node (twins/clock.hpp),
  // never null. Tests put a manual_clock here to move time without waiting.
  std::shared_ptr<const twins::clock> wall_clock = std::make_shared<twins::system_clock>();
  // [metrics]
  std::string metrics_address; // host:port for /metrics; empty: off
  uint32_t max_asset_series = 5'000; // asset series per scrape; the rest are dropped and counted
  // [rpc] and [[rpc.tokens]]
  std::string rpc_address; // host:port for the operator API; empty: off
  uint32_t rpc_read_cache = 10'000; // twins whose latest view a get reads without a hop; 0: off
  struct token {
    std::string name;
    std::string secret;        // plain; or empty and secret_hash set
    std::string role = "read"; // read | write | admin
    std::string scope;         // subtree; empty: everything
    std::string secret_hash = {}; // from `twinrt token hash`: pbkdf2-sha256$...
  };
  std::vector<token> rpc_tokens;
  // [rpc.tls]: PEM files, relative to the config file's directory when not absolute
  std::string rpc_tls_certificate; // the node's certificate (chain); with the key: TLS
  std::string rpc_tls_private_key;
  bool rpc_plaintext = false; // serve without TLS on a non-loopback address
  // [rpc] limits against abuse
  uint32_t rpc_max_connections = 256;    // beyond: told overloaded and closed
  uint32_t rpc_max_calls_in_flight = 64; // per connection; beyond: overloaded at once
  uint64_t rpc_max_message_bytes = 64ull << 20; // a larger message ends its connection
  int64_t rpc_login_timeout_ms = 10'000; // a connection without a login is closed after this
  // [events], [[sinks]] and [[routes]]: where events (alerts, health changes) go
  uint64_t audit_max_mb = 64;    // [audit] max_mb: the audit trail's bound on disk (audit_log.hpp)
  uint64_t events_keep = 10'000; // newest events kept in the log even when every sink has them
  // [mqtt.tls], [sparkplug.tls], mqtt sinks: TLS to an mqtts:// broker. PEM files, relative
  // to the config file's directory when not absolute.
  struct broker_tls {
    bool enabled = false;           // the broker is mqtts://HOST:PORT
    std::string ca;                 // CA certificate(s) to trust; empty: the system's trust store
    std::string certificate;        // client certificate (chain), with private_key; empty: none
    std::string private_key;
    std::string server_name;        // name the broker's certificate must carry; empty: its HOST
    bool verify_server_name = true; // false: any name (the chain is still verified)
  };
  struct sink {
    std::string name;
    std::string type;          // webhook | mqtt
    std::string url;           // webhook: http://host:port/path; mqtt: mqtt:// or mqtts://host:port
    broker_tls tls;            // mqtt: for an mqtts:// url (keys ca, certificate, private_key, server_name)
    std::string topic;         // mqtt: topic to publish to
    int64_t timeout_ms = 5'000;
    int64_t backoff_min_ms = 200, backoff_max_ms = 10'000;
    uint32_t max_batch = 100;  // events per delivery
  };
  struct route {
    std::string sink;
    std::vector<std::string> kinds;  // twin kinds; empty: any
    std::string subtree;             // empty: everything
    std::string min_severity = "info";
    std::vector<std::string> types;  // event types or prefixes ("alert"); empty: any
  };
  std::vector<sink> sinks;
  std::vector<route> routes;
  // [sparkplug] and [[sparkplug.devices]]: Sparkplug B edge nodes feed twins
  struct sparkplug_rule {
    std::string group = "*";  // glob on the Sparkplug group id
    std::string node = "*";   // glob on the edge node id
    std::string device = "*"; // glob on the device id; "" = the edge node itself
    std::string twin;         // twin id pattern: {group} {node} {device}
    std::string kind;         // model kind of a twin created from a birth
    std::string parent;       // parent id pattern; empty: a root
    std::vector<std::pair<std::string, std::string>> channels; // metric name -> channel
  };
  struct sparkplug_settings {
    bool enabled = false;      // a [sparkplug] section is present
    std::string broker;        // HOST:PORT or mqtts://HOST:PORT; empty: the [mqtt] broker, else 127.0.0.1:1883
    broker_tls tls;            // for an mqtts:// broker ([sparkplug.tls])
    std::string client_id = "twinrt-sparkplug";
    std::string username, password;
    std::vector<std::string> groups; // group ids to subscribe to; empty: all
    std::string host_id;       // non-empty: publish STATE as this primary host
    uint32_t max_payload_bytes = 1 << 20;
    int64_t rebirth_interval_ms = 5'000; // at most one rebirth request per edge node this often
    std::vector<sparkplug_rule> devices;
  };
  sparkplug_settings sparkplug;
  // [mqtt] and [[mqtt.routes]]: the MQTT JSON adapter (README "MQTT JSON")
  struct mqtt_route {
    std::string topic; // topic pattern: levels of text, +, # (last) or {name}
    std::string twin;  // twin id pattern using the {name}s of the topic
  };
  struct mqtt_settings {
    bool enabled = false;          // an [mqtt] section is present
    std::string host = "127.0.0.1"; // from `broker = "HOST:PORT"` (or mqtt:// / mqtts://HOST:PORT)
    uint16_t port = 1883;
    broker_tls tls;                 // enabled by an mqtts:// broker; files in [mqtt.tls]
    std::string client_id = "twinrt"; // the broker keeps this session (clean_session = 0)
    std::string username, password;
    uint8_t qos = 1;               // subscription QoS: 1 = at least once (acked once durable), or 0
    uint16_t keep_alive_s = 30;
    std::string dead_letter_topic; // rejected messages are published here; empty: not published
    uint32_t max_payload_bytes = 256 * 1024; // larger payloads are rejected as oversized
    uint32_t batch_messages = 1'000; // messages per node ingest at most
    int64_t linger_ms = 2;         // wait this long for more messages before an ingest
    std::vector<mqtt_route> routes;
  };
  mqtt_settings mqtt;
  // [edge] and [[edge.channels]]: `twinrt edge` (README "Edge mode"); the
  // local broker and topic routes come from [mqtt].
  struct edge_channel_rule {
    std::string twin = "*";      // twin id pattern; '*' matches any text, '/' included
    std::string channel = "*";   // channel name pattern
    double deadband = 0;         // forward a change only when |value - last forwarded| > this
    double deadband_percent = 0; // ... or > this percent of |last forwarded|
    int64_t min_interval_ms = 0; // forward at most one sample per this interval
  };
  struct edge_settings {
    bool enabled = false;        // an [edge] section is present
    std::string id = "edge";     // this edge's source identity at the central node
    std::string central;         // HOST:PORT of the central node's operator API
    std::string token;           // a write token of the central node
    bool central_tls = false;    // an [edge.tls] section is present: TLS to the central node
    std::string central_ca;      // [edge.tls] ca: PEM CA(s) to trust; empty: the system's store
    std::string central_tls_name; // [edge.tls] server_name: name its certificate carries; empty: HOST
    std::string buffer_dir = "twinrt-edge-buffer";
    uint64_t disk_budget_mb = 1'024; // beyond it the oldest buffered samples are dropped
    uint32_t forward_batch = 1'000;  // samples per call to the central node
    std::vector<edge_channel_rule> channels; // first match wins; no match: forward all
  };
  edge_settings edge;
};

/// A broker address: "HOST:PORT", "mqtt://HOST[:PORT]" or "mqtts://HOST[:PORT]"
/// (TLS; port 8883 when none is given). Empty when `text` is none of these.
struct broker_address {
  std::string host;
  uint16_t port = 1883;
  bool tls = false;
};
std::optional<broker_address> parse_broker(std::string_view text);

/// Reads a config file. On failure returns the reason, naming the file and,
/// where known, the line: "node.toml:7: 'threads' must be a whole number".
std::optional<std::string> load_config_file(const std::string& path,
                                            node_config& cfg);

/// The same for config text already in memory; `name` stands for the file in
/// the reason ("node.toml:7: ..."). Never throws: every input gives either a
/// config or a reason.
std::optional<std::string> parse_config(std::string_view text, const std::string& name,
                                        node_config& cfg);

} // namespace twinrt::runtime
