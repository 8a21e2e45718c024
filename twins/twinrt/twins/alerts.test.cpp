#include "twinrt/twins/alerts.hpp"

#include <gtest/gtest.h>

#include "twinrt/twins/model.hpp"

namespace twinrt::twins {
namespace {

alert_rule above(double threshold, double clear_at, int64_t hold_ms = 0) {
  alert_rule r;
  r.name = "hot";
  r.value = "temperature_c";
  r.above = threshold;
  r.clear_at = clear_at;
  r.hold_ms = hold_ms;
  r.sev = severity::critical;
  return r;
}

struct AlertRules : ::testing::Test {
  alert_tracks tracks;
  std::vector<alert_rule> rules;
  uint64_t ids = 0;
  std::optional<double> current;

  std::vector<alert_transition> feed(std::optional<double> v, int64_t now) {
    current = v;
    return evaluate_alerts(
      tracks, rules, [&](std::string_view) { return current; }, now, [&] { return ++ids; });
  }
  alert_phase phase() const {
    auto t = tracks.find("hot");
    return t == tracks.end() ? alert_phase::idle : t->second.phase;
  }
};

TEST_F(AlertRules, NoiseAroundTheThresholdRaisesOnceAndDoesNotFlap) {
  rules = {above(100, 90)};
  int raised = 0, cleared = 0;
  int64_t now = 0;
  // Noise of +-3 around 100 for a long time: one raise, never a clear.
  for (int i = 0; i < 200; ++i) {
    double v = 100 + ((i % 2) ? 3 : -3) + (i % 3);
    for (auto& t : feed(v, now += 100))
      (t.kind == alert_transition::what::raised ? raised : cleared)++;
  }
  EXPECT_EQ(raised, 1);
  EXPECT_EQ(cleared, 0);
  EXPECT_EQ(phase(), alert_phase::raised);
  // Below the clear band: cleared once.
  auto out = feed(89.5, now += 100);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, alert_transition::what::cleared);
  EXPECT_EQ(out[0].track.alert_id, 1u);
  EXPECT_EQ(phase(), alert_phase::idle);
}

TEST_F(AlertRules, ClearBandKeepsTheAlertUntilTheValueIsBackPastClearAt) {
  rules = {above(100, 90)};
  ASSERT_EQ(feed(101, 1).size(), 1u);
  EXPECT_TRUE(feed(95, 2).empty());
  EXPECT_TRUE(feed(90.01, 3).empty());
  EXPECT_EQ(phase(), alert_phase::raised);
  auto out = feed(90, 4); // at clear_at clears
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, alert_transition::what::cleared);
  EXPECT_DOUBLE_EQ(out[0].value, 90);
}

TEST_F(AlertRules, BelowRuleMirrorsAbove) {
  auto r = above(0, 0);
  r.above.reset();
  r.below = 10;
  r.clear_at = 15;
  rules = {r};
  EXPECT_TRUE(feed(11, 1).empty());
  ASSERT_EQ(feed(9, 2).size(), 1u);
  EXPECT_TRUE(feed(14, 3).empty());
  ASSERT_EQ(feed(15, 4).size(), 1u);
}

TEST_F(AlertRules, HoldTimeRaisesOnlyAfterTheBreachLastedLongEnough) {
  rules = {above(100, 90, 5000)};
  EXPECT_TRUE(feed(120, 1000).empty());
  EXPECT_EQ(phase(), alert_phase::pending);
  EXPECT_EQ(next_alert_check(tracks, rules), 6000);
  EXPECT_TRUE(any_pending(tracks));
  EXPECT_TRUE(feed(120, 5999).empty());
  auto out = feed(120, 6000);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, alert_transition::what::raised);
  EXPECT_EQ(out[0].track.since_ms, 6000);
  EXPECT_EQ(next_alert_check(tracks, rules), std::numeric_limits<int64_t>::max());
}

TEST_F(AlertRules, ABreachThatStopsDuringTheHoldResetsIt) {
  rules = {above(100, 90, 5000)};
  EXPECT_TRUE(feed(120, 0).empty());
  EXPECT_TRUE(feed(99, 4000).empty()); // not a breach: the hold starts over
  EXPECT_EQ(phase(), alert_phase::idle);
  EXPECT_TRUE(feed(120, 4500).empty());
  EXPECT_TRUE(feed(120, 9000).empty()); // only 4.5 s since the new breach
  ASSERT_EQ(feed(120, 9500).size(), 1u);
}

TEST_F(AlertRules, AMissingValueResetsAPendingHoldButKeepsARaisedAlert) {
  rules = {above(100, 90, 1000)};
  feed(120, 0);
  EXPECT_TRUE(feed(std::nullopt, 500).empty());
  EXPECT_EQ(phase(), alert_phase::idle);
  feed(120, 600);
  ASSERT_EQ(feed(120, 1600).size(), 1u);
  EXPECT_TRUE(feed(std::nullopt, 2000).empty());
  EXPECT_EQ(phase(), alert_phase::raised);
}

TEST_F(AlertRules, AcknowledgedAlertStaysUntilClearedAndANewBreachGetsANewId) {
  rules = {above(100, 90)};
  auto out = feed(120, 1);
  auto id = out.at(0).track.alert_id;
  EXPECT_FALSE(acknowledge_alert(tracks, id + 7, "op", "", 2));
  auto rule = acknowledge_alert(tracks, id, "op", "on it", 2);
  ASSERT_TRUE(rule);
  EXPECT_EQ(*rule, "hot");
  EXPECT_EQ(phase(), alert_phase::acknowledged);
  EXPECT_EQ(tracks["hot"].acked_by, "op");
  EXPECT_TRUE(feed(130, 3).empty()); // still breached: no new raise
  out = feed(50, 4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].track.acked_by, "op");
  EXPECT_EQ(out[0].track.note, "on it");
  EXPECT_FALSE(acknowledge_alert(tracks, id, "op", "", 5)); // cleared: nothing to ack
  out = feed(120, 6);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].track.alert_id, id);
}

TEST_F(AlertRules, ARuleRemovedFromTheModelClearsItsAlert) {
  rules = {above(100, 90)};
  feed(120, 1);
  rules.clear();
  auto out = feed(120, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, alert_transition::what::cleared);
  EXPECT_TRUE(tracks.empty());
}

model parse_ok(const std::string& text) {
  auto r = parse_model(text, "t.toml");
  if (auto* e = std::get_if<model_error>(&r))
    ADD_FAILURE() << e->to_string();
  return std::get<model>(r);
}

std::string parse_refusal(const std::string& text) {
  auto r = parse_model(text, "t.toml");
  auto* e = std::get_if<model_error>(&r);
  return e ? e->to_string() : "";
}

const char* base = R"(kind = "machine"
version = 1
stale_after_s = 30
[channels.temperature_c]
type = "gauge"
min = 0
max = 500
)";

TEST(AlertModel, ParsesRulesAndAddsTheBuiltInStaleRule) {
  auto m = parse_ok(std::string(base) + R"(
[[alerts]]
name = "overheat"
value = "temperature_c"
above = 110
clear_at = 100
for_s = 2.5
severity = "critical"
message = "too hot"

[[alerts]]
name = "wearing_out"
value = "rul_hours"
below = 72
event = "prediction"
)");
  ASSERT_EQ(m.alerts.size(), 3u);
  EXPECT_EQ(m.alerts[0].name, "overheat");
  EXPECT_EQ(*m.alerts[0].above, 110);
  EXPECT_EQ(m.alerts[0].clear_at, 100);
  EXPECT_EQ(m.alerts[0].hold_ms, 2500);
  EXPECT_EQ(m.alerts[0].sev, severity::critical);
  EXPECT_EQ(m.alerts[1].value, "rul_hours");
  EXPECT_EQ(m.alerts[1].clear_at, 72);
  EXPECT_EQ(m.alerts[1].event, "prediction");
  EXPECT_EQ(m.alerts[1].sev, severity::warning);
  EXPECT_EQ(m.alerts[2].name, "stale");
  EXPECT_EQ(m.alerts[2].value, "data_age_s");
  EXPECT_EQ(*m.alerts[2].above, 30);
  EXPECT_TRUE(m.alerts[2].built_in);
}

TEST(AlertModel, RefusesBadRulesNamingTheLine) {
  auto rule = [](const std::string& body) {
    return parse_refusal(std::string(base) + "[[alerts]]\n" + body);
  };
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\n"),
            "t.toml:8: alert 'a' needs exactly one of 'above' and 'below'");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\nabove = 1\nbelow = 0\n"),
            "t.toml:8: alert 'a' needs exactly one of 'above' and 'below'");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\nabove = 10\nclear_at = 11\n"),
            "t.toml:12: alert 'a': clear_at is above 'above'");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\nbelow = 10\nclear_at = 9\n"),
            "t.toml:12: alert 'a': clear_at is below 'below'");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\nabove = 1\nseverity = \"high\"\n"),
            "t.toml:12: alert 'a': severity 'high' is not info, warning or critical");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\nabove = 1\nfor_s = -1\n"),
            "t.toml:12: alert 'a': 'for_s' must not be negative");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"temperature_c\"\nabove = 1\ncolour = 1\n"),
            "t.toml:12: unknown key 'colour' in [[alerts]]");
  EXPECT_EQ(rule("name = \"A b\"\nvalue = \"x\"\nabove = 1\n"),
            "t.toml:8: alert name 'A b' must be lower-case letters, digits and _");
  EXPECT_EQ(rule("name = \"a\"\nvalue = \"x\"\nabove = 1\n[[alerts]]\nname = \"a\"\nvalue = "
                 "\"x\"\nabove = 2\n"),
            "t.toml:12: alert 'a' is declared twice");
}

} // namespace
} // namespace twinrt::twins
