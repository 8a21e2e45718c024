#include "twinrt/adapters/sparkplug.hpp"
#include "twinrt/adapters/sparkplug_session.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace twinrt::adapters::sparkplug {
namespace {

constexpr int64_t now = 1'700'000'000'000;

metric declared(std::string name, uint64_t alias, data_type type, metric_value v) {
  metric m;
  m.name = std::move(name);
  m.alias = alias;
  m.datatype = static_cast<uint32_t>(type);
  m.value = std::move(v);
  return m;
}

metric by_alias(uint64_t alias, metric_value v, std::optional<uint64_t> ts = std::nullopt) {
  metric m;
  m.alias = alias;
  m.timestamp = ts;
  m.value = std::move(v);
  return m;
}

payload with(std::optional<uint64_t> seq, std::vector<metric> metrics) {
  payload p;
  p.timestamp = static_cast<uint64_t>(now);
  p.seq = seq;
  p.metrics = std::move(metrics);
  return p;
}

payload nbirth(uint64_t seq, uint64_t bd_seq) {
  return with(seq, {declared("bdSeq", 0, data_type::int64, uint64_t{bd_seq}),
                    declared("Node Control/Rebirth", 1, data_type::boolean, false),
                    declared("uptime_s", 2, data_type::uint32, uint32_t{12})});
}

payload dbirth(uint64_t seq) {
  return with(seq, {declared("Temperature", 10, data_type::double_, 71.5),
                    declared("State", 11, data_type::int8, uint32_t{1}),
                    declared("Serial", 12, data_type::string, std::string("SN-1"))});
}

payload death(uint64_t bd_seq) {
  payload p;
  p.metrics.push_back(declared("bdSeq", 0, data_type::int64, uint64_t{bd_seq}));
  return p;
}

std::vector<reason> reasons(const outcome& o) {
  std::vector<reason> out;
  for (auto& r : o.refused)
    out.push_back(r.why);
  return out;
}

// -- codec ---------------------------------------------------------------------

TEST(SparkplugCodec, PayloadSurvivesARoundTrip) {
  auto p = dbirth(7);
  p.metrics.push_back(by_alias(13, byte_string{std::string("\0\1", 2)}, 5));
  p.metrics.back().is_null = true;
  auto back = decode(encode(p), "t", 1 << 20);
  ASSERT_TRUE(back) << message_of(back.error());
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->timestamp, static_cast<uint64_t>(now));
  ASSERT_EQ(back->metrics.size(), 4u);
  EXPECT_EQ(back->metrics[0].name, "Temperature");
  EXPECT_EQ(back->metrics[0].alias, 10u);
  EXPECT_EQ(back->metrics[0].value, metric_value(71.5));
  EXPECT_EQ(back->metrics[1].value, metric_value(uint32_t{1}));
  EXPECT_EQ(back->metrics[2].value, metric_value(std::string("SN-1")));
  EXPECT_FALSE(back->metrics[3].name);
  EXPECT_EQ(back->metrics[3].timestamp, 5u);
  EXPECT_TRUE(back->metrics[3].is_null);
  EXPECT_EQ(back->metrics[3].value, metric_value(byte_string{std::string("\0\1", 2)}));
}

TEST(SparkplugCodec, AbsentSeqStaysAbsent) {
  auto back = decode(encode(death(3)), "t", 1 << 20);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->seq);
  EXPECT_FALSE(back->timestamp);
}

TEST(SparkplugCodec, TruncatedPayloadIsRefusedNamingTheTopic) {
  auto bytes = encode(dbirth(1));
  auto r = decode(std::string_view(bytes).substr(0, bytes.size() - 3), "spBv1.0/g/DBIRTH/n/d",
                  1 << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(reason_of(r.error()), reason::malformed);
  EXPECT_NE(message_of(r.error()).find("spBv1.0/g/DBIRTH/n/d"), std::string::npos)
    << message_of(r.error());
}

TEST(SparkplugCodec, BytesThatAreNotProtobufAreRefused) {
  auto r = decode("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "t", 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(reason_of(r.error()), reason::malformed);
}

TEST(SparkplugCodec, OversizedPayloadIsRefusedBeforeParsing) {
  auto r = decode(std::string(1001, 'x'), "spBv1.0/g/NDATA/n", 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(reason_of(r.error()), reason::oversized);
  EXPECT_NE(message_of(r.error()).find("1001 bytes"), std::string::npos);
}

TEST(SparkplugCodec, SignedIntegersAreTwosComplementOfTheirWidth) {
  EXPECT_EQ(*to_number(uint32_t{0xff}, 1, "m"), -1);               // Int8, 8-bit form
  EXPECT_EQ(*to_number(uint32_t{0xffffffff}, 1, "m"), -1);         // Int8, sign-extended
  EXPECT_EQ(*to_number(uint32_t{0xfffffffb}, 3, "m"), -5);         // Int32
  EXPECT_EQ(*to_number(uint64_t{0xfffffffffffffffe}, 4, "m"), -2); // Int64
  EXPECT_EQ(*to_number(uint32_t{0xffffffff}, 7, "m"), 4294967295.0); // UInt32
  EXPECT_EQ(*to_number(true, 11, "m"), 1);
  EXPECT_EQ(*to_number(2.5f, 9, "m"), 2.5);
}

TEST(SparkplugCodec, ValueThatDoesNotFitItsDatatypeIsRefusedNamingTheMetric) {
  auto r = to_number(std::string("hot"), 10, "'Temperature'");
  ASSERT_FALSE(r);
  EXPECT_EQ(reason_of(r.error()), reason::wrong_type);
  EXPECT_EQ(message_of(r.error()),
            "metric 'Temperature': string_value does not fit datatype Double");
  EXPECT_FALSE(to_number(1.0, 12, "m")); // a String is never a number
}

// -- topics --------------------------------------------------------------------

TEST(SparkplugTopic, NodeDeviceAndStateTopicsAreParsed) {
  auto n = parse_topic("spBv1.0/plant-1/NBIRTH/edge-1");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->type, message_type::nbirth);
  EXPECT_EQ(n->group, "plant-1");
  EXPECT_EQ(n->edge_node, "edge-1");
  EXPECT_EQ(n->device, "");
  auto d = parse_topic("spBv1.0/plant-1/DDATA/edge-1/press-7");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, message_type::ddata);
  EXPECT_EQ(d->device, "press-7");
  EXPECT_EQ(topic_name(*d), "spBv1.0/plant-1/DDATA/edge-1/press-7");
  auto s = parse_topic("spBv1.0/STATE/scada-1");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, message_type::state);
  EXPECT_EQ(topic_name(*s), "spBv1.0/STATE/scada-1");
}

TEST(SparkplugTopic, MalformedTopicsAreRefusedNamingThem) {
  for (auto bad : {"spAv1.0/g/NDATA/n", "spBv1.0/g/NDATA", "spBv1.0/g/NDATA/n/d",
                   "spBv1.0/g/DDATA/n", "spBv1.0/g/XDATA/n", "spBv1.0//NDATA/n",
                   "spBv1.0/g/DDATA/n/d/e", ""}) {
    auto t = parse_topic(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(reason_of(t.error()), reason::bad_topic);
    EXPECT_NE(message_of(t.error()).find(std::string("'") + bad + "'"), std::string::npos);
  }
}

// -- the edge node session -----------------------------------------------------

class SparkplugSession : public ::testing::Test {
protected:
  edge_node_session s{"plant-1", "edge-1", 5'000};

  void born() {
    auto o = s.handle(message_type::nbirth, "", nbirth(0, 4), now);
    ASSERT_TRUE(o.refused.empty());
    o = s.handle(message_type::dbirth, "press-7", dbirth(1), now);
    ASSERT_TRUE(o.refused.empty()) << o.refused[0].message;
  }
};

TEST_F(SparkplugSession, BirthsDeclareMetricsAndReportTheirNumericValues) {
  auto o = s.handle(message_type::nbirth, "", nbirth(0, 4), now);
  EXPECT_EQ(o.born, std::vector<std::string>{""});
  ASSERT_EQ(o.updates.size(), 1u); // bdSeq and Node Control are the protocol's
  EXPECT_EQ(o.updates[0].metric, "uptime_s");
  EXPECT_EQ(o.ignored, 2u);
  o = s.handle(message_type::dbirth, "press-7", dbirth(1), now);
  EXPECT_EQ(o.born, std::vector<std::string>{"press-7"});
  ASSERT_EQ(o.updates.size(), 2u); // the String is declared, not reported
  EXPECT_EQ(o.updates[0].device, "press-7");
  EXPECT_EQ(o.updates[0].metric, "Temperature");
  EXPECT_EQ(o.updates[0].value, 71.5);
  EXPECT_EQ(o.updates[0].ts_ms, now);
  EXPECT_EQ(o.updates[1].metric, "State");
  EXPECT_TRUE(s.device_born("press-7"));
}

TEST_F(SparkplugSession, DataByAliasIsReportedUnderTheBirthName) {
  born();
  auto o = s.handle(message_type::ddata, "press-7",
                    with(2, {by_alias(10, 80.25, now + 5), by_alias(11, uint32_t{0xfe})}), now);
  ASSERT_TRUE(o.refused.empty());
  ASSERT_EQ(o.updates.size(), 2u);
  EXPECT_EQ(o.updates[0].metric, "Temperature");
  EXPECT_EQ(o.updates[0].value, 80.25);
  EXPECT_EQ(o.updates[0].ts_ms, now + 5); // the metric's own time wins
  EXPECT_EQ(o.updates[1].metric, "State");
  EXPECT_EQ(o.updates[1].value, -2); // Int8
}

TEST_F(SparkplugSession, UnknownAliasIsRefusedAndTheOtherMetricsStillCount) {
  born();
  auto o = s.handle(message_type::ddata, "press-7", with(2, {by_alias(99, 1.0), by_alias(10, 2.0)}),
                    now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::unknown_alias});
  EXPECT_EQ(o.refused[0].message,
            "metric alias 99 from edge node plant-1/edge-1 device press-7 was not declared in "
            "its birth");
  ASSERT_EQ(o.updates.size(), 1u);
  EXPECT_FALSE(o.rebirth);
}

TEST_F(SparkplugSession, ValueOfTheWrongTypeIsRefusedNamingTheMetric) {
  born();
  auto o = s.handle(message_type::ddata, "press-7", with(2, {by_alias(10, std::string("hot"))}),
                    now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::wrong_type});
  EXPECT_NE(o.refused[0].message.find("'Temperature'"), std::string::npos) << o.refused[0].message;
  EXPECT_TRUE(o.updates.empty());
}

TEST_F(SparkplugSession, SequenceGapRefusesTheMessageAndAsksForARebirthOnce) {
  born();
  auto o = s.handle(message_type::ddata, "press-7", with(5, {by_alias(10, 1.0)}), now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::sequence_gap});
  EXPECT_NE(o.refused[0].message.find("seq 5, expected 2"), std::string::npos);
  EXPECT_TRUE(o.rebirth);
  EXPECT_TRUE(o.updates.empty());
  EXPECT_FALSE(s.born());
  // Until the rebirth, data is refused; the request is not repeated within the interval.
  o = s.handle(message_type::ddata, "press-7", with(6, {by_alias(10, 1.0)}), now + 1000);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::before_birth});
  EXPECT_FALSE(o.rebirth);
  o = s.handle(message_type::ddata, "press-7", with(7, {by_alias(10, 1.0)}), now + 5000);
  EXPECT_TRUE(o.rebirth);
  // The rebirth starts over.
  o = s.handle(message_type::nbirth, "", nbirth(0, 5), now + 6000);
  EXPECT_TRUE(o.refused.empty());
  o = s.handle(message_type::dbirth, "press-7", dbirth(1), now + 6000);
  EXPECT_TRUE(o.refused.empty());
}

TEST_F(SparkplugSession, SeqWrapsFrom255To0) {
  s.handle(message_type::nbirth, "", nbirth(254, 1), now);
  EXPECT_TRUE(s.handle(message_type::dbirth, "d", dbirth(255), now).refused.empty());
  auto o = s.handle(message_type::ddata, "d", with(0, {by_alias(10, 1.0)}), now);
  EXPECT_TRUE(o.refused.empty());
  EXPECT_EQ(o.updates.size(), 1u);
}

TEST_F(SparkplugSession, DataBeforeAnyBirthIsRefusedAndAsksForARebirth) {
  auto o = s.handle(message_type::ndata, "", with(3, {by_alias(2, uint32_t{1})}), now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::before_birth});
  EXPECT_TRUE(o.rebirth);
}

TEST_F(SparkplugSession, DeviceDataWithoutItsDeviceBirthIsRefused) {
  s.handle(message_type::nbirth, "", nbirth(0, 1), now);
  auto o = s.handle(message_type::ddata, "press-9", with(1, {by_alias(10, 1.0)}), now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::before_birth});
  EXPECT_NE(o.refused[0].message.find("press-9"), std::string::npos);
  EXPECT_TRUE(o.rebirth);
}

TEST_F(SparkplugSession, DataWithoutSeqIsRefused) {
  born();
  auto o = s.handle(message_type::ddata, "press-7", with(std::nullopt, {by_alias(10, 1.0)}), now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::missing_seq});
}

TEST_F(SparkplugSession, BirthMetricWithoutDatatypeIsRefused) {
  s.handle(message_type::nbirth, "", nbirth(0, 1), now);
  auto p = dbirth(1);
  p.metrics[0].datatype.reset();
  auto o = s.handle(message_type::dbirth, "press-7", p, now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::bad_birth});
  EXPECT_EQ(o.updates.size(), 1u); // State still counts
}

TEST_F(SparkplugSession, DeviceDeathEndsTheDevice) {
  born();
  auto o = s.handle(message_type::ddeath, "press-7", with(2, {}), now);
  EXPECT_EQ(o.died, std::vector<std::string>{"press-7"});
  EXPECT_FALSE(s.device_born("press-7"));
  o = s.handle(message_type::ddata, "press-7", with(3, {by_alias(10, 1.0)}), now);
  EXPECT_EQ(reasons(o), std::vector<reason>{reason::before_birth});
}

TEST_F(SparkplugSession, NodeDeathEndsTheNodeAndEveryDevice) {
  born();
  auto o = s.handle(message_type::ndeath, "", death(4), now);
  EXPECT_EQ(o.died, (std::vector<std::string>{"", "press-7"}));
  EXPECT_FALSE(s.born());
}

TEST_F(SparkplugSession, DeathOfAnEarlierSessionIsIgnored) {
  born();
  auto o = s.handle(message_type::ndeath, "", death(3), now); // our birth said bdSeq 4
  EXPECT_TRUE(o.died.empty());
  EXPECT_TRUE(s.born());
}

// -- mapping -------------------------------------------------------------------

std::vector<runtime::node_config::sparkplug_rule> rules() {
  runtime::node_config::sparkplug_rule node_rule;
  node_rule.device = "";
  node_rule.twin = "acme/{group}/{node}";
  node_rule.kind = "line";
  node_rule.parent = "acme/{group}";
  runtime::node_config::sparkplug_rule robots;
  robots.group = "plant-*";
  robots.device = "robot-*";
  robots.twin = "acme/{group}/{node}/{device}";
  robots.kind = "robot";
  runtime::node_config::sparkplug_rule rest;
  rest.twin = "acme/{group}/{node}/{device}";
  rest.kind = "machine";
  rest.parent = "acme/{group}/{node}";
  rest.channels = {{"Temperature", "temperature_c"}};
  return {node_rule, robots, rest};
}

TEST(SparkplugMapping, FirstMatchingRuleDecides) {
  mapping m(rules());
  auto node = m.find("plant-1", "edge-1", "");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->id, "acme/plant-1/edge-1");
  EXPECT_EQ(node->kind, "line");
  EXPECT_EQ(node->parent, "acme/plant-1");
  auto robot = m.find("plant-2", "edge-1", "robot-3");
  ASSERT_TRUE(robot);
  EXPECT_EQ(robot->kind, "robot");
  EXPECT_EQ(robot->parent, "");
  auto press = m.find("plant-1", "edge-1", "press-7");
  ASSERT_TRUE(press);
  EXPECT_EQ(press->id, "acme/plant-1/edge-1/press-7");
  EXPECT_EQ(press->kind, "machine");
  EXPECT_EQ(mapping::channel(*press, "Temperature"), "temperature_c");
  EXPECT_EQ(mapping::channel(*press, "state"), "state");
}

TEST(SparkplugMapping, DeviceRulesDoNotMatchTheEdgeNodeItself) {
  auto r = rules();
  r.erase(r.begin());
  mapping m(r);
  EXPECT_FALSE(m.find("plant-1", "edge-1", ""));
}

} // namespace
} // namespace twinrt::adapters::sparkplug
