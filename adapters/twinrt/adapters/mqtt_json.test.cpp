#include "twinrt/adapters/mqtt_json.hpp"

#include <gtest/gtest.h>

using namespace twinrt::adapters::mqtt;

namespace {

route compiled(const std::string& topic, const std::string& twin) {
  route r;
  auto err = route::compile(topic, twin, r);
  EXPECT_FALSE(err) << *err;
  return r;
}

std::string refusal(const std::string& topic_pattern, const std::string& twin_pattern) {
  route r;
  auto err = route::compile(topic_pattern, twin_pattern, r);
  return err ? *err : std::string();
}

} // namespace

TEST(MqttRoute, PlaceholdersCaptureLevelsAndFillTheTwinId) {
  auto r = compiled("plants/{plant}/lines/{line}/machines/{machine}/telemetry",
                    "acme/{plant}/{line}/{machine}");
  EXPECT_EQ(r.filter(), "plants/+/lines/+/machines/+/telemetry");
  EXPECT_EQ(r.twin_for("plants/plant-1/lines/line-2/machines/machine-07/telemetry"),
            "acme/plant-1/line-2/machine-07");
  EXPECT_FALSE(r.twin_for("plants/plant-1/lines/line-2/machines/machine-07/status"));
  EXPECT_FALSE(r.twin_for("plants/plant-1/lines/line-2/machines/machine-07"));
  EXPECT_FALSE(r.twin_for("plants/plant-1/lines/line-2/machines/machine-07/telemetry/x"));
  EXPECT_FALSE(r.twin_for("plants//lines/line-2/machines/machine-07/telemetry"))
    << "an empty level cannot name a twin";
}

TEST(MqttRoute, PlusAndHashFollowMqttSemantics) {
  auto r = compiled("site/+/{dev}/#", "acme/{dev}");
  EXPECT_EQ(r.filter(), "site/+/+/#");
  EXPECT_EQ(r.twin_for("site/a/m1"), "acme/m1"); // '#' matches zero levels too
  EXPECT_EQ(r.twin_for("site/a/m1/x/y/z"), "acme/m1");
  EXPECT_FALSE(r.twin_for("site/a"));
  auto all = compiled("#", "acme/warehouse-1");
  EXPECT_EQ(all.twin_for("anything/at/all"), "acme/warehouse-1");
  EXPECT_FALSE(all.twin_for("$SYS/broker/uptime")) << "wildcards skip $ topics at level one";
}

TEST(MqttRoute, BadPatternsAreRefusedNamingThePattern) {
  EXPECT_NE(refusal("a/#/b", "x").find("'#' must be the last level"), std::string::npos);
  EXPECT_NE(refusal("a/{x}", "t/{y}").find("{y} in the twin pattern is not captured"),
            std::string::npos);
  EXPECT_NE(refusal("a/{x}/{x}", "t/{x}").find("appears twice"), std::string::npos);
  EXPECT_NE(refusal("a/b+c", "t").find("mixes text"), std::string::npos);
  EXPECT_NE(refusal("a/{}", "t").find("is not a {name}"), std::string::npos);
  EXPECT_NE(refusal("a/{x}", "t/{x").find("'{' without '}'"), std::string::npos);
  EXPECT_NE(refusal("", "t").find("empty"), std::string::npos);
  EXPECT_EQ(refusal("a/{x}", "t/{x}"), "");
}

TEST(MqttRoute, TheFirstMatchingRouteWins) {
  router rt;
  rt.routes.push_back(compiled("w/{id}/stock", "acme/{id}"));
  rt.routes.push_back(compiled("w/#", "acme/warehouse-1"));
  EXPECT_EQ(rt.twin_for("w/warehouse-2/stock"), "acme/warehouse-2");
  EXPECT_EQ(rt.twin_for("w/other"), "acme/warehouse-1");
  EXPECT_FALSE(rt.twin_for("v/other"));
}

TEST(MqttJson, AnObjectGivesOneSamplePerChannelWithTopicAsSource) {
  std::vector<twinrt::twins::sample> out;
  auto err = parse_json_payload("t/m1", R"({"ts": 1764000000123, "vibration_mm_s": 2.5, "state": true, "parts_total": 12})",
                                "acme/m1", 99, out);
  ASSERT_FALSE(err) << err->message;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].channel, "vibration_mm_s");
  EXPECT_EQ(out[0].value, 2.5);
  EXPECT_EQ(out[1].channel, "state");
  EXPECT_EQ(out[1].value, 1.0);
  EXPECT_EQ(out[2].channel, "parts_total");
  for (auto& s : out) {
    EXPECT_EQ(s.twin, "acme/m1");
    EXPECT_EQ(s.ts_ms, 1764000000123);
    EXPECT_EQ(s.source, "t/m1");
    EXPECT_EQ(s.seq, 1764000000123u) << "without seq, the timestamp is the sequence";
  }
}

TEST(MqttJson, AnArrayOfObjectsAndAnExplicitSeq) {
  std::vector<twinrt::twins::sample> out;
  auto err = parse_json_payload(
    "t/w1", R"([{"ts": 10, "seq": 7, "receipt/SKU-0001": 3}, {"ts": 11, "seq": 8, "pick/SKU-0001": 1}])",
    "acme/warehouse-1", 99, out);
  ASSERT_FALSE(err) << err->message;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].channel, "receipt/SKU-0001");
  EXPECT_EQ(out[0].seq, 7u);
  EXPECT_EQ(out[1].ts_ms, 11);
  EXPECT_EQ(out[1].seq, 8u);
}

TEST(MqttJson, AMissingTimestampIsTheReceiveTime) {
  std::vector<twinrt::twins::sample> out;
  ASSERT_FALSE(parse_json_payload("t", R"({"x": 1})", "a", 4242, out));
  EXPECT_EQ(out.at(0).ts_ms, 4242);
}

TEST(MqttJson, EachMalformedPayloadIsRefusedWithItsReasonAndNothingIsAdded) {
  struct bad {
    std::string payload;
    payload_error reason;
    std::string says;
  };
  std::vector<bad> cases = {
    {R"({"x": 1)", payload_error::invalid_json, "invalid JSON"},
    {"", payload_error::invalid_json, "invalid JSON"},
    {"\xff\xfe", payload_error::invalid_json, "invalid JSON"},
    {R"({"x": 1e999})", payload_error::invalid_json, "number overflow"}, // found by fuzz_mqtt_json
    {R"({"x": "hot"})", payload_error::wrong_type, "channel 'x' is a string, expected a number"},
    {R"({"x": null})", payload_error::wrong_type, "is null"},
    {R"({"x": [1]})", payload_error::wrong_type, "is an array"},
    {R"(42)", payload_error::wrong_type, "is a number, expected an object"},
    {R"([{"x": 1}, "y"])", payload_error::wrong_type, "element 1: is a string"},
    {R"({"ts": "yesterday", "x": 1})", payload_error::wrong_type, "'ts' is a string"},
    {R"({"ts": 1.5, "x": 1})", payload_error::wrong_type, "'ts' is a fraction"},
    {R"({"ts": -1, "x": 1})", payload_error::bad_timestamp, "outside"},
    {R"({"ts": 0, "x": 1})", payload_error::bad_timestamp, "outside"},
    {R"({"x": 1, "x": 2})", payload_error::invalid_json, "key \"x\" appears twice"},
    {R"({"ts": 99999999999999999, "x": 1})", payload_error::bad_timestamp, "outside"},
    {R"({"seq": 0, "x": 1})", payload_error::bad_seq, "outside"},
    {R"({"seq": -3, "x": 1})", payload_error::bad_seq, "not positive"},
    {R"({"ts": 5})", payload_error::empty, "no channel values"},
    {R"([])", payload_error::empty, "empty array"},
    {R"({"": 1})", payload_error::wrong_type, "channel name is empty"},
  };
  for (auto& c : cases) {
    std::vector<twinrt::twins::sample> out(1);
    auto err = parse_json_payload("plants/p1/t", c.payload, "acme/m", 1, out);
    ASSERT_TRUE(err) << c.payload;
    EXPECT_EQ(err->reason, c.reason) << c.payload << " -> " << err->message;
    EXPECT_NE(err->message.find(c.says), std::string::npos) << err->message;
    EXPECT_EQ(err->message.rfind("topic plants/p1/t: ", 0), 0u) << err->message;
    EXPECT_EQ(out.size(), 1u) << "a refused payload adds nothing";
  }
}

namespace {

// The samples parse_json_payload makes of `payload` on `topic`, received at 5000.
std::vector<twinrt::twins::sample> parsed(const std::string& topic, const std::string& payload) {
  std::vector<twinrt::twins::sample> out;
  auto err = parse_json_payload(topic, payload, "acme/m1", 5000, out);
  EXPECT_FALSE(err) << err->message;
  return out;
}

} // namespace

TEST(MqttSequenceWatch, AJumpInSeqIsOneGapNamingTheMissingRange) {
  sequence_watch w;
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 1, "x": 1, "y": 2})")).empty());
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 2, "x": 1})")).empty());
  auto gaps = w.observe(parsed("t/a", R"({"seq": 5, "x": 1, "y": 2})"));
  ASSERT_EQ(gaps.size(), 1u) << "two samples of one object are one message";
  EXPECT_EQ(gaps[0].topic, "t/a");
  EXPECT_EQ(gaps[0].first, 3u);
  EXPECT_EQ(gaps[0].last, 4u);
  EXPECT_EQ(gaps[0].after, 2u);
  EXPECT_EQ(gaps[0].missing(), 2u);
}

TEST(MqttSequenceWatch, ARedeliveryOrAnOlderSeqIsNotAGap) {
  sequence_watch w;
  w.observe(parsed("t/a", R"({"seq": 1, "x": 1})"));
  w.observe(parsed("t/a", R"({"seq": 2, "x": 1})"));
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 2, "x": 1})")).empty());
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 1, "x": 1})")).empty());
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 3, "x": 1})")).empty())
    << "the next one after a redelivery is no gap either";
}

TEST(MqttSequenceWatch, TopicsAreCountedApartAndTheFirstSeqOfATopicStartsIt) {
  sequence_watch w;
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 40, "x": 1})")).empty());
  EXPECT_TRUE(w.observe(parsed("t/b", R"({"seq": 7, "x": 1})")).empty());
  EXPECT_TRUE(w.observe(parsed("t/a", R"({"seq": 41, "x": 1})")).empty());
  EXPECT_EQ(w.observe(parsed("t/b", R"({"seq": 9, "x": 1})")).size(), 1u);
  EXPECT_EQ(w.topics(), 2u);
}

TEST(MqttSequenceWatch, AnArrayOfObjectsIsCheckedObjectByObject) {
  sequence_watch w;
  auto gaps = w.observe(parsed("t/a", R"([{"seq": 1, "x": 1}, {"seq": 2, "x": 1}, {"seq": 4, "x": 1}])"));
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].first, 3u);
  EXPECT_EQ(gaps[0].missing(), 1u);
}

TEST(MqttSequenceWatch, MessagesWithoutSeqAreNotWatched) {
  sequence_watch w;
  w.observe(parsed("t/a", R"({"ts": 100, "x": 1})"));
  w.observe(parsed("t/a", R"({"ts": 500, "x": 1})"));
  w.observe(parsed("t/a", R"({"x": 1})"));
  EXPECT_EQ(w.topics(), 0u) << "ts (or the receive time) stands in for seq, but is not a count";
}
