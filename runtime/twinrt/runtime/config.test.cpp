#include "twinrt/runtime/config.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include "twinrt/runtime/rpc_security.hpp"

namespace twinrt::runtime {
namespace {

class Config : public ::testing::Test {
protected:
  void SetUp() override {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir_ = base / ("twinrt-config-test-" + std::to_string(::getpid()) + "-"
                     + std::to_string(i));
      if (std::filesystem::create_directories(dir_))
        break;
    }
    path_ = (dir_ / "node.toml").string();
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` as the config file and loads it over `cfg`.
  std::optional<std::string> load(const std::string& text) {
    std::ofstream(path_) << text;
    return load_config_file(path_, cfg);
  }

  // Loads `text`, which must be refused; returns the reason.
  std::string refusal(const std::string& text) {
    auto r = load(text);
    EXPECT_TRUE(r.has_value()) << "accepted:\n" << text;
    return r.value_or("");
  }

  std::filesystem::path dir_;
  std::string path_;
  node_config cfg;
};

TEST_F(Config, EveryDocumentedKeyIsRead) {
  // Every value differs from its default, so a key that is not read shows.
  auto r = load(R"(# all of them
[node]
data_dir = "/var/lib/twinrt"
models_dir = "/etc/twinrt/models"
threads = 7
shards = 11

[ingest]
max_batch_samples = 5000
max_inflight_batches = 3
future_skew_ms = 250

[twins]
passivate_after_ms = 1234
rollup_delay_ms = 7
sweep_interval_ms = 333

[storage]
sync_wal = false
write_buffer_mb = 9
block_cache_mb = 10
virtual_shards = 64

[metrics]
address = "0.0.0.0:9464"
)");
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_EQ(cfg.data_dir, "/var/lib/twinrt");
  EXPECT_EQ(cfg.models_dir, "/etc/twinrt/models");
  EXPECT_EQ(cfg.threads, 7u);
  EXPECT_EQ(cfg.shards, 11u);
  EXPECT_EQ(cfg.max_batch_samples, 5000u);
  EXPECT_EQ(cfg.max_inflight_batches, 3u);
  EXPECT_EQ(cfg.future_skew_ms, 250);
  EXPECT_EQ(cfg.passivate_after_ms, 1234);
  EXPECT_EQ(cfg.rollup_delay_ms, 7);
  EXPECT_EQ(cfg.sweep_interval_ms, 333);
  EXPECT_FALSE(cfg.sync_wal);
  EXPECT_EQ(cfg.write_buffer_mb, 9u);
  EXPECT_EQ(cfg.block_cache_mb, 10u);
  EXPECT_EQ(cfg.virtual_shards, 64u);
  EXPECT_EQ(cfg.metrics_address, "0.0.0.0:9464");
}

TEST_F(Config, ExampleFileStatesTheDefaults) {
  // twinrt.example.toml at the top of the source tree lists every key with
  // its default.
  auto example = std::filesystem::path(TWINRT_SOURCE_DIR) / "twinrt.example.toml";
  ASSERT_TRUE(std::filesystem::exists(example)) << example;
  // Start from other values: a key the example leaves out keeps one of them.
  cfg.data_dir = "x";
  cfg.models_dir = "x";
  cfg.threads = cfg.shards = cfg.max_batch_samples = cfg.max_inflight_batches = 99;
  cfg.future_skew_ms = cfg.passivate_after_ms = cfg.rollup_delay_ms = 99;
  cfg.sweep_interval_ms = 99;
  cfg.sync_wal = !cfg.sync_wal;
  cfg.write_buffer_mb = cfg.block_cache_mb = 99;
  cfg.virtual_shards = 99;
  cfg.metrics_address = "x:1";
  cfg.rpc_address = "x:2";
  cfg.rpc_read_cache = 99;
  cfg.rpc_plaintext = true;
  cfg.rpc_max_connections = cfg.rpc_max_calls_in_flight = 99;
  cfg.rpc_max_message_bytes = 99;
  cfg.rpc_login_timeout_ms = 99;
  auto r = load_config_file(example.string(), cfg);
  ASSERT_FALSE(r.has_value()) << *r;
  node_config defaults;
  EXPECT_EQ(cfg.data_dir, defaults.data_dir);
  EXPECT_EQ(cfg.models_dir, defaults.models_dir);
  EXPECT_EQ(cfg.threads, defaults.threads);
  EXPECT_EQ(cfg.shards, defaults.shards);
  EXPECT_EQ(cfg.max_batch_samples, defaults.max_batch_samples);
  EXPECT_EQ(cfg.max_inflight_batches, defaults.max_inflight_batches);
  EXPECT_EQ(cfg.future_skew_ms, defaults.future_skew_ms);
  EXPECT_EQ(cfg.passivate_after_ms, defaults.passivate_after_ms);
  EXPECT_EQ(cfg.rollup_delay_ms, defaults.rollup_delay_ms);
  EXPECT_EQ(cfg.sweep_interval_ms, defaults.sweep_interval_ms);
  EXPECT_EQ(cfg.sync_wal, defaults.sync_wal);
  EXPECT_EQ(cfg.write_buffer_mb, defaults.write_buffer_mb);
  EXPECT_EQ(cfg.block_cache_mb, defaults.block_cache_mb);
  EXPECT_EQ(cfg.virtual_shards, defaults.virtual_shards);
  EXPECT_EQ(cfg.metrics_address, defaults.metrics_address);
  EXPECT_EQ(cfg.rpc_address, defaults.rpc_address);
  EXPECT_EQ(cfg.rpc_read_cache, defaults.rpc_read_cache);
  EXPECT_EQ(cfg.rpc_plaintext, defaults.rpc_plaintext);
  EXPECT_EQ(cfg.rpc_max_connections, defaults.rpc_max_connections);
  EXPECT_EQ(cfg.rpc_max_calls_in_flight, defaults.rpc_max_calls_in_flight);
  EXPECT_EQ(cfg.rpc_max_message_bytes, defaults.rpc_max_message_bytes);
  EXPECT_EQ(cfg.rpc_login_timeout_ms, defaults.rpc_login_timeout_ms);
  EXPECT_EQ(cfg.rpc_tls_certificate, "");
}

TEST_F(Config, KeysNotInTheFileKeepTheirValues) {
  cfg.threads = 5;
  cfg.data_dir = "from-the-command-line";
  auto r = load("[ingest]\nfuture_skew_ms = 10\n");
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_EQ(cfg.future_skew_ms, 10);
  EXPECT_EQ(cfg.threads, 5u);
  EXPECT_EQ(cfg.data_dir, "from-the-command-line");
  EXPECT_EQ(cfg.shards, node_config{}.shards);
  EXPECT_TRUE(cfg.sync_wal);
}

TEST_F(Config, EmptyFileIsAccepted) {
  auto r = load("");
  EXPECT_FALSE(r.has_value()) << *r;
}

TEST_F(Config, UnknownSectionIsRefusedWithFileAndLine) {
  auto why = refusal("[node]\nthreads = 2\n\n[cluster]\npeers = 3\n");
  EXPECT_EQ(why, path_ + ":4: unknown section [cluster]");
}

TEST_F(Config, UnknownKeyIsRefusedWithFileAndLine) {
  auto why = refusal("[node]\nthreads = 2\nthreds = 3\n");
  EXPECT_EQ(why, path_ + ":3: unknown key 'threds' in [node]");
}

TEST_F(Config, KeyInTheWrongSectionIsRefused) {
  auto why = refusal("[ingest]\n\nthreads = 2\n");
  EXPECT_EQ(why, path_ + ":3: unknown key 'threads' in [ingest]");
}

TEST_F(Config, TopLevelKeyIsRefused) {
  auto why = refusal("threads = 2\n");
  EXPECT_EQ(why.rfind(path_ + ":1: ", 0), 0u) << why;
}

TEST_F(Config, StringForANumberIsRefusedWithFileAndLine) {
  auto why = refusal("[node]\ndata_dir = \"d\"\nthreads = \"two\"\n");
  EXPECT_EQ(why, path_ + ":3: 'node.threads' must be a whole number, not negative");
}

TEST_F(Config, BooleanForANumberIsRefused) {
  auto why = refusal("[twins]\nrollup_delay_ms = true\n");
  EXPECT_EQ(why.rfind(path_ + ":2: ", 0), 0u) << why;
  EXPECT_NE(why.find("rollup_delay_ms"), std::string::npos) << why;
}

TEST_F(Config, FractionForANumberIsRefused) {
  auto why = refusal("[node]\nshards = 2.0\n");
  EXPECT_EQ(why.rfind(path_ + ":2: ", 0), 0u) << why;
  EXPECT_NE(why.find("shards"), std::string::npos) << why;
}

TEST_F(Config, NegativeNumberIsRefused) {
  auto why = refusal("[ingest]\nfuture_skew_ms = -1\n");
  EXPECT_EQ(why.rfind(path_ + ":2: ", 0), 0u) << why;
  EXPECT_NE(why.find("future_skew_ms"), std::string::npos) << why;
}

TEST_F(Config, NumberTooLargeForItsSettingIsRefused) {
  // 2^32 + 2 would wrap to 2 threads.
  auto why = refusal("[node]\nthreads = 4294967298\n");
  EXPECT_EQ(why, path_ + ":2: 'node.threads' must be at most 4294967295");
}

TEST_F(Config, VirtualShardsOutsideOneTo65536AreRefused) {
  EXPECT_EQ(refusal("[storage]\nvirtual_shards = 0\n"),
            path_ + ":2: 'storage.virtual_shards' must be from 1 to 65536");
  EXPECT_EQ(refusal("[storage]\nsync_wal = true\nvirtual_shards = 65537\n"),
            path_ + ":3: 'storage.virtual_shards' must be from 1 to 65536");
  EXPECT_FALSE(load("[storage]\nvirtual_shards = 65536\n").has_value());
  EXPECT_EQ(cfg.virtual_shards, 65536u);
}

TEST_F(Config, NumberForAStringIsRefusedWithFileAndLine) {
  auto why = refusal("[metrics]\naddress = 9464\n");
  EXPECT_EQ(why.rfind(path_ + ":2: ", 0), 0u) << why;
  EXPECT_NE(why.find("address"), std::string::npos) << why;
  EXPECT_NE(why.find("string"), std::string::npos) << why;
}

TEST_F(Config, NumberForABooleanIsRefused) {
  auto why = refusal("[storage]\nwrite_buffer_mb = 8\nsync_wal = 0\n");
  EXPECT_EQ(why.rfind(path_ + ":3: ", 0), 0u) << why;
  EXPECT_NE(why.find("sync_wal"), std::string::npos) << why;
}

TEST_F(Config, SectionThatIsNotATableIsRefused) {
  auto why = refusal("node = 3\n");
  EXPECT_EQ(why.rfind(path_ + ":1: ", 0), 0u) << why;
  EXPECT_NE(why.find("node"), std::string::npos) << why;
}

TEST_F(Config, TomlSyntaxErrorIsRefusedWithFileAndLine) {
  auto why = refusal("[node]\nthreads = 2\nshards = = 3\n");
  EXPECT_EQ(why.rfind(path_ + ":3: ", 0), 0u) << why;
}

TEST_F(Config, ZeroThreadsIsRefused) {
  auto why = refusal("[node]\nthreads = 0\n");
  EXPECT_EQ(why.rfind(path_ + ":", 0), 0u) << why;
  EXPECT_NE(why.find("threads"), std::string::npos) << why;
}

TEST_F(Config, MissingFileIsRefusedNamingIt) {
  auto missing = (dir_ / "absent.toml").string();
  auto r = load_config_file(missing, cfg);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->rfind(missing + ":", 0), 0u) << *r;
}

TEST_F(Config, SinksAndRoutesAreRead) {
  auto r = load(R"([events]
keep = 500

[[sinks]]
name = "maintenance"
type = "webhook"
url = "http://127.0.0.1:8080/hooks/twinrt"
timeout_ms = 1500
backoff_min_ms = 50
backoff_max_ms = 2000
max_batch = 10

[[sinks]]
name = "bus"
type = "mqtt"
url = "mqtt://127.0.0.1:1883"
topic = "twinrt/events"

[[routes]]
sink = "maintenance"
kinds = ["machine"]
subtree = "acme/plant-1"
min_severity = "warning"
types = ["alert", "prediction.raised"]

[[routes]]
sink = "bus"
)");
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_EQ(cfg.events_keep, 500u);
  ASSERT_EQ(cfg.sinks.size(), 2u);
  EXPECT_EQ(cfg.sinks[0].url, "http://127.0.0.1:8080/hooks/twinrt");
  EXPECT_EQ(cfg.sinks[0].timeout_ms, 1500);
  EXPECT_EQ(cfg.sinks[0].backoff_min_ms, 50);
  EXPECT_EQ(cfg.sinks[0].backoff_max_ms, 2000);
  EXPECT_EQ(cfg.sinks[0].max_batch, 10u);
  EXPECT_EQ(cfg.sinks[1].type, "mqtt");
  EXPECT_EQ(cfg.sinks[1].topic, "twinrt/events");
  ASSERT_EQ(cfg.routes.size(), 2u);
  EXPECT_EQ(cfg.routes[0].kinds, std::vector<std::string>{"machine"});
  EXPECT_EQ(cfg.routes[0].subtree, "acme/plant-1");
  EXPECT_EQ(cfg.routes[0].min_severity, "warning");
  EXPECT_EQ(cfg.routes[0].types, (std::vector<std::string>{"alert", "prediction.raised"}));
  EXPECT_EQ(cfg.routes[1].sink, "bus");
  EXPECT_EQ(cfg.routes[1].min_severity, "info");
}

TEST_F(Config, BadSinksAndRoutesAreRefusedNamingTheLine) {
  const std::string hook = "[[sinks]]\nname = \"m\"\ntype = \"webhook\"\nurl = \"http://h:1/\"\n";
  EXPECT_EQ(refusal("[[sinks]]\nname = \"m\"\ntype = \"fax\"\n"),
            path_ + ":1: sink 'm': type 'fax' is not webhook or mqtt");
  EXPECT_EQ(refusal("[[sinks]]\nname = \"m\"\ntype = \"webhook\"\nurl = \"ftp://x\"\n"),
            path_ + ":1: sink 'm': url 'ftp://x' must be http://host:port/path");
  EXPECT_EQ(refusal("[[sinks]]\nname = \"m\"\ntype = \"mqtt\"\nurl = \"mqtt://h:1\"\n"),
            path_ + ":1: sink 'm' needs url = \"mqtt://host:port\" (or mqtts://) and a topic");
  EXPECT_EQ(refusal("[[sinks]]\nname = \"m\"\ntype = \"mqtt\"\nurl = \"mqtt://h:1\"\ntopic = \"t\"\n"
                    "ca = \"ca.pem\"\n"),
            path_ + ":1: sink 'm': ca, certificate, private_key and server_name need an mqtts:// url");
  EXPECT_EQ(refusal("[[sinks]]\nname = \"m\"\ntype = \"mqtt\"\nurl = \"mqtts://h\"\ntopic = \"t\"\n"
                    "certificate = \"c.pem\"\n"),
            path_ + ":1: sink 'm' needs both certificate and private_key, or neither");
  EXPECT_EQ(refusal(hook + "colour = 1\n"), path_ + ":5: unknown key 'colour' in [[sinks]]");
  EXPECT_EQ(refusal(hook + "timeout_ms = -1\n"),
            path_ + ":5: 'sinks.timeout_ms' must be a whole number, not negative");
  EXPECT_EQ(refusal(hook + hook), path_ + ":5: sink 'm' is declared twice");
  EXPECT_EQ(refusal(hook + "[[routes]]\nsink = \"x\"\n"),
            path_ + ":5: route to sink 'x': no [[sinks]] entry has that name");
  EXPECT_EQ(refusal(hook + "[[routes]]\nsink = \"m\"\nmin_severity = \"loud\"\n"),
            path_ + ":5: route to sink 'm': min_severity 'loud' is not info, warning or critical");
  EXPECT_EQ(refusal(hook + "[[routes]]\nsink = \"m\"\nkinds = \"machine\"\n"),
            path_ + ":7: 'routes.kinds' must be an array of strings");
  EXPECT_EQ(refusal("sinks = 3\n"), path_ + ":1: 'sinks' must be an array of tables ([[sinks]])");
}

TEST_F(Config, SparkplugSectionAndDeviceRulesAreRead) {
  auto r = load("[sparkplug]\nbroker = \"10.0.0.5:1884\"\nclient_id = \"spb-1\"\n"
                "username = \"u\"\npassword = \"p\"\ngroups = [\"plant-1\", \"plant-2\"]\n"
                "host_id = \"scada\"\nmax_payload_bytes = 4096\nrebirth_interval_ms = 250\n"
                "[[sparkplug.devices]]\ndevice = \"\"\ntwin = \"acme/{group}/{node}\"\n"
                "kind = \"line\"\nparent = \"acme/{group}\"\n"
                "[[sparkplug.devices]]\ngroup = \"plant-*\"\nnode = \"edge-?\"\ndevice = \"press-*\"\n"
                "twin = \"acme/{group}/{node}/{device}\"\nkind = \"machine\"\n"
                "channels = { Temperature = \"temperature_c\", \"Motor/Speed\" = \"rpm\" }\n");
  ASSERT_FALSE(r.has_value()) << *r;
  auto& sp = cfg.sparkplug;
  EXPECT_TRUE(sp.enabled);
  EXPECT_EQ(sp.broker, "10.0.0.5:1884");
  EXPECT_EQ(sp.client_id, "spb-1");
  EXPECT_EQ(sp.username, "u");
  EXPECT_EQ(sp.password, "p");
  EXPECT_EQ(sp.groups, (std::vector<std::string>{"plant-1", "plant-2"}));
  EXPECT_EQ(sp.host_id, "scada");
  EXPECT_EQ(sp.max_payload_bytes, 4096u);
  EXPECT_EQ(sp.rebirth_interval_ms, 250);
  ASSERT_EQ(sp.devices.size(), 2u);
  EXPECT_EQ(sp.devices[0].device, "");
  EXPECT_EQ(sp.devices[0].group, "*");
  EXPECT_EQ(sp.devices[0].parent, "acme/{group}");
  EXPECT_EQ(sp.devices[1].node, "edge-?");
  EXPECT_EQ(sp.devices[1].kind, "machine");
  EXPECT_EQ(sp.devices[1].parent, "");
  EXPECT_EQ(sp.devices[1].channels.size(), 2u);
  node_config none;
  EXPECT_FALSE(none.sparkplug.enabled) << "no [sparkplug] section: no adapter";
}

TEST_F(Config, BadSparkplugSettingsAreRefusedNamingTheLine) {
  EXPECT_EQ(refusal("[sparkplug]\ngroups = [\"a/b\"]\n"),
            path_ + ":2: 'sparkplug.groups' entries must be group ids (not empty, no '/', '+' or '#')");
  EXPECT_EQ(refusal("[sparkplug]\nbrokr = \"x\"\n"), path_ + ":2: unknown key 'brokr' in [sparkplug]");
  EXPECT_EQ(refusal("[[sparkplug.devices]]\ntwin = \"a\"\n"),
            path_ + ":1: [[sparkplug.devices]] needs a twin and a kind");
  EXPECT_EQ(refusal("[[sparkplug.devices]]\ntwin = \"a\"\nkind = \"k\"\nqos = \"1\"\n"),
            path_ + ":4: unknown key 'qos' in [[sparkplug.devices]]");
  EXPECT_EQ(refusal("[[sparkplug.devices]]\ntwin = \"a\"\nkind = \"k\"\nchannels = { A = 1 }\n"),
            path_ + ":4: channel for metric 'A' must be a string");
  EXPECT_EQ(refusal("[sparkplug]\ndevices = 3\n"),
            path_ + ":2: 'sparkplug.devices' must be an array of tables ([[sparkplug.devices]])");
}

TEST_F(Config, MqttSectionAndRoutesAreRead) {
  auto r = load("[mqtt]\nbroker = \"10.0.0.5:1884\"\nclient_id = \"node-1\"\nusername = \"u\"\n"
                "password = \"p\"\nqos = 0\nkeep_alive_s = 10\ndead_letter_topic = \"twinrt/dead\"\n"
                "max_payload_bytes = 1000\nbatch_messages = 50\nlinger_ms = 7\n"
                "[[mqtt.routes]]\ntopic = \"plants/{plant}/telemetry\"\ntwin = \"acme/{plant}\"\n"
                "[[mqtt.routes]]\ntopic = \"w/#\"\ntwin = \"acme/warehouse-1\"\n");
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_TRUE(cfg.mqtt.enabled);
  EXPECT_EQ(cfg.mqtt.host, "10.0.0.5");
  EXPECT_EQ(cfg.mqtt.port, 1884);
  EXPECT_EQ(cfg.mqtt.client_id, "node-1");
  EXPECT_EQ(cfg.mqtt.username, "u");
  EXPECT_EQ(cfg.mqtt.password, "p");
  EXPECT_EQ(cfg.mqtt.qos, 0);
  EXPECT_EQ(cfg.mqtt.keep_alive_s, 10);
  EXPECT_EQ(cfg.mqtt.dead_letter_topic, "twinrt/dead");
  EXPECT_EQ(cfg.mqtt.max_payload_bytes, 1000u);
  EXPECT_EQ(cfg.mqtt.batch_messages, 50u);
  EXPECT_EQ(cfg.mqtt.linger_ms, 7);
  ASSERT_EQ(cfg.mqtt.routes.size(), 2u);
  EXPECT_EQ(cfg.mqtt.routes[0].topic, "plants/{plant}/telemetry");
  EXPECT_EQ(cfg.mqtt.routes[1].twin, "acme/warehouse-1");
  node_config none;
  EXPECT_FALSE(none.mqtt.enabled) << "no [mqtt] section: no adapter";
}

TEST_F(Config, BadMqttSettingsAreRefusedNamingTheLine) {
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"localhost\"\n"),
            path_ + ":2: 'mqtt.broker' must be HOST:PORT or mqtts://HOST:PORT, not 'localhost'");
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"h:70000\"\n"),
            path_ + ":2: 'mqtt.broker' must be HOST:PORT or mqtts://HOST:PORT, not 'h:70000'");
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"http://h:1\"\n"),
            path_ + ":2: 'mqtt.broker' must be HOST:PORT or mqtts://HOST:PORT, not 'http://h:1'");
  EXPECT_EQ(refusal("[mqtt]\nqos = 2\n"), path_ + ":2: 'mqtt.qos' must be 0 or 1");
  EXPECT_EQ(refusal("[mqtt]\nclient_id = \"\"\n"), path_ + ":2: 'mqtt.client_id' must not be empty");
  EXPECT_EQ(refusal("[mqtt]\ndead_letter_topic = \"dead/#\"\n"),
            path_ + ":2: 'mqtt.dead_letter_topic' must be a topic name, without + or #");
  EXPECT_EQ(refusal("[mqtt]\nbroker_port = 1\n"), path_ + ":2: unknown key 'broker_port' in [mqtt]");
  EXPECT_EQ(refusal("[[mqtt.routes]]\ntopic = \"a\"\n"),
            path_ + ":1: [[mqtt.routes]] needs a topic and a twin");
  EXPECT_EQ(refusal("[[mqtt.routes]]\ntopic = \"a\"\ntwin = \"b\"\nqos = 1\n"),
            path_ + ":4: unknown key 'qos' in [[mqtt.routes]]");
  EXPECT_EQ(refusal("[mqtt]\nroutes = \"a\"\n"),
            path_ + ":2: 'mqtt.routes' must be an array of tables ([[mqtt.routes]])");
}

TEST_F(Config, BrokerAddressesArePlainOrTls) {
  auto b = parse_broker("mqtts://broker.plant:8884");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "broker.plant");
  EXPECT_EQ(b->port, 8884);
  EXPECT_TRUE(b->tls);
  b = parse_broker("mqtts://broker.plant");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 8883) << "mqtts:// without a port: 8883";
  b = parse_broker("mqtt://10.0.0.5/");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 1883);
  EXPECT_FALSE(b->tls);
  b = parse_broker("10.0.0.5:1884");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "10.0.0.5");
  EXPECT_FALSE(b->tls);
  for (auto bad : {"", "h", ":1", "h:0", "h:x", "mqtts://", "mqtts://h:1/x", "ws://h:1", "a b:1"})
    EXPECT_FALSE(parse_broker(bad)) << bad;
}

TEST_F(Config, MqttAndSparkplugTlsAreReadWithPathsNextToTheConfigFile) {
  auto r = load("[mqtt]\nbroker = \"mqtts://127.0.0.1:8883\"\n"
                "[mqtt.tls]\nca = \"tls/ca.pem\"\ncertificate = \"c.pem\"\nprivate_key = \"/k.pem\"\n"
                "server_name = \"broker.plant\"\nverify_server_name = false\n"
                "[sparkplug]\nbroker = \"mqtts://h:1\"\n[sparkplug.tls]\nca = \"/ca.pem\"\n"
                "[edge]\ncentral = \"central:7800\"\n[edge.tls]\nca = \"ca.pem\"\n"
                "server_name = \"central.plant\"\n");
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_EQ(cfg.mqtt.host, "127.0.0.1");
  EXPECT_EQ(cfg.mqtt.port, 8883);
  EXPECT_TRUE(cfg.mqtt.tls.enabled);
  EXPECT_EQ(cfg.mqtt.tls.ca, (dir_ / "tls" / "ca.pem").string());
  EXPECT_EQ(cfg.mqtt.tls.certificate, (dir_ / "c.pem").string());
  EXPECT_EQ(cfg.mqtt.tls.private_key, "/k.pem");
  EXPECT_EQ(cfg.mqtt.tls.server_name, "broker.plant");
  EXPECT_FALSE(cfg.mqtt.tls.verify_server_name);
  EXPECT_TRUE(cfg.sparkplug.tls.enabled);
  EXPECT_EQ(cfg.sparkplug.tls.ca, "/ca.pem");
  EXPECT_TRUE(cfg.sparkplug.tls.verify_server_name);
  EXPECT_TRUE(cfg.edge.central_tls);
  EXPECT_EQ(cfg.edge.central_ca, (dir_ / "ca.pem").string());
  EXPECT_EQ(cfg.edge.central_tls_name, "central.plant");
  node_config plain;
  ASSERT_FALSE(parse_config("[mqtt]\nbroker = \"h:1\"\n[edge]\n", "n.toml", plain));
  EXPECT_FALSE(plain.mqtt.tls.enabled);
  EXPECT_FALSE(plain.edge.central_tls);
}

TEST_F(Config, BadBrokerTlsIsRefusedNamingTheLine) {
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"h:1\"\n[mqtt.tls]\nca = \"ca.pem\"\n"),
            path_ + ":3: [mqtt.tls] needs mqtt.broker = \"mqtts://HOST:PORT\", not 'h:1'");
  EXPECT_EQ(refusal("[sparkplug]\n[sparkplug.tls]\nca = \"ca.pem\"\n"),
            path_ + ":2: [sparkplug.tls] needs sparkplug.broker = \"mqtts://HOST:PORT\"");
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"mqtts://h\"\n[mqtt.tls]\ncertificate = \"c.pem\"\n"),
            path_ + ":3: [mqtt.tls] needs both certificate and private_key, or neither");
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"mqtts://h\"\n[mqtt.tls]\ncafile = \"c.pem\"\n"),
            path_ + ":4: unknown key 'cafile' in [mqtt.tls]");
  EXPECT_EQ(refusal("[mqtt]\nbroker = \"mqtts://h\"\n[mqtt.tls]\nverify_server_name = 0\n"),
            path_ + ":4: 'mqtt.tls.verify_server_name' must be true or false");
  EXPECT_EQ(refusal("[edge]\n[edge.tls]\ncertificate = \"c.pem\"\n"),
            path_ + ":3: unknown key 'certificate' in [edge.tls]");
  EXPECT_EQ(refusal("[sparkplug]\nbroker = \"mqtts//h\"\n"),
            path_ + ":2: 'sparkplug.broker' must be HOST:PORT or mqtts://HOST:PORT, not 'mqtts//h'");
}

TEST_F(Config, TokensWithAPlainSecretOrASecretHashAreRead) {
  auto hash = hash_secret("s3cret", min_hash_iterations);
  auto r = load("[[rpc.tokens]]\nname = \"plain\"\nsecret = \"p\"\nrole = \"write\"\n"
                "[[rpc.tokens]]\nname = \"hashed\"\nsecret_hash = \"" + hash + "\"\n");
  ASSERT_FALSE(r.has_value()) << *r;
  ASSERT_EQ(cfg.rpc_tokens.size(), 2u);
  EXPECT_EQ(cfg.rpc_tokens[0].secret, "p");
  EXPECT_EQ(cfg.rpc_tokens[0].secret_hash, "");
  EXPECT_EQ(cfg.rpc_tokens[1].secret, "");
  EXPECT_EQ(cfg.rpc_tokens[1].secret_hash, hash);
  EXPECT_EQ(cfg.rpc_tokens[1].role, "read");
}

TEST_F(Config, MalformedSecretHashIsRefusedNamingTheToken) {
  auto good = hash_secret("s3cret", min_hash_iterations);
  auto with_hash = [](const std::string& h) {
    return "[[rpc.tokens]]\nname = \"ops\"\nsecret_hash = \"" + h + "\"\n";
  };
  auto why = refusal(with_hash("s3cret"));
  EXPECT_NE(why.find("node.toml:1: token 'ops': secret_hash is malformed: expected "
                     "pbkdf2-sha256$ITERATIONS$SALT$HASH"),
            std::string::npos)
    << why;
  why = refusal(with_hash("pbkdf2-sha256$10$" + good.substr(good.find('$', 14) + 1)));
  EXPECT_NE(why.find("token 'ops'"), std::string::npos) << why;
  EXPECT_NE(why.find("iterations 10 are not from 1000"), std::string::npos) << why;
  why = refusal(with_hash(good.substr(0, good.size() - 4)));
  EXPECT_NE(why.find("the hash is not base64 of 32 bytes"), std::string::npos) << why;
  why = refusal(with_hash("pbkdf2-sha256$1000$!!!!$" + good.substr(good.rfind('$') + 1)));
  EXPECT_NE(why.find("the salt is not base64"), std::string::npos) << why;
  why = refusal("[[rpc.tokens]]\nname = \"ops\"\nsecret = \"x\"\nsecret_hash = \"" + good
                + "\"\n");
  EXPECT_NE(why.find("token 'ops' gives both secret and secret_hash"), std::string::npos) << why;
  why = refusal("[[rpc.tokens]]\nname = \"ops\"\n");
  EXPECT_NE(why.find("needs a name and a secret (or secret_hash)"), std::string::npos) << why;
  EXPECT_TRUE(cfg.rpc_tokens.empty());
}

TEST_F(Config, RpcTlsAndLimitsAreReadWithTlsPathsNextToTheConfigFile) {
  auto r = load("[rpc]\nplaintext = true\nmax_connections = 5\nmax_calls_in_flight = 6\n"
                "max_message_bytes = 4096\nlogin_timeout_ms = 700\n"
                "[rpc.tls]\ncertificate = \"tls/node.pem\"\nprivate_key = \"/etc/k.pem\"\n");
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_TRUE(cfg.rpc_plaintext);
  EXPECT_EQ(cfg.rpc_max_connections, 5u);
  EXPECT_EQ(cfg.rpc_max_calls_in_flight, 6u);
  EXPECT_EQ(cfg.rpc_max_message_bytes, 4096u);
  EXPECT_EQ(cfg.rpc_login_timeout_ms, 700);
  EXPECT_EQ(cfg.rpc_tls_certificate, (dir_ / "tls" / "node.pem").string());
  EXPECT_EQ(cfg.rpc_tls_private_key, "/etc/k.pem");
}

TEST_F(Config, BadRpcTlsAndLimitsAreRefusedNamingTheLine) {
  EXPECT_NE(refusal("[rpc.tls]\ncertificate = \"a.pem\"\n")
              .find("node.toml:1: [rpc.tls] needs both certificate and private_key"),
            std::string::npos);
  EXPECT_NE(refusal("[rpc.tls]\ncertificate = \"a\"\nprivate_key = \"b\"\nca = \"c\"\n")
              .find("node.toml:4: unknown key 'ca' in [rpc.tls]"),
            std::string::npos);
  EXPECT_NE(refusal("[rpc]\nmax_connections = 0\n")
              .find("node.toml:2: 'rpc.max_connections' must be at least 1"),
            std::string::npos);
  EXPECT_NE(refusal("[rpc]\nmax_calls_in_flight = 0\n")
              .find("'rpc.max_calls_in_flight' must be at least 1"),
            std::string::npos);
  EXPECT_NE(refusal("[rpc]\nmax_message_bytes = 10\n")
              .find("'rpc.max_message_bytes' must be at least 1024"),
            std::string::npos);
  EXPECT_NE(refusal("[rpc]\nplaintext = 1\n").find("'rpc.plaintext' must be true or false"),
            std::string::npos);
}

TEST_F(Config, TextInMemoryParsesAsTheSameFileWould) {
  const std::string text = "[node]\nthreads = 3\n[rpc]\naddress = \"127.0.0.1:1\"\n";
  ASSERT_FALSE(load(text));
  node_config from_text;
  ASSERT_FALSE(parse_config(text, "inline.toml", from_text));
  EXPECT_EQ(from_text.threads, cfg.threads);
  EXPECT_EQ(from_text.rpc_address, cfg.rpc_address);
  node_config bad;
  EXPECT_EQ(parse_config("[node]\nthreads = -1\n", "inline.toml", bad),
            "inline.toml:2: 'node.threads' must be a whole number, not negative");
  EXPECT_EQ(parse_config("[node\n", "inline.toml", bad).value_or("").rfind("inline.toml:1: ", 0),
            0u);
}

} // namespace
} // namespace twinrt::runtime
