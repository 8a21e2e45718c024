// The MQTT JSON adapter on a node, fed through a real Mosquitto by mosquitto_pub and by our
// client: good messages change twins, bad ones are rejected with their reason, counted and
// dead-lettered, and the adapter keeps going.

#include <atomic>
#include <map>

#include <nlohmann/json.hpp>

#include "mqtt_support.hpp"
#include "twinrt/adapters/mqtt_ingest.hpp"

namespace mqtt = twinrt::adapters::mqtt;
using namespace twinrt::testing;

namespace {

const std::string machine_topic = "plants/plant-1/lines/line-1/machines/machine-01/telemetry";
const std::string machine_id = "acme/plant-1/line-1/machine-01";
const std::string warehouse_topic = "warehouses/warehouse-1/movements";
const std::string dead_letter_topic = "twinrt/dead-letter";

class MqttIngest : public ::testing::Test {
protected:
  void SetUp() override {
    mqtt::broker_options bo;
    bo.dir = broker_dir.str();
    bo.max_inflight_messages = 1000;
    bo.max_queued_messages = 100'000;
    broker = std::make_unique<mqtt::local_broker>(bo);
    auto err = broker->start();
    ASSERT_TRUE(err.empty()) << err;
    node = start_node(test_config(data.str()));
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create(mqtt_plant()));
    settings.enabled = true;
    settings.port = broker->port();
    settings.client_id = "twinrt-ingest-test";
    settings.dead_letter_topic = dead_letter_topic;
    settings.max_payload_bytes = 4096;
    settings.routes = mqtt_routes();
  }
  void start_adapter() {
    auto a = mqtt::ingest::start(*node, settings);
    ASSERT_TRUE(a) << twinrt::runtime::describe(a.error());
    adapter = std::move(*a);
    ASSERT_TRUE(adapter->wait_connected(patience_ms));
  }
  int64_t metric(const std::string& family, const std::string& label, const std::string& value) {
    for (auto& v : node->probe().adapter_values())
      if (v.family == family
          && (label.empty() || (v.labels.size() == 1 && v.labels[0].first == label
                                && v.labels[0].second == value)))
        return v.value;
    return -1;
  }
  double channel(const std::string& id, const std::string& ch) {
    auto v = node->get(id);
    if (!v)
      return -1;
    auto i = v->state.channels.find(ch);
    return i == v->state.channels.end() ? -1 : i->second.value;
  }

  temp_dir broker_dir{"mqtt-ingest-broker"};
  temp_dir data{"mqtt-ingest-node"};
  std::unique_ptr<mqtt::local_broker> broker;
  std::unique_ptr<twinrt::runtime::node> node;
  twinrt::runtime::node_config::mqtt_settings settings;
  std::unique_ptr<mqtt::ingest> adapter; // destroyed before the node
};

std::string payload(int64_t ts, const std::string& body) {
  return "{\"ts\": " + std::to_string(ts) + ", " + body + "}";
}

} // namespace

TEST_F(MqttIngest, MosquittoPubOfAWellFormedMessageChangesTheTwin) {
  start_adapter();
  auto ts = twinrt::twins::wall_ms();
  ASSERT_EQ(mosquitto_pub(broker->port(), machine_topic,
                          payload(ts, "\"vibration_mm_s\": 3.25, \"temperature_c\": 61.5")),
            0);
  ASSERT_TRUE(eventually([&] { return channel(machine_id, "vibration_mm_s") == 3.25; }));
  EXPECT_EQ(channel(machine_id, "temperature_c"), 61.5);
  // A twin shows a sample before its batch is durable; the adapter counts the
  // message once it is, and then the history holds it.
  ASSERT_TRUE(eventually([&] { return adapter->stats().accepted == 1u; }));
  auto hist = node->history(machine_id, "vibration_mm_s", 0, ts + 1);
  ASSERT_TRUE(hist);
  ASSERT_EQ(hist->size(), 1u);
  EXPECT_EQ(hist->at(0).source, machine_topic);
  EXPECT_EQ(hist->at(0).seq, static_cast<uint64_t>(ts));
  // An array of objects, as one message.
  ASSERT_EQ(mosquitto_pub(broker->port(), machine_topic,
                          "[{\"ts\": " + std::to_string(ts + 1) + ", \"vibration_mm_s\": 4},"
                          " {\"ts\": " + std::to_string(ts + 2) + ", \"vibration_mm_s\": 5}]"),
            0);
  ASSERT_TRUE(eventually([&] { return channel(machine_id, "vibration_mm_s") == 5; }));
  EXPECT_TRUE(eventually([&] {
    auto st = adapter->stats();
    return st.accepted == 2u && st.samples == 4u;
  })) << adapter->stats().accepted << " messages, " << adapter->stats().samples << " samples";
  EXPECT_EQ(node->history(machine_id, "vibration_mm_s", 0, ts + 10)->size(), 3u);
  EXPECT_EQ(metric("twinrt_mqtt_messages_total", "result", "accepted"), 2);
  EXPECT_EQ(metric("twinrt_mqtt_connected", "", ""), 1);
}

TEST_F(MqttIngest, EachMalformedMessageIsRejectedWithItsReasonAndTheAdapterKeepsGoing) {
  collector dead(broker->port(), "dead-letter-reader", dead_letter_topic);
  ASSERT_TRUE(dead.client().wait_connected(patience_ms));
  start_adapter();
  auto ts = twinrt::twins::wall_ms();
  struct bad {
    std::string topic, payload, reason, says;
  };
  std::vector<bad> cases = {
    {machine_topic, "{\"vibration_mm_s\": 1", "invalid_json", "invalid JSON"},
    {machine_topic, payload(ts, "\"vibration_mm_s\": \"high\""), "wrong_type",
     "channel 'vibration_mm_s' is a string"},
    {"plants//lines/line-1/machines/machine-01/telemetry", payload(ts, "\"vibration_mm_s\": 1"),
     "unknown_topic", "matches no [[mqtt.routes]] pattern"},
    {machine_topic, payload(ts, "\"vibration_mm_s\": 1, \"pad\": \"" + std::string(5000, 'x') + "\""),
     "oversized", "above max_payload_bytes 4096"},
    {machine_topic, payload(ts, "\"spindle_rpm\": 900"), "unknown_channel", "spindle_rpm"},
    {"plants/plant-1/lines/line-1/machines/machine-99/telemetry", payload(ts, "\"vibration_mm_s\": 1"),
     "unknown_twin", "machine-99"},
    {machine_topic, payload(ts, "\"vibration_mm_s\": -5"), "out_of_range", "vibration_mm_s"},
  };
  for (auto& c : cases)
    ASSERT_EQ(mosquitto_pub(broker->port(), c.topic, c.payload), 0) << c.reason;
  // And a good one after them: the adapter keeps going.
  ASSERT_EQ(mosquitto_pub(broker->port(), machine_topic, payload(ts + 1, "\"vibration_mm_s\": 2.5")), 0);
  ASSERT_TRUE(eventually([&] { return channel(machine_id, "vibration_mm_s") == 2.5; }));
  ASSERT_TRUE(eventually([&] { return dead.size() == cases.size(); })) << dead.size();
  ASSERT_TRUE(eventually([&] {
    auto st = adapter->stats();
    return st.accepted == 1u && st.rejected == cases.size();
  })) << adapter->stats().accepted << " accepted, " << adapter->stats().rejected << " rejected";

  // One dead letter per case, each with its own reason (topics in different lanes may be
  // reported in either order).
  std::map<std::string, nlohmann::json> by_reason;
  for (auto& m : dead.messages()) {
    auto doc = nlohmann::json::parse(m.payload);
    EXPECT_TRUE(by_reason.emplace(doc.at("reason").get<std::string>(), doc).second) << m.payload;
  }
  for (auto& c : cases) {
    ASSERT_EQ(by_reason.count(c.reason), 1u) << c.reason;
    auto& doc = by_reason[c.reason];
    EXPECT_EQ(doc.at("topic"), c.topic);
    auto error = doc.at("error").get<std::string>();
    EXPECT_NE(error.find(c.says), std::string::npos) << c.reason << ": " << error;
    EXPECT_NE(error.find("topic " + c.topic), std::string::npos) << error;
    if (c.reason == "unknown_channel" || c.reason == "unknown_twin" || c.reason == "out_of_range") {
      EXPECT_NE(error.find(": sample 0 for acme/"), std::string::npos)
        << "samples are numbered within their message: " << error;
    }
    if (c.reason != "oversized") {
      EXPECT_EQ(doc.at("payload"), c.payload);
    }
    EXPECT_EQ(metric("twinrt_mqtt_rejected_total", "reason", c.reason), 1) << c.reason;
  }
  auto st = adapter->stats();
  EXPECT_EQ(st.rejected, cases.size());
  EXPECT_EQ(st.accepted, 1u);
  EXPECT_EQ(st.dead_letters, cases.size());
  EXPECT_EQ(metric("twinrt_mqtt_messages_total", "result", "rejected"),
            static_cast<int64_t>(cases.size()));
  // Nothing of the rejected messages reached the twin.
  EXPECT_EQ(node->history(machine_id, "vibration_mm_s", 0, ts + 10)->size(), 1u);
}

TEST_F(MqttIngest, ARedeliveredMessageIsAppliedOnceAndStockStaysExact) {
  start_adapter();
  auto ts = twinrt::twins::wall_ms();
  auto msg = payload(ts, "\"receipt/SKU-0001\": 5");
  ASSERT_EQ(mosquitto_pub(broker->port(), warehouse_topic, msg), 0);
  ASSERT_EQ(mosquitto_pub(broker->port(), warehouse_topic, msg), 0); // the same message again
  ASSERT_EQ(mosquitto_pub(broker->port(), warehouse_topic, payload(ts + 1, "\"pick/SKU-0001\": 2")), 0);
  ASSERT_TRUE(eventually([&] {
    auto s = adapter->stats();
    return s.accepted + s.duplicate == 3;
  }));
  EXPECT_EQ(adapter->stats().duplicate, 1u);
  EXPECT_EQ(node->get("acme/warehouse-1")->state.stock.at("SKU-0001"), 3);
  ASSERT_TRUE(eventually([&] {
    auto root = node->get("acme")->state.own;
    auto i = root.sums.find("stock/SKU-0001");
    return i != root.sums.end() && i->second == 3;
  }));
}

TEST_F(MqttIngest, ManyMessagesShareANodeBatchAndAllAreAcknowledged) {
  settings.linger_ms = 20;
  start_adapter();
  mqtt::client pub(collector::options(broker->port(), "ingest-publisher"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  const int n = 2000;
  auto ts = twinrt::twins::wall_ms() - 10'000;
  std::atomic<int> acked{0};
  for (int i = 0; i < n; ++i)
    pub.publish(warehouse_topic, payload(ts + i, "\"receipt/SKU-0002\": 1"), 1, false,
                [&](bool ok) { acked += ok ? 1 : 0; });
  ASSERT_TRUE(eventually([&] { return adapter->stats().accepted == n; }))
    << adapter->stats().accepted;
  EXPECT_TRUE(eventually([&] { return acked.load() == n; })) << acked.load();
  EXPECT_EQ(node->get("acme/warehouse-1")->state.stock.at("SKU-0002"), n);
  EXPECT_LT(adapter->stats().batches, static_cast<uint64_t>(n / 4))
    << "messages are batched into fewer node ingests";
}

TEST_F(MqttIngest, APayloadFarAboveTheLimitIsRejectedWithoutBeingKeptAndTheConnectionStays) {
  collector dead(broker->port(), "dead-letter-reader-big", dead_letter_topic);
  ASSERT_TRUE(dead.client().wait_connected(patience_ms));
  start_adapter();
  mqtt::client pub(collector::options(broker->port(), "big-publisher"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  auto ts = twinrt::twins::wall_ms();
  std::string huge = payload(ts, "\"vibration_mm_s\": 1, \"pad\": \"" + std::string(300'000, 'x') + "\"");
  pub.publish(machine_topic, huge, 1);
  pub.publish(machine_topic, payload(ts + 1, "\"vibration_mm_s\": 4.5"), 1);
  ASSERT_TRUE(eventually([&] { return channel(machine_id, "vibration_mm_s") == 4.5; }));
  ASSERT_TRUE(eventually([&] { return dead.size() == 1; }));
  auto doc = nlohmann::json::parse(dead.messages().at(0).payload);
  EXPECT_EQ(doc.at("reason"), "oversized");
  EXPECT_NE(doc.at("error").get<std::string>().find("payload of " + std::to_string(huge.size()) + " bytes"),
            std::string::npos)
    << doc.at("error");
  EXPECT_EQ(metric("twinrt_mqtt_rejected_total", "reason", "oversized"), 1);
  EXPECT_EQ(metric("twinrt_mqtt_connects_total", "", ""), 1) << "the connection stays";
}

// A broker that drops QoS 1 messages (a full session queue) tells nobody; numbered messages
// show it: seq 1, 2, 5 is one gap of two messages, and seq 2 again is a redelivery, not a gap.
TEST_F(MqttIngest, AJumpInATopicsSeqIsCountedAsAGapAndARedeliveryIsNot) {
  start_adapter();
  auto numbered = [](int seq, double v) {
    return "{\"seq\": " + std::to_string(seq) + ", \"vibration_mm_s\": " + std::to_string(v) + "}";
  };
  for (auto [seq, v] : std::vector<std::pair<int, double>>{{1, 1.5}, {2, 2.5}, {5, 3.5}})
    ASSERT_EQ(mosquitto_pub(broker->port(), machine_topic, numbered(seq, v)), 0) << seq;
  ASSERT_TRUE(eventually([&] { return adapter->stats().accepted == 3; }))
    << adapter->stats().accepted;
  EXPECT_EQ(adapter->stats().sequence_gaps, 1u);
  EXPECT_EQ(adapter->stats().sequence_gap_messages, 2u);
  EXPECT_EQ(metric("twinrt_mqtt_sequence_gaps_total", "", ""), 1);
  EXPECT_EQ(metric("twinrt_mqtt_sequence_gap_messages_total", "", ""), 2);

  ASSERT_EQ(mosquitto_pub(broker->port(), machine_topic, numbered(2, 2.5)), 0); // again
  ASSERT_EQ(mosquitto_pub(broker->port(), machine_topic, numbered(6, 4.0)), 0);
  ASSERT_TRUE(eventually([&] {
    auto s = adapter->stats();
    return s.accepted + s.duplicate == 5;
  }));
  EXPECT_EQ(adapter->stats().duplicate, 1u);
  EXPECT_EQ(adapter->stats().sequence_gaps, 1u) << "a redelivery is not a gap";
  EXPECT_EQ(adapter->stats().sequence_gap_messages, 2u);
  EXPECT_EQ(channel(machine_id, "vibration_mm_s"), 4.0);
}
