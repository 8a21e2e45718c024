#include "twinrt/twins/predicate.hpp"

#include <map>

#include <gtest/gtest.h>

namespace twinrt::twins {

namespace {

twin_state machine(double vibration, double score) {
  twin_state st;
  st.channels["vibration_mm_s"] = {vibration, 1000};
  st.score = score;
  st.own.sums["power_kw"] = 12.5;
  st.own.sums["stock/SKU-1"] = 40;
  return st;
}

predicate parsed(std::string_view text) {
  auto r = predicate::parse(text);
  EXPECT_TRUE(std::holds_alternative<predicate>(r)) << std::get<std::string>(r);
  return std::get<predicate>(r);
}

std::string refusal(std::string_view text) {
  auto r = predicate::parse(text);
  EXPECT_TRUE(std::holds_alternative<std::string>(r)) << text << " was accepted";
  return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "";
}

} // namespace

TEST(Predicate, EmptyMatchesEverything) {
  EXPECT_TRUE(parsed("").matches(twin_state{}));
  EXPECT_TRUE(parsed("   ").matches(machine(1, 100)));
}

TEST(Predicate, ComparesChannelValues) {
  auto p = parsed("vibration_mm_s > 4.5");
  EXPECT_TRUE(p.matches(machine(4.6, 100)));
  EXPECT_FALSE(p.matches(machine(4.5, 100)));
  EXPECT_TRUE(parsed("vibration_mm_s>=4.5").matches(machine(4.5, 100)));
  EXPECT_TRUE(parsed("vibration_mm_s != 3").matches(machine(4.5, 100)));
  EXPECT_TRUE(parsed("vibration_mm_s == 3").matches(machine(3, 100)));
}

TEST(Predicate, ClausesJoinedByAndMustAllHold) {
  auto p = parsed("vibration_mm_s > 4.5 and score < 80");
  EXPECT_TRUE(p.matches(machine(5, 50)));
  EXPECT_FALSE(p.matches(machine(5, 90)));
  EXPECT_FALSE(p.matches(machine(1, 50)));
  EXPECT_EQ(parsed("a > 1 && b < 2").clauses().size(), 2u);
}

TEST(Predicate, ReadsRollupSumsAndZeroStock) {
  EXPECT_TRUE(parsed("power_kw > 12").matches(machine(1, 100)));
  EXPECT_TRUE(parsed("stock/SKU-1 == 40").matches(machine(1, 100)));
  EXPECT_TRUE(parsed("stock/SKU-9 < 5").matches(machine(1, 100)));
}

TEST(Predicate, TwinWithoutTheValueDoesNotMatch) {
  EXPECT_FALSE(parsed("temperature_c > -1000").matches(machine(1, 100)));
}

TEST(Predicate, VisitedValuesAreExactlyWhatValueOfReads) {
  // Names held by several sources: value_of() reads the first of channel,
  // derived, score/health, energy, sums; visit_values() gives each name once.
  twin_state st;
  st.channels["vibration_mm_s"] = {4.2, 1000};
  st.channels["power_kw"] = {30, 1000};
  st.analytics.derived["rul_hours"] = 61;
  st.analytics.derived["power_kw"] = 99;  // shadowed by the channel
  st.analytics.derived["score"] = 12;     // shadows the score
  st.score = 80;
  st.status = health_status::warning;
  st.energy_kwh = 5;
  st.own.sums["energy_kwh"] = 7;          // the sum wins over the field
  st.own.sums["power_kw"] = 150;          // shadowed by the channel
  st.own.sums["stock/SKU-1"] = 40;
  st.own.sums["count/running"] = 3;
  std::map<std::string, double> seen;
  size_t calls = 0;
  visit_values(st, [&](const std::string& name, double v) {
    ++calls;
    seen[name] = v;
  });
  EXPECT_EQ(calls, seen.size()) << "a name was visited twice";
  EXPECT_EQ(seen, (std::map<std::string, double>{{"vibration_mm_s", 4.2},
                                                 {"power_kw", 30},
                                                 {"rul_hours", 61},
                                                 {"score", 12},
                                                 {"health", 1},
                                                 {"energy_kwh", 7},
                                                 {"stock/SKU-1", 40},
                                                 {"count/running", 3}}));
  for (auto& [name, v] : seen)
    EXPECT_EQ(value_of(st, name), v) << name;
  // Not visited: read as absent, or as zero stock and counts.
  EXPECT_EQ(value_of(st, "temperature_c"), std::nullopt);
  EXPECT_EQ(value_of(st, "stock/SKU-9"), 0.0);

  twin_state bare; // no energy sum: the field
  bare.energy_kwh = 5;
  std::map<std::string, double> bare_seen;
  visit_values(bare, [&](const std::string& name, double v) { bare_seen[name] = v; });
  EXPECT_EQ(bare_seen["energy_kwh"], 5);
}

TEST(Predicate, MalformedTextIsRefusedWithTheTextAndReason) {
  EXPECT_EQ(refusal("vibration_mm_s >"),
            "bad predicate 'vibration_mm_s >': expected a number after 'vibration_mm_s', got ''");
  EXPECT_NE(refusal("vibration_mm_s ~ 4").find("expected one of"), std::string::npos);
  EXPECT_NE(refusal("> 4").find("expected a channel or rollup name"), std::string::npos);
  EXPECT_NE(refusal("a > 1 or b < 2").find("expected 'and'"), std::string::npos);
  EXPECT_NE(refusal("a > four").find("got 'four'"), std::string::npos);
  EXPECT_NE(refusal("a > nan").find("expected a number"), std::string::npos);
}

} // namespace twinrt::twins
