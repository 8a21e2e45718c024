// Sparkplug B edge nodes feeding a node through a real Mosquitto on a free
// loopback port. The edge node of the tests is built from our .proto (the
// codec) and publishes with our MQTT client.

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "support.hpp"
#include "twinrt/adapters/mqtt_broker.hpp"
#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/adapters/sparkplug.hpp"
#include "twinrt/adapters/sparkplug_adapter.hpp"

namespace mqtt = twinrt::adapters::mqtt;
namespace spb = twinrt::adapters::sparkplug;
using twinrt::testing::eventually;
using twinrt::testing::patience_ms;
using twinrt::testing::temp_dir;

namespace {

constexpr const char* group = "plant-1";
constexpr const char* press = "acme/plant-1/edge-1/press-1";
constexpr const char* mill = "acme/plant-1/edge-1/mill-2";
constexpr const char* line = "acme/plant-1/edge-1";

mqtt::client_options options(uint16_t port, std::string id) {
  mqtt::client_options o;
  o.port = port;
  o.client_id = std::move(id);
  o.clean_session = true;
  o.keep_alive_s = 5;
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 500;
  return o;
}

spb::metric declared(std::string name, uint64_t alias, spb::data_type type,
                     spb::metric_value v) {
  spb::metric m;
  m.name = std::move(name);
  m.alias = alias;
  m.datatype = static_cast<uint32_t>(type);
  m.value = std::move(v);
  return m;
}

spb::metric by_alias(uint64_t alias, spb::metric_value v, int64_t ts) {
  spb::metric m;
  m.alias = alias;
  m.timestamp = static_cast<uint64_t>(ts);
  m.value = std::move(v);
  return m;
}

// A Sparkplug B edge node "edge-1" with devices, as a test drives it: each
// message gets the next seq unless the test says otherwise.
class edge_node {
public:
  edge_node(uint16_t port, std::string id) : id_(std::move(id)), client_(options(port, "edge-" + id_)) {
    client_.start();
  }

  bool wait_connected() { return client_.wait_connected(patience_ms); }

  void nbirth() {
    seq_ = 0;
    ++bd_seq_;
    publish(spb::message_type::nbirth, "",
            {declared("bdSeq", 0, spb::data_type::int64, uint64_t{bd_seq_}),
             declared("Node Control/Rebirth", 1, spb::data_type::boolean, false)},
            0);
  }

  // A press: Temperature (alias 10), Vibration (11), State (12), Serial (13).
  void dbirth(const std::string& device, double temperature) {
    publish(spb::message_type::dbirth, device,
            {declared("Temperature", 10, spb::data_type::double_, temperature),
             declared("Vibration", 11, spb::data_type::float_, 2.5f),
             declared("State", 12, spb::data_type::int8, uint32_t{1}),
             declared("Serial", 13, spb::data_type::string, std::string("SN-" + device))},
            next());
  }

  void ddata(const std::string& device, std::vector<spb::metric> metrics) {
    publish(spb::message_type::ddata, device, std::move(metrics), next());
  }

  void ddeath(const std::string& device) { publish(spb::message_type::ddeath, device, {}, next()); }

  void ndeath() {
    spb::payload p;
    p.metrics.push_back(declared("bdSeq", 0, spb::data_type::int64, uint64_t{bd_seq_}));
    raw(spb::message_type::ndeath, "", spb::encode(p));
  }

  void publish(spb::message_type type, const std::string& device, std::vector<spb::metric> metrics,
               std::optional<uint64_t> seq) {
    spb::payload p;
    p.timestamp = static_cast<uint64_t>(stamp());
    p.seq = seq;
    p.metrics = std::move(metrics);
    raw(type, device, spb::encode(p));
  }

  void raw(spb::message_type type, const std::string& device, std::string payload) {
    spb::topic t{type, group, id_, device};
    client_.publish(spb::topic_name(t), std::move(payload), 0);
  }

  // A time in ms later than every timestamp this edge node sent before: a
  // sample's seq is its time, and a value stamped in the same millisecond as
  // the birth would be a duplicate of the birth's value.
  int64_t stamp() { return last_ts_ = std::max(twinrt::twins::wall_ms(), last_ts_ + 1); }

  mqtt::client_stats client_stats() const { return client_.stats(); }

  uint64_t next() { return seq_ = (seq_ + 1) % 256; }
  uint64_t peek() const { return (seq_ + 1) % 256; }
  void skip(uint64_t n) { seq_ = (seq_ + n) % 256; }

private:
  std::string id_;
  mqtt::client client_;
  uint64_t seq_ = 0;
  uint64_t bd_seq_ = 0;
  int64_t last_ts_ = 0;
};

class Sparkplug : public ::testing::Test {
protected:
  void SetUp() override {
    mqtt::broker_options bo;
    bo.dir = dir.str();
    broker = std::make_unique<mqtt::local_broker>(bo);
    auto err = broker->start();
    ASSERT_TRUE(err.empty()) << err;

    auto cfg = twinrt::testing::test_config((dir.path() / "data").string());
    auto& sp = cfg.sparkplug;
    sp.enabled = true;
    sp.broker = "127.0.0.1:" + std::to_string(broker->port());
    sp.client_id = "twinrt-sparkplug-test";
    sp.groups = {group};
    sp.max_payload_bytes = 64 * 1024;
    sp.rebirth_interval_ms = 100;
    sp.host_id = "twinrt-test";
    twinrt::runtime::node_config::sparkplug_rule edge_rule;
    edge_rule.device = "";
    edge_rule.twin = "acme/{group}/{node}";
    edge_rule.kind = "line";
    edge_rule.parent = "acme/{group}";
    twinrt::runtime::node_config::sparkplug_rule machine;
    machine.twin = "acme/{group}/{node}/{device}";
    machine.kind = "machine";
    machine.parent = "acme/{group}/{node}";
    machine.channels = {{"Temperature", "temperature_c"},
                        {"Vibration", "vibration_mm_s"},
                        {"State", "state"}};
    sp.devices = {edge_rule, machine};
    node = twinrt::testing::start_node(cfg);
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create({{"acme", "enterprise", ""}, {"acme/plant-1", "plant", "acme"}}));

    settings = sp;
    adapter = std::make_unique<spb::adapter>(*node, sp);
    ASSERT_FALSE(adapter->start());
    commands = std::make_unique<mqtt::client>(options(broker->port(), "commands"));
    commands->on_message([this](const mqtt::message& m) {
      std::lock_guard<std::mutex> g(mtx);
      ncmds.push_back(m);
    });
    commands->subscribe("spBv1.0/plant-1/NCMD/#", 0);
    commands->subscribe("spBv1.0/STATE/#", 0);
    commands->start();
    edge = std::make_unique<edge_node>(broker->port(), "edge-1");
    ASSERT_TRUE(edge->wait_connected());
    ASSERT_TRUE(commands->wait_connected(patience_ms));
    // The adapter has subscribed once it sees a message; a command changes nothing.
    ASSERT_TRUE(eventually([&] {
      edge->raw(spb::message_type::ncmd, "", "probe");
      return adapter->stats().messages > 0;
    }));
  }

  void TearDown() override {
    edge.reset();
    commands.reset();
    adapter.reset();
    node.reset();
  }

  std::optional<twinrt::runtime::twin_view> twin(const std::string& id) {
    auto v = node->get(id);
    if (!v)
      return std::nullopt;
    return *v;
  }

  double channel(const std::string& id, const std::string& name) {
    auto v = twin(id);
    if (!v)
      return -1;
    auto c = v->state.channels.find(name);
    return c == v->state.channels.end() ? -1 : c->second.value;
  }

  twinrt::twins::health_status status(const std::string& id) {
    auto v = twin(id);
    return v ? v->state.status : twinrt::twins::health_status::ok;
  }

  bool offline(const std::string& id) {
    auto v = twin(id);
    return v && v->state.offline;
  }

  size_t rebirth_commands() {
    std::lock_guard<std::mutex> g(mtx);
    size_t n = 0;
    for (auto& m : ncmds) {
      auto p = spb::decode(m.payload, m.topic, 1 << 20);
      if (p && m.topic == "spBv1.0/plant-1/NCMD/edge-1" && p->metrics.size() == 1
          && p->metrics[0].name == "Node Control/Rebirth"
          && p->metrics[0].value == spb::metric_value(true))
        ++n;
    }
    return n;
  }

  // What the adapter and the edge's client saw, for a failure message.
  std::string seen() {
    auto a = adapter->stats();
    auto e = edge->client_stats();
    std::string out = "adapter: messages " + std::to_string(a.messages) + ", accepted "
                      + std::to_string(a.samples_accepted) + ", duplicates "
                      + std::to_string(a.duplicates) + ", refused " + std::to_string(a.refused_total())
                      + ", rebirths asked " + std::to_string(a.rebirths_requested) + "; edge client: connects "
                      + std::to_string(e.connects) + ", published " + std::to_string(e.published);
    for (auto& x : adapter->recent_refusals())
      out += "; refused: " + x.message;
    return out;
  }

  uint64_t refused(spb::reason r) { return adapter->stats().refused[static_cast<size_t>(r)]; }

  // The latest refusal with reason `r`, "" if none.
  std::string refusal_message(spb::reason r) {
    std::string out;
    for (auto& x : adapter->recent_refusals())
      if (x.why == r)
        out = x.message;
    return out;
  }

  // NBIRTH, then DBIRTH of press-1 and mill-2; waits until both twins are there.
  void birth() {
    edge->nbirth();
    edge->dbirth("press-1", 70);
    edge->dbirth("mill-2", 60);
    ASSERT_TRUE(eventually([&] { return channel(press, "temperature_c") == 70
                                        && channel(mill, "temperature_c") == 60; }));
  }

  temp_dir dir{"sparkplug"};
  std::unique_ptr<mqtt::local_broker> broker;
  std::unique_ptr<twinrt::runtime::node> node;
  twinrt::runtime::node_config::sparkplug_settings settings;
  std::unique_ptr<spb::adapter> adapter;
  std::unique_ptr<mqtt::client> commands;
  std::unique_ptr<edge_node> edge;
  std::mutex mtx;
  std::vector<mqtt::message> ncmds;
};

TEST_F(Sparkplug, BirthsCreateTwinsOfTheMappedKind) {
  birth();
  auto edge_twin = twin(line);
  ASSERT_TRUE(edge_twin);
  EXPECT_EQ(edge_twin->meta.kind, "line");
  EXPECT_EQ(edge_twin->meta.parent, "acme/plant-1");
  auto p = twin(press);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->meta.kind, "machine");
  EXPECT_EQ(p->meta.parent, line);
  EXPECT_EQ(p->state.channels.at("vibration_mm_s").value, 2.5);
  EXPECT_EQ(p->state.channels.at("state").value, 1);
  EXPECT_EQ(p->state.channels.count("Serial"), 0u); // a String is no channel value
  EXPECT_EQ(p->state.status, twinrt::twins::health_status::ok);
  // The adapter counts a twin right after creating it, so the count may lag
  // the twin by a moment.
  EXPECT_TRUE(eventually([&] { return adapter->stats().twins_created == 3u; }))
    << adapter->stats().twins_created;
  EXPECT_EQ(adapter->stats().refused_total(), 0u);
  // As a primary host application it announced itself, retained.
  auto state_message = [&]() -> std::optional<mqtt::message> {
    std::lock_guard<std::mutex> g(mtx);
    for (auto& m : ncmds)
      if (m.topic == "spBv1.0/STATE/twinrt-test")
        return m;
    return std::nullopt;
  };
  ASSERT_TRUE(eventually([&] { return state_message().has_value(); }));
  auto state = state_message();
  EXPECT_EQ(state->payload.rfind("{\"online\":true,\"timestamp\":", 0), 0u) << state->payload;
}

TEST_F(Sparkplug, DeviceDataWithAliasesUpdatesChannels) {
  birth();
  auto now = edge->stamp();
  edge->ddata("press-1", {by_alias(10, 75.5, now), by_alias(11, 4.75f, now)});
  edge->ddata("mill-2", {by_alias(12, uint32_t{2}, now)});
  ASSERT_TRUE(eventually([&] { return channel(press, "temperature_c") == 75.5
                                      && channel(mill, "state") == 2; }))
    << seen();
  EXPECT_EQ(channel(press, "vibration_mm_s"), 4.75);
  // Stored with its identity: source = group/node/device, seq = the metric's time.
  // (A twin shows a sample a moment before its batch is durable and in the history.)
  std::optional<std::vector<twinrt::runtime::history_point>> h;
  ASSERT_TRUE(eventually([&] {
    auto got = node->history(press, "temperature_c", now, now + 1);
    if (got)
      h = *got;
    return h && h->size() == 1u;
  })) << (h ? h->size() : 0) << " points";
  EXPECT_EQ((*h)[0].value, 75.5);
  EXPECT_EQ((*h)[0].source, "spb:plant-1/edge-1/press-1");
  EXPECT_EQ((*h)[0].seq, static_cast<uint64_t>(now));
}

TEST_F(Sparkplug, DeviceDeathThenNodeDeathMakeTheTwinsStaleAndABirthBringsThemBack) {
  birth();
  edge->ddeath("press-1");
  ASSERT_TRUE(eventually([&] { return status(press) == twinrt::twins::health_status::stale; }));
  EXPECT_TRUE(offline(press));
  EXPECT_FALSE(offline(mill));
  EXPECT_EQ(status(mill), twinrt::twins::health_status::ok);
  edge->ndeath();
  ASSERT_TRUE(eventually([&] { return offline(mill) && offline(line); }));
  EXPECT_EQ(status(mill), twinrt::twins::health_status::stale);
  EXPECT_EQ(status(line), twinrt::twins::health_status::stale);
  // When it went away is on record (durable a moment after the twin shows it).
  EXPECT_TRUE(eventually([&] {
    auto marks = node->history(press, std::string(twinrt::twins::offline_channel), 0,
                               twinrt::twins::wall_ms() + 1);
    return marks && !marks->empty();
  }));

  edge->nbirth();
  edge->dbirth("press-1", 71);
  edge->dbirth("mill-2", 61);
  ASSERT_TRUE(eventually([&] {
    return !offline(press) && !offline(mill) && !offline(line)
           && status(line) == twinrt::twins::health_status::ok;
  }));
  EXPECT_EQ(status(press), twinrt::twins::health_status::ok);
  EXPECT_EQ(channel(press, "temperature_c"), 71);
  // press-1, then mill-2 and the edge node (counted after the twins show them)
  EXPECT_TRUE(eventually([&] { return adapter->stats().offline_marks == 3u; }))
    << adapter->stats().offline_marks;
}

TEST_F(Sparkplug, NodeDeathSentWhileTheNodeWasAwayArrivesAfterARestart) {
  birth();
  // The adapter goes away; its broker session (clean session off) keeps the
  // subscription and queues QoS 1 messages, such as an NDEATH will.
  adapter->stop();
  spb::payload death;
  death.metrics.push_back(declared("bdSeq", 0, spb::data_type::int64, uint64_t{1}));
  mqtt::client will_sender(options(broker->port(), "will-sender"));
  will_sender.start();
  ASSERT_TRUE(will_sender.wait_connected(patience_ms));
  std::atomic<bool> sent{false};
  will_sender.publish("spBv1.0/plant-1/NDEATH/edge-1", spb::encode(death), 1, false,
                      [&](bool ok) { sent = ok; });
  ASSERT_TRUE(eventually([&] { return sent.load(); }));
  EXPECT_FALSE(offline(line));

  adapter = std::make_unique<spb::adapter>(*node, settings);
  ASSERT_FALSE(adapter->start());
  ASSERT_TRUE(eventually([&] { return offline(line); }));
  EXPECT_EQ(status(line), twinrt::twins::health_status::stale);
}

TEST_F(Sparkplug, SequenceGapAsksForARebirthAndTheRebirthBringsDataBack) {
  birth();
  edge->skip(3);
  edge->ddata("press-1", {by_alias(10, 90.0, edge->stamp())});
  ASSERT_TRUE(eventually([&] { return rebirth_commands() >= 1; }));
  EXPECT_GE(refused(spb::reason::sequence_gap), 1u);
  EXPECT_NE(refusal_message(spb::reason::sequence_gap).find("edge node plant-1/edge-1"),
            std::string::npos);
  EXPECT_EQ(channel(press, "temperature_c"), 70); // the message after the gap was not applied

  // The edge node answers as the specification says: births again.
  edge->nbirth();
  edge->dbirth("press-1", 72);
  edge->ddata("press-1", {by_alias(10, 73.0, edge->stamp())});
  ASSERT_TRUE(eventually([&] { return channel(press, "temperature_c") == 73; }));
}

TEST_F(Sparkplug, BadInputIsRefusedWithItsReasonCountedAndTheAdapterKeepsGoing) {
  birth();
  auto now = edge->stamp();
  // Unknown alias.
  edge->ddata("press-1", {by_alias(77, 1.0, now)});
  // Wrong metric type: a string for the Double Temperature.
  edge->ddata("press-1", {by_alias(10, std::string("hot"), now)});
  // Truncated protobuf. Its seq cannot be read, so it does not count as sent.
  spb::payload p;
  p.seq = edge->peek();
  p.metrics.push_back(by_alias(10, 80.0, now));
  auto bytes = spb::encode(p);
  edge->raw(spb::message_type::ddata, "press-1", bytes.substr(0, bytes.size() - 4));
  // Oversized payload (the limit is 64 KiB).
  edge->raw(spb::message_type::ddata, "press-1", std::string(100 * 1024, '\x08'));
  // Data before birth, from an edge node that never said hello.
  {
    edge_node stranger(broker->port(), "edge-9");
    ASSERT_TRUE(stranger.wait_connected());
    stranger.ddata("press-1", {by_alias(10, 1.0, now)});
    ASSERT_TRUE(eventually([&] { return refused(spb::reason::before_birth) >= 1; }));
  }
  ASSERT_TRUE(eventually([&] {
    return refused(spb::reason::unknown_alias) == 1 && refused(spb::reason::wrong_type) == 1
           && refused(spb::reason::malformed) == 1 && refused(spb::reason::oversized) == 1;
  }));
  EXPECT_EQ(refusal_message(spb::reason::unknown_alias),
            "metric alias 77 from edge node plant-1/edge-1 device press-1 was not declared in "
            "its birth");
  EXPECT_NE(refusal_message(spb::reason::wrong_type).find("'Temperature'"), std::string::npos);
  EXPECT_NE(refusal_message(spb::reason::malformed).find("spBv1.0/plant-1/DDATA/edge-1/press-1"),
            std::string::npos);
  EXPECT_NE(refusal_message(spb::reason::oversized).find("102400 bytes"), std::string::npos);
  EXPECT_NE(refusal_message(spb::reason::before_birth).find("edge-9"), std::string::npos);
  EXPECT_FALSE(twin("acme/plant-1/edge-9")); // nothing of it reached the node
  EXPECT_EQ(channel(press, "temperature_c"), 70);

  // A value the twin's model refuses (outside the channel's range) is refused by the node.
  edge->ddata("press-1", {by_alias(10, 5000.0, now + 1)});
  ASSERT_TRUE(eventually([&] { return refused(spb::reason::sample_refused) == 1; }));
  EXPECT_NE(refusal_message(spb::reason::sample_refused).find("temperature_c"), std::string::npos);

  // The next good message continues the sequence.
  edge->ddata("press-1", {by_alias(10, 81.0, now + 2)});
  ASSERT_TRUE(eventually([&] { return channel(press, "temperature_c") == 81; }));
  EXPECT_EQ(refused(spb::reason::sequence_gap), 0u);

  // What /metrics shows: twinrt_sparkplug_rejected_total by reason.
  std::map<std::string, int64_t> exported;
  for (auto& v : node->probe().adapter_values())
    if (v.family == "twinrt_sparkplug_rejected_total" && v.labels.size() == 1)
      exported[v.labels[0].second] = v.value;
  EXPECT_EQ(exported["unknown_alias"], 1);
  EXPECT_EQ(exported["oversized"], 1);
  EXPECT_EQ(exported["malformed"], 1);
  EXPECT_EQ(exported["sequence_gap"], 0);
}

} // namespace
