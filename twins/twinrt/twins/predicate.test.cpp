#include "twinrt/twins/predicate.hpp"

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
