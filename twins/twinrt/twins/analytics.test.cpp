#include "twinrt/twins/analytics.hpp"

#include <cmath>
#include <random>
#include <string>
#include <variant>

#include <gtest/gtest.h>

#include "twinrt/twins/model.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt::twins {

namespace {

constexpr int64_t minute = 60'000;
constexpr int64_t hour = 60 * minute;
// Monday 2026-11-23 00:00 UTC.
constexpr int64_t monday = 1'763'856'000'000;

// vibration = start + rate * hours + noise, one sample a minute.
void feed_line(degradation_trend& t, int64_t from, int64_t to, double start, double rate,
               double noise_sd, std::mt19937_64& rng, int64_t step = minute) {
  std::normal_distribution<double> noise(0, noise_sd);
  for (int64_t ts = from; ts < to; ts += step) {
    double h = static_cast<double>(ts - from) / hour;
    t.add(ts, start + rate * h + noise(rng), 12);
  }
}

const rul_settings settings{};

} // namespace

TEST(DegradationTrend, RecoversSlopeAndLevelOfANoisyLine) {
  degradation_trend t;
  std::mt19937_64 rng(1);
  feed_line(t, monday, monday + 4 * hour, 2.0, 0.25, 0.3, rng);
  auto f = t.current();
  ASSERT_TRUE(f);
  EXPECT_NEAR(f->slope_per_h, 0.25, 0.05);
  EXPECT_NEAR(f->level, 2.0 + 0.25 * 4, 0.2);
  EXPECT_NEAR(f->sigma, 0.3, 0.05);
  EXPECT_GT(f->slope_se, 0);
}

TEST(DegradationTrend, TimeToAlarmIsWithinTwentyPercentAfterAFewHours) {
  degradation_trend t;
  std::mt19937_64 rng(2);
  // 3.0 mm/s rising 0.1 mm/s per hour: the alarm at 7.1 is 41 hours from the start.
  feed_line(t, monday, monday + 4 * hour, 3.0, 0.1, 0.3, rng);
  auto f = t.current();
  ASSERT_TRUE(f);
  auto e = time_to_threshold(*f, 7.1, true, settings);
  ASSERT_TRUE(e);
  double truth = 41.0 - 4.0;
  EXPECT_NEAR(e->hours, truth, 0.2 * truth);
  EXPECT_GE(e->confidence, 0.8);
  EXPECT_LE(e->confidence, 1.0);
}

TEST(DegradationTrend, FlatNoisySeriesHasNoFailureInSight) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    degradation_trend t;
    feed_line(t, monday, monday + 6 * hour, 2.0, 0.0, 0.3, rng);
    auto f = t.current();
    ASSERT_TRUE(f);
    EXPECT_FALSE(time_to_threshold(*f, 7.1, true, settings)) << "trial " << trial;
  }
}

TEST(DegradationTrend, ShortHistoryGivesNoEstimate) {
  degradation_trend t;
  std::mt19937_64 rng(4);
  feed_line(t, monday, monday + 30 * minute, 3.0, 1.0, 0.05, rng);
  auto f = t.current();
  ASSERT_TRUE(f);
  EXPECT_FALSE(time_to_threshold(*f, 7.1, true, settings)); // under min_history_h
}

TEST(DegradationTrend, GapInTheDataKeepsTheEstimate) {
  degradation_trend t;
  std::mt19937_64 rng(5);
  feed_line(t, monday, monday + 3 * hour, 3.0, 0.1, 0.3, rng);
  // Three silent hours, then the same line goes on.
  feed_line(t, monday + 6 * hour, monday + 8 * hour, 3.0 + 0.6, 0.1, 0.3, rng);
  auto f = t.current();
  ASSERT_TRUE(f);
  EXPECT_NEAR(f->slope_per_h, 0.1, 0.03);
  auto e = time_to_threshold(*f, 7.1, true, settings);
  ASSERT_TRUE(e);
  double truth = 41.0 - 8.0;
  EXPECT_NEAR(e->hours, truth, 0.2 * truth);
  EXPECT_EQ(t.resets(), 0u);
}

TEST(DegradationTrend, RepairThatBringsTheValueDownRestartsTheFit) {
  degradation_trend t;
  std::mt19937_64 rng(6);
  feed_line(t, monday, monday + 6 * hour, 3.0, 0.5, 0.2, rng);
  // Maintenance: back to 1.5 mm/s and flat.
  feed_line(t, monday + 6 * hour, monday + 9 * hour, 1.5, 0.0, 0.2, rng);
  EXPECT_EQ(t.resets(), 1u);
  auto f = t.current();
  ASSERT_TRUE(f);
  EXPECT_NEAR(f->level, 1.5, 0.2);
  EXPECT_NEAR(f->slope_per_h, 0.0, 0.1);
  EXPECT_FALSE(time_to_threshold(*f, 7.1, true, settings));
}

TEST(DegradationTrend, SingleOutlierIsDroppedNotARegime) {
  degradation_trend t;
  std::mt19937_64 rng(7);
  feed_line(t, monday, monday + 3 * hour, 3.0, 0.1, 0.1, rng);
  t.add(monday + 3 * hour, 40.0, 12); // a glitch
  feed_line(t, monday + 3 * hour + minute, monday + 4 * hour, 3.3, 0.1, 0.1, rng);
  EXPECT_EQ(t.resets(), 0u);
  auto f = t.current();
  ASSERT_TRUE(f);
  EXPECT_NEAR(f->slope_per_h, 0.1, 0.03);
}

TEST(DegradationTrend, OlderSamplesAreIgnored) {
  degradation_trend t;
  std::mt19937_64 rng(8);
  feed_line(t, monday, monday + 2 * hour, 3.0, 0.1, 0.1, rng);
  auto before = t.save();
  t.add(monday + hour, 50.0, 12);
  EXPECT_TRUE(t.save() == before);
}

TEST(DegradationTrend, SavedSumsRestoreTheSameTrend) {
  degradation_trend t;
  std::mt19937_64 rng(9);
  feed_line(t, monday, monday + 2 * hour, 3.0, 0.1, 0.1, rng);
  auto copy = degradation_trend::restore(t.save());
  EXPECT_TRUE(copy == t);
  t.add(monday + 3 * hour, 3.3, 12);
  copy.add(monday + 3 * hour, 3.3, 12);
  EXPECT_EQ(copy.current()->slope_per_h, t.current()->slope_per_h);
}

TEST(TimeToThreshold, FallingValueCrossesABelowThreshold) {
  degradation_trend::fit f;
  f.level = 50, f.slope_per_h = -2, f.slope_se = 0.1, f.span_h = 5;
  auto e = time_to_threshold(f, 10, false, settings);
  ASSERT_TRUE(e);
  EXPECT_DOUBLE_EQ(e->hours, 20);
  EXPECT_DOUBLE_EQ(e->confidence, 0.95);
  EXPECT_FALSE(time_to_threshold(f, 60, true, settings)); // heading away
}

TEST(TimeToThreshold, AlreadyPastIsZeroHours) {
  degradation_trend::fit f;
  f.level = 8, f.slope_per_h = 0.5, f.slope_se = 0.01, f.span_h = 5;
  EXPECT_DOUBLE_EQ(time_to_threshold(f, 7.1, true, settings)->hours, 0);
}

TEST(SeasonalBaseline, HourOfWeekBucketAnswersFromTheWeekBefore) {
  seasonal_baseline b;
  auto p = baseline_period::hour_of_week;
  // Monday 10:00 of one week runs at 100, the rest of the week at 50.
  for (int64_t h = 0; h < 168; ++h)
    b.learn(monday + h * hour + 30 * minute, h == 10 ? 100 : 50, p);
  EXPECT_DOUBLE_EQ(*b.expected(monday + 7 * 24 * hour + 10 * hour + minute, p), 100);
  EXPECT_DOUBLE_EQ(*b.expected(monday + 7 * 24 * hour + 11 * hour, p), 50);
}

TEST(SeasonalBaseline, BucketOfThisWeekFallsBackToTheOverallMean) {
  seasonal_baseline b;
  auto p = baseline_period::hour_of_week;
  EXPECT_FALSE(b.expected(monday, p));
  for (int i = 0; i < 8; ++i)
    b.learn(monday + i * 15 * minute, 40, p);
  // The bucket of Monday 01:00 has data only from this week: the overall mean answers.
  b.learn(monday + hour + minute, 10, p);
  EXPECT_NEAR(*b.expected(monday + hour + 2 * minute, p), (8 * 40 + 10) / 9.0, 1e-9);
}

TEST(SeasonalBaseline, HourOfDayIsMondayIndependent) {
  seasonal_baseline b;
  auto p = baseline_period::hour_of_day;
  for (int i = 0; i < 4; ++i)
    b.learn(monday + 9 * hour + i * minute, 70, p);
  for (int i = 0; i < 4; ++i)
    b.learn(monday + 10 * hour + i * minute, 30, p);
  EXPECT_DOUBLE_EQ(*b.expected(monday + 24 * hour + 9 * hour, p), 70);
  EXPECT_DOUBLE_EQ(*b.expected(monday + 24 * hour + 10 * hour, p), 30);
}

namespace {

// A line making `rate` parts an hour, drawing `kw` busy and `idle_kw` while
// idle for `idle_share` of the time, observed every minute.
struct line_sim {
  production_totals totals{monday, 0, 0, 0};
  void run(production_tracker& t, int64_t minutes, double rate, double busy_kwh_per_part,
           double idle_kw, std::vector<production_report>* out = nullptr) {
    if (t.window_start_ms == 0) // opens the first window: they close on quarter hours
      t.observe({{"m", totals}}, 15 * minute, baseline_period::hour_of_week);
    for (int64_t i = 0; i < minutes; ++i) {
      totals.ts_ms += minute;
      totals.parts += rate / 60;
      double idle = idle_kw / 60;
      totals.energy_kwh += rate / 60 * busy_kwh_per_part + idle;
      totals.idle_energy_kwh += idle;
      if (auto r = t.observe({{"m", totals}}, 15 * minute, baseline_period::hour_of_week); r && out)
        out->push_back(*r);
    }
  }
};

} // namespace

TEST(ProductionTracker, SlowerLineDeviatesBelowItsBaseline) {
  production_tracker t;
  line_sim sim;
  sim.run(t, 8 * 60, 120, 0.5, 5);
  ASSERT_TRUE(t.last);
  EXPECT_NEAR(t.last->throughput_per_h, 120, 1e-6);
  EXPECT_NEAR(*t.last->throughput_deviation_pct, 0, 1e-6);
  std::vector<production_report> slow;
  sim.run(t, 60, 72, 0.5, 5, &slow);
  ASSERT_EQ(slow.size(), 4u);
  EXPECT_NEAR(slow.front().throughput_per_h, 72, 1e-6);
  EXPECT_NEAR(*slow.front().throughput_baseline_per_h, 120, 1e-6);
  EXPECT_NEAR(*slow.front().throughput_deviation_pct, -40, 1e-6);
  EXPECT_LT(*slow.back().throughput_deviation_pct, -30);
  EXPECT_NEAR(*slow.back().energy_waste_pct, 0, 1e-6); // slower, not wasteful
}

TEST(ProductionTracker, IdleEnergyAboveBaselineIsWaste) {
  production_tracker t;
  line_sim sim;
  sim.run(t, 8 * 60, 120, 0.5, 5);
  ASSERT_TRUE(t.last);
  EXPECT_NEAR(*t.last->energy_waste_pct, 0, 1e-6);
  EXPECT_NEAR(*t.last->energy_per_unit_kwh, 0.5 + 5.0 / 120, 1e-9);
  std::vector<production_report> waste;
  sim.run(t, 30, 120, 0.5, 30, &waste);
  ASSERT_EQ(waste.size(), 2u);
  // Expected 60 + 5 kWh an hour, drew 60 + 30.
  EXPECT_NEAR(*waste.front().energy_waste_pct, 25.0 / 65 * 100, 1e-6);
  EXPECT_NEAR(waste.front().idle_energy_kwh_per_h, 30, 1e-6);
  EXPECT_NEAR(*waste.front().idle_energy_baseline_kwh_per_h, 5, 1e-6);
}

TEST(ProductionTracker, ContributorReportingLateDoesNotDistortTheSum) {
  // Two machines, 60 parts an hour each; the second one's data arrives in
  // bursts, up to 20 minutes late.
  production_tracker t;
  std::map<std::string, production_totals> now{{"a", {monday, 0, 0, 0}},
                                               {"b", {monday, 0, 0, 0}}};
  t.observe(now, 15 * minute, baseline_period::hour_of_week);
  std::vector<production_report> reports;
  for (int i = 1; i <= 8 * 60; ++i) {
    now["a"] = {monday + i * minute, 1.0 * i, 0.5 * i, 0};
    if (i % 20 == 0)
      now["b"] = {monday + i * minute, 1.0 * i, 0.5 * i, 0};
    if (auto r = t.observe(now, 15 * minute, baseline_period::hour_of_week))
      reports.push_back(*r);
  }
  ASSERT_GT(reports.size(), 20u);
  for (size_t i = 2; i < reports.size(); ++i)
    EXPECT_NEAR(reports[i].throughput_per_h, 120, 1e-6) << i;
}

TEST(ProductionTracker, TotalsGoingDownRestartTheWindowWithoutAReport) {
  production_tracker t;
  line_sim sim;
  sim.run(t, 60, 120, 0.5, 5);
  auto reports = t.throughput.overall.count;
  sim.totals.parts = 0; // counter reset
  EXPECT_FALSE(t.observe({{"m", sim.totals}}, 15 * minute, baseline_period::hour_of_week));
  EXPECT_EQ(t.contributors["m"].anchor.parts, 0);
  sim.run(t, 15, 120, 0.5, 5);
  EXPECT_EQ(t.throughput.overall.count, reports + 1);
  EXPECT_NEAR(t.last->throughput_per_h, 120, 1e-6);
}

TEST(ProductionTracker, GapInDataTimeIsOneLongWindowAtTheRightRate) {
  production_tracker t;
  line_sim sim;
  sim.run(t, 60, 120, 0.5, 5);
  sim.totals.ts_ms += 3 * hour; // nothing reported, nothing made
  auto r = t.observe({{"m", sim.totals}}, 15 * minute, baseline_period::hour_of_week);
  ASSERT_TRUE(r);
  EXPECT_NEAR(r->throughput_per_h, 0, 1e-9);
}

TEST(LowStock, SkusUnderTheirMinimumAreListedWithTheirUnits) {
  std::map<std::string, int64_t> stock{{"SKU-1", 3}, {"SKU-2", 40}};
  std::map<std::string, int64_t> rules{{"SKU-1", 10}, {"SKU-2", 10}, {"SKU-3", 5}};
  auto low = find_low_stock(stock, rules);
  ASSERT_EQ(low.size(), 2u);
  EXPECT_EQ(low[0].sku, "SKU-1");
  EXPECT_EQ(low[0].units, 3);
  EXPECT_EQ(low[0].minimum, 10);
  EXPECT_EQ(low[1].sku, "SKU-3"); // not held at all
  EXPECT_EQ(low[1].units, 0);
}

namespace {

model parse_or_fail(const std::string& text) {
  auto r = parse_model(text, "test.toml");
  if (auto e = std::get_if<model_error>(&r)) {
    ADD_FAILURE() << e->to_string();
    return {};
  }
  return std::get<model>(r);
}

constexpr const char* machine_model = R"(kind = "machine"
version = 1
[channels.vibration_mm_s]
type = "gauge"
min = 0.0
max = 100.0
[channels.power_kw]
type = "gauge"
min = 0.0
max = 100.0
[channels.state]
type = "state"
min = 0
max = 3
[channels.parts_total]
type = "counter"
min = 0
max = 1e12
[[health]]
channel = "vibration_mm_s"
warning_above = 4.5
alarm_above = 7.1
[energy]
power_channel = "power_kw"
[analytics]
degradation_channels = ["vibration_mm_s"]
parts_channel = "parts_total"
idle_channel = "state"
idle_equals = 2
)";

} // namespace

TEST(Analytics, MachineReportsRemainingUsefulLifeAsADerivedValue) {
  auto m = parse_or_fail(machine_model);
  twin_state st;
  std::vector<sample> batch;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0, 0.15);
  for (int i = 0; i < 6 * 60; ++i)
    batch.push_back({"m", "vibration_mm_s", monday + i * minute,
                     3.0 + 0.1 * i / 60.0 + noise(rng), "", 0});
  std::vector<uint32_t> idx(batch.size()), applied;
  for (uint32_t i = 0; i < idx.size(); ++i)
    idx[i] = i;
  auto now = monday + 6 * hour;
  EXPECT_TRUE(apply_samples(st, m, "m", batch, idx, now, {}, applied).empty());
  ASSERT_EQ(st.analytics.derived.count("rul_hours"), 1u);
  EXPECT_NEAR(st.analytics.derived["rul_hours"], 35, 0.2 * 35); // 3.6 now, 7.1 at 0.1 an hour
  EXPECT_GE(st.analytics.derived["rul_confidence"], 0.8);
  EXPECT_NEAR(st.analytics.derived["vibration_mm_s_slope_per_h"], 0.1, 0.03);
}

TEST(Analytics, MachineHandsUpPartsAcrossACounterResetAndIdleEnergy) {
  auto m = parse_or_fail(machine_model);
  twin_state st;
  std::vector<sample> batch{
    {"m", "state", monday, 1, "", 0},          {"m", "power_kw", monday, 30, "", 0},
    {"m", "parts_total", monday, 100, "", 0},  {"m", "parts_total", monday + minute, 130, "", 0},
    {"m", "power_kw", monday + minute, 6, "", 0}, {"m", "state", monday + minute, 2, "", 0},
    {"m", "parts_total", monday + 2 * minute, 5, "", 0}, // reset: 5 more
    {"m", "power_kw", monday + 3 * minute, 6, "", 0},
  };
  std::vector<uint32_t> idx{0, 1, 2, 3, 4, 5, 6, 7}, applied;
  apply_samples(st, m, "m", batch, idx, monday + 3 * minute, {}, applied);
  EXPECT_DOUBLE_EQ(st.own.sums["parts"], 35);
  // 30 kW running for a minute, then 6 kW idle for two minutes.
  EXPECT_NEAR(st.own.sums["idle_energy_kwh"], 6.0 * 2 / 60, 1e-9);
  EXPECT_NEAR(st.own.sums["energy_kwh"], 30.0 / 60 + 6.0 * 2 / 60, 1e-9);
  EXPECT_EQ(st.own.latest_ts_ms, monday + 3 * minute);
}

TEST(Analytics, ModelRefusesADegradationChannelWithoutAnAlarm) {
  std::string text = machine_model;
  text.replace(text.find("alarm_above = 7.1"), 17, "");
  auto r = parse_model(text, "m.toml");
  ASSERT_TRUE(std::holds_alternative<model_error>(r));
  EXPECT_NE(std::get<model_error>(r).reason.find("needs a [[health]] rule"), std::string::npos);
}

TEST(Analytics, ModelRefusesAnUnknownBaseline) {
  auto r = parse_model("kind = \"line\"\nversion = 1\n[analytics]\nbaseline = \"hourly\"\n", "l.toml");
  ASSERT_TRUE(std::holds_alternative<model_error>(r));
  EXPECT_EQ(std::get<model_error>(r).line, 4);
}

TEST(Analytics, ModelRefusesLowStockOnAKindWithoutStock) {
  auto r = parse_model("kind = \"line\"\nversion = 1\n[low_stock]\nSKU-1 = 3\n", "l.toml");
  ASSERT_TRUE(std::holds_alternative<model_error>(r));
}

TEST(Analytics, WarehouseBelowAMinimumIsInWarningNamingTheSku) {
  auto m = parse_or_fail(R"(kind = "warehouse"
version = 1
[channels.receipt]
type = "movement"
effect = "in"
min = 0
max = 1000
[channels.pick]
type = "movement"
effect = "out"
min = 0
max = 1000
[low_stock]
SKU-7 = 10
)");
  twin_state st;
  std::vector<sample> batch{{"w", "receipt/SKU-7", monday, 12, "", 0},
                            {"w", "pick/SKU-7", monday + 1, 9, "", 0}};
  std::vector<uint32_t> idx{0}, applied;
  apply_samples(st, m, "w", batch, idx, monday, {}, applied);
  EXPECT_EQ(st.status, health_status::ok);
  EXPECT_EQ(st.analytics.derived["low_stock_skus"], 0);
  idx = {1};
  apply_samples(st, m, "w", batch, idx, monday + 1, {}, applied);
  EXPECT_EQ(st.status, health_status::warning);
  EXPECT_EQ(st.analytics.derived["low_stock_skus"], 1);
  ASSERT_EQ(st.analytics.warnings.size(), 1u);
  EXPECT_EQ(st.analytics.warnings[0], "low stock: SKU-7 has 3 units, minimum 10");
}

TEST(Analytics, LineRefoldKeepsThroughputBaselineFromItsChildren) {
  auto m = parse_or_fail(R"(kind = "line"
version = 1
[analytics]
baseline = "hour_of_week"
window_s = 900
energy_waste_warning_pct = 20
)");
  twin_state st;
  std::map<std::string, contribution> children;
  auto& child = children["line/m1"];
  for (int i = 0; i <= 8 * 60; ++i) {
    child.latest_ts_ms = monday + i * minute;
    child.sums["parts"] = 2.0 * i;
    child.sums["energy_kwh"] = 0.5 * i;
    child.sums["idle_energy_kwh"] = 0.05 * i;
    refold(st, m, "line", children, monday + i * minute);
  }
  EXPECT_NEAR(st.analytics.derived["throughput_per_h"], 120, 1e-6);
  EXPECT_NEAR(st.analytics.derived["throughput_deviation_pct"], 0, 1e-6);
  EXPECT_EQ(st.status, health_status::ok);
  // Idle draw goes up tenfold.
  for (int i = 8 * 60 + 1; i <= 8 * 60 + 30; ++i) {
    child.latest_ts_ms = monday + i * minute;
    child.sums["parts"] = 2.0 * i;
    child.sums["energy_kwh"] += 0.5 - 0.05 + 0.5;
    child.sums["idle_energy_kwh"] += 0.5;
    refold(st, m, "line", children, monday + i * minute);
  }
  EXPECT_GT(st.analytics.derived["energy_waste_pct"], 20);
  EXPECT_EQ(st.status, health_status::warning);
  ASSERT_EQ(st.analytics.warnings.size(), 1u);
  EXPECT_EQ(st.analytics.warnings[0].rfind("energy waste", 0), 0u);
}

} // namespace twinrt::twins
