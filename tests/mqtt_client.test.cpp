// The MQTT client against a real Mosquitto on a free loopback port.

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "support.hpp"
#include "twinrt/adapters/mqtt_broker.hpp"
#include "twinrt/adapters/mqtt_client.hpp"

namespace mqtt = twinrt::adapters::mqtt;
using twinrt::testing::eventually;
using twinrt::testing::patience_ms;
using twinrt::testing::temp_dir;

namespace {

mqtt::client_options options(uint16_t port, std::string id) {
  mqtt::client_options o;
  o.port = port;
  o.client_id = std::move(id);
  o.keep_alive_s = 5;
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 500;
  return o;
}

// What a subscriber saw, by payload.
struct inbox {
  std::mutex mtx;
  std::vector<mqtt::message> got;
  size_t size() {
    std::lock_guard<std::mutex> g(mtx);
    return got.size();
  }
  std::vector<mqtt::message> copy() {
    std::lock_guard<std::mutex> g(mtx);
    return got;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mtx);
    got.clear();
  }
};

class MqttClient : public ::testing::Test {
protected:
  void SetUp() override {
    mqtt::broker_options o;
    o.dir = dir.str();
    o.persistence = true;
    broker = std::make_unique<mqtt::local_broker>(o);
    auto err = broker->start();
    ASSERT_TRUE(err.empty()) << err;
  }
  temp_dir dir{"mqtt-client"};
  std::unique_ptr<mqtt::local_broker> broker;
};

// Publishes `n` QoS 1 messages "0".."n-1" on `topic`; returns how many the broker acknowledged.
size_t publish_numbered(mqtt::client& pub, const std::string& topic, int from, int n) {
  std::atomic<size_t> acked{0};
  for (int i = from; i < from + n; ++i)
    pub.publish(topic, std::to_string(i), 1, false, [&](bool ok) { acked += ok ? 1 : 0; });
  eventually([&] { return acked.load() == static_cast<size_t>(n); });
  return acked.load();
}

} // namespace

TEST_F(MqttClient, QoS1MessagesArriveAndThePublisherSeesEachAcknowledged) {
  inbox in;
  mqtt::client sub(options(broker->port(), "sub-1"));
  sub.on_message([&](const mqtt::message& m) {
    {
      std::lock_guard<std::mutex> g(in.mtx);
      in.got.push_back(m);
    }
    sub.ack(m.packet_id);
  });
  sub.subscribe("t/#", 1);
  sub.start();
  // wait_connected returns once the broker acknowledged the subscription (SUBACK).
  ASSERT_TRUE(sub.wait_connected(patience_ms));
  mqtt::client pub(options(broker->port(), "pub-1"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  EXPECT_EQ(publish_numbered(pub, "t/a", 0, 500), 500u);
  ASSERT_TRUE(eventually([&] { return in.size() == 500; })) << in.size();
  auto got = in.copy();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].topic, "t/a");
    EXPECT_EQ(got[i].payload, std::to_string(i));
    EXPECT_EQ(got[i].qos, 1);
    EXPECT_NE(got[i].packet_id, 0);
  }
  EXPECT_EQ(pub.pending_publishes(), 0u);
  EXPECT_TRUE(eventually([&] { return sub.stats().acks_sent == 500; }));
}

TEST_F(MqttClient, UnacknowledgedMessagesAreRedeliveredToTheSameSession) {
  std::atomic<bool> acking{true};
  inbox in;
  auto make_sub = [&] {
    auto s = std::make_unique<mqtt::client>(options(broker->port(), "sub-redeliver"));
    auto raw = s.get();
    s->on_message([&in, &acking, raw](const mqtt::message& m) {
      int n = std::stoi(m.payload);
      {
        std::lock_guard<std::mutex> g(in.mtx);
        in.got.push_back(m);
      }
      if (acking || n < 20)
        raw->ack(m.packet_id);
    });
    s->subscribe("r/+", 1);
    return s;
  };
  auto sub = make_sub();
  sub->start();
  ASSERT_TRUE(sub->wait_connected(patience_ms));
  mqtt::client pub(options(broker->port(), "pub-redeliver"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  acking = false; // only 0..19 are acknowledged
  EXPECT_EQ(publish_numbered(pub, "r/x", 0, 30), 30u);
  ASSERT_TRUE(eventually([&] { return in.size() == 30; }));
  EXPECT_TRUE(eventually([&] { return sub->stats().acks_sent == 20; }));
  sub.reset(); // disconnects with 20..29 unacknowledged
  in.clear();
  acking = true;
  sub = make_sub();
  sub->start();
  std::set<int> expected;
  for (int i = 20; i < 30; ++i)
    expected.insert(i);
  std::set<int> again;
  EXPECT_TRUE(eventually([&] {
    again.clear();
    for (auto& m : in.copy())
      again.insert(std::stoi(m.payload));
    return again == expected;
  }));
  EXPECT_EQ(again, expected);
  for (auto& m : in.copy())
    EXPECT_TRUE(m.dup) << m.payload;
}

TEST_F(MqttClient, AnAckWaitsForEarlierUnacknowledgedMessages) {
  // Acknowledge every message but the first: no PUBACK may leave (arrival order), so after a
  // reconnect the broker re-delivers all of them.
  inbox in;
  std::atomic<bool> hold_first{true};
  std::atomic<int> handled{0}; // messages whose handler has returned (acks_sent counts in ack())
  auto make_sub = [&] {
    auto s = std::make_unique<mqtt::client>(options(broker->port(), "sub-order"));
    auto raw = s.get();
    s->on_message([&in, &hold_first, &handled, raw](const mqtt::message& m) {
      {
        std::lock_guard<std::mutex> g(in.mtx);
        in.got.push_back(m);
      }
      if (!(hold_first && m.payload == "0"))
        raw->ack(m.packet_id);
      ++handled;
    });
    s->subscribe("o/+", 1);
    return s;
  };
  auto sub = make_sub();
  sub->start();
  ASSERT_TRUE(sub->wait_connected(patience_ms));
  mqtt::client pub(options(broker->port(), "pub-order"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  EXPECT_EQ(publish_numbered(pub, "o/x", 0, 10), 10u);
  ASSERT_TRUE(eventually([&] { return handled == 10; }));
  EXPECT_EQ(sub->stats().acks_sent, 0u);
  sub.reset();
  in.clear();
  hold_first = false;
  sub = make_sub();
  sub->start();
  ASSERT_TRUE(eventually([&] { return in.size() == 10; })) << in.size();
  EXPECT_TRUE(eventually([&] { return sub->stats().acks_sent == 10; }));
}

TEST_F(MqttClient, PublishesWhileTheBrokerIsDownAreSentAfterItReturns) {
  inbox in;
  mqtt::client sub(options(broker->port(), "sub-restart"));
  sub.on_message([&](const mqtt::message& m) {
    {
      std::lock_guard<std::mutex> g(in.mtx);
      in.got.push_back(m);
    }
    sub.ack(m.packet_id);
  });
  sub.subscribe("b/+", 1);
  sub.start();
  ASSERT_TRUE(sub.wait_connected(patience_ms));
  mqtt::client pub(options(broker->port(), "pub-restart"));
  std::atomic<int> connects{0};
  pub.on_connection([&](bool up) { connects += up ? 1 : 0; });
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  broker->stop();
  ASSERT_TRUE(eventually([&] { return !pub.connected() && !sub.connected(); }));
  std::atomic<int> acked{0};
  for (int i = 0; i < 20; ++i)
    pub.publish("b/x", std::to_string(i), 1, false, [&](bool ok) { acked += ok ? 1 : 0; });
  EXPECT_EQ(pub.pending_publishes(), 20u);
  ASSERT_TRUE(broker->start().empty());
  ASSERT_TRUE(eventually([&] { return acked == 20; })) << acked;
  EXPECT_GE(connects.load(), 2);
  // The subscriber's session (persistent broker, clean_session = false) resumes by itself.
  ASSERT_TRUE(eventually([&] { return in.size() == 20; })) << in.size();
}

TEST_F(MqttClient, AnOversizedPublishArrivesWithoutItsPayloadAndTheConnectionStays) {
  mqtt::client pub(options(broker->port(), "pub-big"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
  auto o = options(broker->port(), "sub-small");
  o.max_packet_bytes = 1000;
  mqtt::client sub(o);
  inbox in;
  sub.on_message([&](const mqtt::message& m) {
    {
      std::lock_guard<std::mutex> g(in.mtx);
      in.got.push_back(m);
    }
    sub.ack(m.packet_id);
  });
  sub.subscribe("big/#", 1);
  sub.start();
  ASSERT_TRUE(sub.wait_connected(patience_ms));
  // A retained QoS 0 message, then QoS 1 ones: big, small, big, small.
  std::atomic<bool> written{false};
  pub.publish("big/retained", std::string(5000, 'r'), 0, true, [&](bool ok) { written = ok; });
  ASSERT_TRUE(eventually([&] { return written.load(); }));
  pub.publish("big/1", std::string(200'000, 'x'), 1);
  pub.publish("big/2", "small", 1);
  pub.publish("big/3", std::string(3000, 'y'), 1);
  pub.publish("big/4", "tiny", 1);
  ASSERT_TRUE(eventually([&] { return in.size() == 5; })) << in.size();
  auto got = in.copy();
  EXPECT_EQ(got[0].topic, "big/retained");
  EXPECT_EQ(got[0].dropped_bytes, 5000u);
  EXPECT_EQ(got[1].topic, "big/1");
  EXPECT_EQ(got[1].dropped_bytes, 200'000u);
  EXPECT_TRUE(got[1].payload.empty());
  EXPECT_EQ(got[2].payload, "small");
  EXPECT_EQ(got[2].dropped_bytes, 0u);
  EXPECT_EQ(got[3].dropped_bytes, 3000u);
  EXPECT_EQ(got[4].payload, "tiny");
  EXPECT_EQ(sub.stats().oversized_packets, 3u);
  EXPECT_EQ(sub.stats().connects, 1u) << "the connection stays";
  EXPECT_TRUE(eventually([&] { return sub.stats().acks_sent == 4; }));
}

TEST_F(MqttClient, KeepAliveHoldsAnIdleAndASendOnlyConnection) {
  auto o = options(broker->port(), "idle");
  o.keep_alive_s = 1;
  mqtt::client idle(o);
  idle.start();
  o.client_id = "sender";
  mqtt::client sender(o); // QoS 0 only: the broker never answers it
  sender.start();
  ASSERT_TRUE(idle.wait_connected(patience_ms));
  ASSERT_TRUE(sender.wait_connected(patience_ms));
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3500);
  while (std::chrono::steady_clock::now() < until) {
    sender.publish("nobody/listens", "x", 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(idle.connected());
  EXPECT_TRUE(sender.connected());
  EXPECT_EQ(idle.stats().connects, 1u) << "PINGREQ kept the idle connection";
  EXPECT_EQ(sender.stats().connects, 1u) << "PINGREQ kept the send-only connection";
}
