#include "twinrt/twins/twin_state.hpp"

#include <cmath>
#include <limits>
#include <numeric>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace twinrt::twins {

// Readable failure messages; the same definition is in rollup.test.cpp.
inline void PrintTo(health_status s, std::ostream* os) { *os << to_string(s); }

void PrintTo(reject_reason r, std::ostream* os) { *os << to_string(r); }

void PrintTo(const channel_value& v, std::ostream* os) {
  *os << "{value " << v.value << ", ts_ms " << v.ts_ms << "}";
}

namespace {

constexpr std::string_view machine_toml = R"(kind = "machine"
version = 4
stale_after_s = 30

[channels.vibration_mm_s]
unit = "mm/s"
type = "gauge"
min = 0.0
max = 100.0

[channels.temperature_c]
unit = "degC"
type = "gauge"
min = -40.0
max = 400.0

[channels.power_kw]
unit = "kW"
type = "gauge"
min = 0.0
max = 5000.0

[channels.state]
unit = "state"
type = "state"
min = 0
max = 3

[[health]]
channel = "vibration_mm_s"
warning_above = 4.5
alarm_above = 7.1

[[health]]
channel = "temperature_c"
warning_above = 85.0
alarm_above = 110.0

[[health]]
channel = "state"
alarm_equals = 3

[energy]
power_channel = "power_kw"

[[counts]]
name = "running"
channel = "state"
equals = 1
)";

constexpr std::string_view vehicle_toml = R"(kind = "vehicle"
version = 1
stale_after_s = 60

[channels.battery_pct]
unit = "%"
type = "gauge"
min = 0.0
max = 100.0

[[health]]
channel = "battery_pct"
warning_below = 20.0
alarm_below = 5.0
)";

constexpr std::string_view warehouse_toml = R"(kind = "warehouse"
version = 1
stale_after_s = 0

[channels.receipt]
unit = "units"
type = "movement"
effect = "in"
min = 0
max = 1000000

[channels.pick]
unit = "units"
type = "movement"
effect = "out"
min = 0
max = 1000000

[channels.adjust]
unit = "units"
type = "movement"
effect = "adjust"
min = -1000000
max = 1000000

[channels.power_kw]
unit = "kW"
type = "gauge"
min = 0.0
max = 10000.0

[energy]
power_channel = "power_kw"
)";

constexpr std::string_view meter_toml = R"(kind = "meter"
version = 1

[channels.energy_total_kwh]
unit = "kWh"
type = "counter"
min = 0
max = 1e12

[energy]
energy_channel = "energy_total_kwh"
)";

constexpr std::string_view line_toml = R"(kind = "line"
version = 1
)";

model must_parse(std::string_view text) {
  auto r = parse_model(text, "test.toml");
  if (auto e = std::get_if<model_error>(&r)) {
    ADD_FAILURE() << e->to_string();
    return {};
  }
  return std::get<model>(std::move(r));
}

constexpr int64_t second = 1000;
constexpr int64_t minute = 60 * second;
constexpr int64_t hour = 60 * minute;
constexpr int64_t day = 86'400'000;
constexpr int64_t day_one = 20'000 * day;       // some UTC midnight
constexpr int64_t noon = day_one + day / 2;
constexpr std::string_view twin = "acme/plant-1/line-2/press-7";

sample at(std::string channel, double value, int64_t ts_ms) {
  sample s;
  s.twin = std::string(twin);
  s.channel = std::move(channel);
  s.value = value;
  s.ts_ms = ts_ms;
  return s;
}

sample from(std::string source, uint64_t seq, sample s) {
  s.source = std::move(source);
  s.seq = seq;
  return s;
}

class TwinState : public ::testing::Test {
protected:
  model machine = must_parse(machine_toml);
  model vehicle = must_parse(vehicle_toml);
  model warehouse = must_parse(warehouse_toml);
  model meter = must_parse(meter_toml);
  model line = must_parse(line_toml);
  twin_state st;
  sample_limits limits;
  std::vector<uint32_t> applied;

  // Applies the whole batch at wall clock `now`.
  std::vector<rejection> apply(const model& m, const std::vector<sample>& batch,
                               int64_t now) {
    std::vector<uint32_t> indices(batch.size());
    std::iota(indices.begin(), indices.end(), 0u);
    return apply_samples(st, m, twin, batch, indices, now, limits, applied);
  }

  // Applies the batch, every sample of which must be accepted; `now` is the
  // newest sample time.
  void accept(const model& m, const std::vector<sample>& batch) {
    int64_t now = 0;
    for (auto& s : batch)
      now = std::max(now, s.ts_ms);
    for (auto& r : apply(m, batch, now))
      ADD_FAILURE() << "refused: " << r.message;
  }

  // Feeds one power reading per entry, each at its own time.
  void power(const model& m, std::vector<std::pair<int64_t, double>> readings) {
    for (auto [ts, kw] : readings)
      accept(m, {at("power_kw", kw, ts)});
  }
};

// ---------------------------------------------------------------------------
// Refusals

struct refusal_case {
  const char* name;
  bool warehouse; // else machine
  sample bad;
  reject_reason reason;
  const char* says;
};

void PrintTo(const refusal_case& c, std::ostream* os) { *os << c.name; }

class TwinStateRefusal : public TwinState,
                         public ::testing::WithParamInterface<refusal_case> {
protected:
  // A twin with history: values, energy, stock and sequence numbers applied.
  void SetUp() override {
    if (GetParam().warehouse) {
      accept(warehouse, {from("wms", 7, at("receipt/SKU-1", 10, noon - 2 * second)),
                         at("power_kw", 40, noon - 2 * minute),
                         at("power_kw", 40, noon - minute)});
    } else {
      accept(machine, {from("plc-1", 7, at("temperature_c", 70, noon - 2 * second)),
                       at("power_kw", 60, noon - 2 * minute),
                       at("power_kw", 60, noon - minute),
                       at("state", 1, noon - minute)});
    }
    ASSERT_GT(st.energy_kwh, 0);
    applied.clear();
  }
};

TEST_P(TwinStateRefusal, IsRefusedNamingTheSampleAndChangesNothing) {
  auto& c = GetParam();
  const model& m = c.warehouse ? warehouse : machine;
  // Samples 0 and 1 belong to other twins; only sample 2 is this twin's.
  std::vector<sample> batch{at("power_kw", 1, noon), at("power_kw", 2, noon), c.bad};
  const twin_state before = st;

  auto refused = apply_samples(st, m, twin, batch, {2}, noon, limits, applied);

  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].index, 2u);
  EXPECT_EQ(refused[0].reason, c.reason);
  auto prefix = "sample 2 for " + std::string(twin) + "." + c.bad.channel + ": ";
  EXPECT_EQ(refused[0].message.rfind(prefix, 0), 0u) << refused[0].message;
  EXPECT_NE(refused[0].message.find(c.says), std::string::npos) << refused[0].message;
  EXPECT_TRUE(applied.empty());
  EXPECT_TRUE(st == before) << "a refused sample changed the twin state";
}

const double nan = std::numeric_limits<double>::quiet_NaN();
const double inf = std::numeric_limits<double>::infinity();

INSTANTIATE_TEST_SUITE_P(
  EachReason, TwinStateRefusal,
  ::testing::Values(
    refusal_case{"UnknownChannel", false, at("pressure_bar", 1, noon),
                 reject_reason::unknown_channel,
                 "unknown channel for kind machine (model version 4)"},
    refusal_case{"PlainChannelWithSku", false, at("temperature_c/SKU-1", 1, noon),
                 reject_reason::unknown_channel, "unknown channel"},
    refusal_case{"MovementWithoutSku", true, at("receipt", 1, noon),
                 reject_reason::unknown_channel, "unknown channel for kind warehouse"},
    refusal_case{"NaN", false, at("temperature_c", nan, noon), reject_reason::not_finite,
                 "value NaN is not a finite number"},
    refusal_case{"Inf", false, at("temperature_c", inf, noon), reject_reason::not_finite,
                 "value Inf is not a finite number"},
    refusal_case{"MinusInf", false, at("temperature_c", -inf, noon),
                 reject_reason::not_finite, "value -Inf is not a finite number"},
    refusal_case{"AboveMax", false, at("temperature_c", 400.5, noon),
                 reject_reason::out_of_range, "value 400.5 is outside [-40, 400] degC"},
    refusal_case{"BelowMin", false, at("temperature_c", -40.5, noon),
                 reject_reason::out_of_range, "value -40.5 is outside [-40, 400] degC"},
    refusal_case{"FractionalMovement", true, at("receipt/SKU-1", 2.5, noon),
                 reject_reason::not_whole_units, "value 2.5 is not a whole number"},
    refusal_case{"FractionalState", false, at("state", 1.5, noon),
                 reject_reason::not_whole_units, "value 1.5 is not a whole number"},
    refusal_case{"FutureBeyondSkew", false, at("temperature_c", 70, noon + 5001),
                 reject_reason::future_timestamp,
                 "is 5001 ms in the future (allowed: 5000 ms)"},
    refusal_case{"SameSequenceAgain", false,
                 from("plc-1", 7, at("temperature_c", 71, noon)),
                 reject_reason::duplicate_sequence,
                 "sequence 7 from source plc-1 was already applied (last 7)"},
    refusal_case{"LowerSequence", false, from("plc-1", 6, at("temperature_c", 71, noon)),
                 reject_reason::duplicate_sequence, "sequence 6 from source plc-1"},
    refusal_case{"RedeliveredReceipt", true, from("wms", 7, at("receipt/SKU-1", 10, noon)),
                 reject_reason::duplicate_sequence, "sequence 7 from source wms"}),
  [](const ::testing::TestParamInfo<refusal_case>& info) { return info.param.name; });

TEST_F(TwinState, BadSampleInABatchDoesNotStopTheOthers) {
  std::vector<sample> batch{at("temperature_c", 70, noon), at("temperature_c", nan, noon),
                            at("vibration_mm_s", 1, noon)};
  auto refused = apply(machine, batch, noon);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].index, 1u);
  EXPECT_EQ(applied, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(st.channels.at("temperature_c").value, 70);
  EXPECT_EQ(st.channels.at("vibration_mm_s").value, 1);
}

TEST_F(TwinState, OnlyTheGivenIndicesAreApplied) {
  std::vector<sample> batch{at("temperature_c", 70, noon), at("vibration_mm_s", 1, noon)};
  auto refused = apply_samples(st, machine, twin, batch, {1}, noon, limits, applied);
  EXPECT_TRUE(refused.empty());
  EXPECT_EQ(applied, std::vector<uint32_t>{1});
  EXPECT_EQ(st.channels.count("temperature_c"), 0u);
  EXPECT_EQ(st.channels.count("vibration_mm_s"), 1u);
}

TEST_F(TwinState, ValuesOnTheRangeBoundsAreAccepted) {
  EXPECT_TRUE(apply(machine, {at("temperature_c", -40, noon)}, noon).empty());
  EXPECT_TRUE(apply(machine, {at("temperature_c", 400, noon + 1)}, noon + 1).empty());
  EXPECT_EQ(st.channels.at("temperature_c").value, 400);
}

TEST_F(TwinState, TimestampWithinTheAllowedSkewIsAccepted) {
  EXPECT_TRUE(apply(machine, {at("temperature_c", 70, noon + 5000)}, noon).empty());
  EXPECT_EQ(st.channels.at("temperature_c").ts_ms, noon + 5000);
}

TEST_F(TwinState, FutureSkewComesFromTheLimits) {
  limits.future_skew_ms = 60'000;
  EXPECT_TRUE(apply(machine, {at("temperature_c", 70, noon + 60'000)}, noon).empty());
  EXPECT_EQ(apply(machine, {at("temperature_c", 70, noon + 60'001)}, noon).size(), 1u);
}

// ---------------------------------------------------------------------------
// Latest values

TEST_F(TwinState, AcceptedSampleBecomesTheLatestValue) {
  accept(machine, {at("temperature_c", 70.25, noon)});
  EXPECT_EQ(st.channels.at("temperature_c"), (channel_value{70.25, noon}));
  EXPECT_EQ(st.last_data_ms, noon);
  EXPECT_EQ(st.model_version, 4u);
}

TEST_F(TwinState, NewerSampleReplacesTheLatestValue) {
  accept(machine, {at("temperature_c", 70, noon)});
  accept(machine, {at("temperature_c", 72, noon + second)});
  EXPECT_EQ(st.channels.at("temperature_c"), (channel_value{72, noon + second}));
}

TEST_F(TwinState, OutOfOrderSampleIsAcceptedButDoesNotMoveTheLatestValue) {
  accept(machine, {at("temperature_c", 70, noon)});
  applied.clear();
  auto refused = apply(machine, {at("temperature_c", 99, noon - second)}, noon);
  EXPECT_TRUE(refused.empty());
  EXPECT_EQ(applied, std::vector<uint32_t>{0});
  EXPECT_EQ(st.channels.at("temperature_c"), (channel_value{70, noon}));
  EXPECT_EQ(st.status, health_status::ok); // 99 would have warned
}

TEST_F(TwinState, FirstSampleIsTheLatestValueHoweverOldItsTimestamp) {
  // Regression: the first sample of a channel stamped long ago left an
  // invented value 0 behind, which the battery rule read as an alarm.
  accept(vehicle, {at("battery_pct", 80, 5000)});
  EXPECT_EQ(st.channels.at("battery_pct"), (channel_value{80, 5000}));
  EXPECT_EQ(st.status, health_status::ok);
}

TEST_F(TwinState, TimestampsNotAfterTheEpochAreRefusedAndChangeNothing) {
  accept(machine, {at("temperature_c", 70, noon)});
  auto before = st;
  for (int64_t ts : {int64_t{0}, int64_t{-5000}, std::numeric_limits<int64_t>::min()}) {
    auto refused = apply(machine, {at("temperature_c", 75, ts)}, noon);
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0].reason, reject_reason::bad_timestamp);
    EXPECT_NE(refused[0].message.find("is not after 1970-01-01"), std::string::npos);
  }
  EXPECT_TRUE(st == before);
}

TEST_F(TwinState, EachBatchThatChangesTheTwinBumpsTheVersionOnce) {
  accept(machine, {at("temperature_c", 70, noon), at("vibration_mm_s", 1, noon),
                   at("state", 1, noon)});
  EXPECT_EQ(st.version, 1u);
  accept(machine, {at("temperature_c", 71, noon + 1)});
  EXPECT_EQ(st.version, 2u);
  apply(machine, {at("temperature_c", nan, noon + 2)}, noon + 2);
  EXPECT_EQ(st.version, 2u);
}

// ---------------------------------------------------------------------------
// Sequence numbers

TEST_F(TwinState, RedeliveredReceiptIsCountedOnce) {
  auto receipt = from("wms", 1, at("receipt/SKU-1", 10, noon));
  accept(warehouse, {receipt});
  auto refused = apply(warehouse, {receipt}, noon);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].reason, reject_reason::duplicate_sequence);
  EXPECT_EQ(st.stock.at("SKU-1"), 10);
}

TEST_F(TwinState, RedeliveryInsideOneBatchIsAppliedOnce) {
  auto receipt = from("wms", 1, at("receipt/SKU-1", 10, noon));
  auto refused = apply(warehouse, {receipt, receipt}, noon);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].index, 1u);
  EXPECT_EQ(st.stock.at("SKU-1"), 10);
}

TEST_F(TwinState, SequenceIsKeptPerSourceAndChannel) {
  accept(warehouse, {from("wms", 5, at("receipt/SKU-1", 1, noon))});
  accept(warehouse, {from("scanner", 5, at("receipt/SKU-1", 1, noon)),
                     from("wms", 5, at("receipt/SKU-2", 1, noon)),
                     from("wms", 6, at("receipt/SKU-1", 1, noon))});
  EXPECT_EQ(st.stock.at("SKU-1"), 3);
  EXPECT_EQ(st.stock.at("SKU-2"), 1);
}

TEST_F(TwinState, SampleWithoutSourceOrSequenceIsNeverADuplicate) {
  accept(warehouse, {at("receipt/SKU-1", 1, noon), at("receipt/SKU-1", 1, noon),
                     from("wms", 0, at("receipt/SKU-1", 1, noon)),
                     from("wms", 0, at("receipt/SKU-1", 1, noon)),
                     from("", 3, at("receipt/SKU-1", 1, noon)),
                     from("", 3, at("receipt/SKU-1", 1, noon))});
  EXPECT_EQ(st.stock.at("SKU-1"), 6);
}

// ---------------------------------------------------------------------------
// Energy from power

TEST_F(TwinState, PowerIsIntegratedIntoEnergy) {
  power(machine, {{noon, 60}, {noon + minute, 60}});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 1.0);
  EXPECT_DOUBLE_EQ(st.energy_today_kwh, 1.0);
}

TEST_F(TwinState, FirstPowerSampleAddsNoEnergy) {
  power(machine, {{noon, 60}});
  EXPECT_EQ(st.energy_kwh, 0);
}

TEST_F(TwinState, EnergyUsesThePowerInForceOverEachInterval) {
  // 60 kW for a minute, then 0 kW for a minute: the 120 kW arrives at the end.
  power(machine, {{noon, 60}, {noon + minute, 0}, {noon + 2 * minute, 120}});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 1.0);
  power(machine, {{noon + 3 * minute, 120}});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 3.0);
}

TEST_F(TwinState, GapOfFiveMinutesIsStillIntegrated) {
  power(machine, {{noon, 12}, {noon + 5 * minute, 12}});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 1.0);
}

TEST_F(TwinState, GapLongerThanFiveMinutesIsNotIntegrated) {
  power(machine, {{noon, 60}, {noon + 5 * minute + 1, 60}});
  EXPECT_EQ(st.energy_kwh, 0);
  power(machine, {{noon + 6 * minute + 1, 60}}); // integration resumes
  EXPECT_DOUBLE_EQ(st.energy_kwh, 1.0);
}

TEST_F(TwinState, LatePowerSampleAddsNoEnergy) {
  power(machine, {{noon, 60}, {noon + minute, 60}});
  accept(machine, {at("power_kw", 600, noon + 30 * second)});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 1.0);
  power(machine, {{noon + 2 * minute, 60}}); // still integrates from the 60 kW
  EXPECT_DOUBLE_EQ(st.energy_kwh, 2.0);
}

TEST_F(TwinState, NewUtcDayStartsEnergyTodayAtZero) {
  auto midnight = day_one + day;
  power(machine, {{midnight - 2 * minute, 60}, {midnight - minute, 60}});
  EXPECT_DOUBLE_EQ(st.energy_today_kwh, 1.0);
  EXPECT_EQ(st.energy_day, utc_day(midnight - minute));

  power(machine, {{midnight + 10 * minute, 60}}); // after a gap: nothing to add
  EXPECT_EQ(st.energy_today_kwh, 0);
  EXPECT_EQ(st.energy_day, utc_day(midnight));
  EXPECT_DOUBLE_EQ(st.energy_kwh, 1.0); // the total keeps counting

  power(machine, {{midnight + 11 * minute, 60}});
  EXPECT_DOUBLE_EQ(st.energy_today_kwh, 1.0);
  EXPECT_DOUBLE_EQ(st.energy_kwh, 2.0);
}

TEST(UtcDay, CountsWholeDaysFromTheEpochFlooringBeforeIt) {
  EXPECT_EQ(utc_day(0), 0);
  EXPECT_EQ(utc_day(day - 1), 0);
  EXPECT_EQ(utc_day(day), 1);
  EXPECT_EQ(utc_day(-1), -1);
  EXPECT_EQ(utc_day(-day), -1);
  EXPECT_EQ(utc_day(-day - 1), -2);
}

// ---------------------------------------------------------------------------
// Energy from a counter

TEST_F(TwinState, FirstCounterReadingOnlySetsTheBaseline) {
  accept(meter, {at("energy_total_kwh", 5000, noon)});
  EXPECT_EQ(st.energy_kwh, 0);
  accept(meter, {at("energy_total_kwh", 5002.5, noon + second)});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 2.5);
  EXPECT_DOUBLE_EQ(st.energy_today_kwh, 2.5);
}

TEST_F(TwinState, CounterAtZeroIsABaselineToo) {
  accept(meter, {at("energy_total_kwh", 0, noon), at("energy_total_kwh", 2, noon + 1)});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 2.0);
}

TEST_F(TwinState, CounterThatDropsWasResetAndCountsFromZero) {
  accept(meter, {at("energy_total_kwh", 100, noon), at("energy_total_kwh", 110, noon + 1)});
  accept(meter, {at("energy_total_kwh", 1.5, noon + 2)}); // reset, then 1.5 used
  EXPECT_DOUBLE_EQ(st.energy_kwh, 11.5);
  accept(meter, {at("energy_total_kwh", 4, noon + 3)});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 14.0);
}

TEST_F(TwinState, LateCounterReadingIsNotTakenForAReset) {
  accept(meter, {at("energy_total_kwh", 10, noon), at("energy_total_kwh", 12, noon + 2)});
  accept(meter, {at("energy_total_kwh", 11, noon + 1)});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 2.0);
}

TEST_F(TwinState, CounterDeltaCountsEvenAfterALongGap) {
  accept(meter, {at("energy_total_kwh", 10, noon)});
  accept(meter, {at("energy_total_kwh", 30, noon + 3 * 60 * minute)});
  EXPECT_DOUBLE_EQ(st.energy_kwh, 20.0);
}

// ---------------------------------------------------------------------------
// Inventory

TEST_F(TwinState, ReceiptsPicksAndAdjustmentsKeepExactStockPerSku) {
  accept(warehouse, {at("receipt/SKU-1", 10, noon), at("pick/SKU-1", 3, noon),
                     at("adjust/SKU-1", -2, noon), at("receipt/SKU-2", 999'999, noon),
                     at("receipt/SKU-2", 999'999, noon), at("adjust/SKU-2", 1, noon),
                     at("pick/SKU-2", 1'000'000, noon)});
  EXPECT_EQ(st.stock, (std::map<std::string, int64_t>{{"SKU-1", 5}, {"SKU-2", 999'999}}));
}

TEST_F(TwinState, StockBackAtZeroIsDropped) {
  accept(warehouse, {at("receipt/SKU-1", 4, noon), at("pick/SKU-1", 4, noon)});
  EXPECT_EQ(st.stock.count("SKU-1"), 0u);
  EXPECT_EQ(st.own.sums.count("stock/SKU-1"), 0u);
}

TEST_F(TwinState, MovementIsCountedEvenWhenItArrivesLate) {
  accept(warehouse, {at("receipt/SKU-1", 4, noon)});
  accept(warehouse, {at("receipt/SKU-1", 3, noon - minute)});
  EXPECT_EQ(st.stock.at("SKU-1"), 7);
  EXPECT_EQ(st.channels.at("receipt/SKU-1"), (channel_value{4, noon}));
}

// ---------------------------------------------------------------------------
// Health

TEST_F(TwinState, TwinWithoutRuleBreachesIsOk) {
  accept(machine, {at("temperature_c", 85, noon), at("vibration_mm_s", 4.5, noon)});
  EXPECT_EQ(st.status, health_status::ok); // thresholds are exclusive
  EXPECT_EQ(st.score, 100);
}

TEST_F(TwinState, ValueAboveWarningWarns) {
  accept(machine, {at("temperature_c", 90, noon)});
  EXPECT_EQ(st.status, health_status::warning);
  EXPECT_EQ(st.score, 50);
}

TEST_F(TwinState, ValueAboveAlarmAlarms) {
  accept(machine, {at("temperature_c", 110.5, noon)});
  EXPECT_EQ(st.status, health_status::alarm);
  EXPECT_EQ(st.score, 0);
}

TEST_F(TwinState, ValueBelowThresholdsWarnsThenAlarms) {
  accept(vehicle, {at("battery_pct", 19, noon)});
  EXPECT_EQ(st.status, health_status::warning);
  accept(vehicle, {at("battery_pct", 4, noon + 1)});
  EXPECT_EQ(st.status, health_status::alarm);
  accept(vehicle, {at("battery_pct", 20, noon + 2)});
  EXPECT_EQ(st.status, health_status::ok);
}

TEST_F(TwinState, StateEqualToAlarmValueAlarms) {
  accept(machine, {at("state", 3, noon)});
  EXPECT_EQ(st.status, health_status::alarm);
  accept(machine, {at("state", 2, noon + 1)});
  EXPECT_EQ(st.status, health_status::ok);
}

TEST_F(TwinState, WorstRuleDecidesTheStatus) {
  accept(machine, {at("vibration_mm_s", 8, noon), at("temperature_c", 90, noon)});
  EXPECT_EQ(st.status, health_status::alarm);
  accept(machine, {at("vibration_mm_s", 5, noon + 1)});
  EXPECT_EQ(st.status, health_status::warning);
}

TEST_F(TwinState, TwinTurnsStaleAfterStaleAfterWithoutData) {
  accept(machine, {at("temperature_c", 120, noon)}); // alarm
  EXPECT_FALSE(evaluate_health(st, machine, noon + 30 * second));
  EXPECT_EQ(st.status, health_status::alarm);
  EXPECT_TRUE(evaluate_health(st, machine, noon + 30 * second + 1));
  EXPECT_EQ(st.status, health_status::stale);
  EXPECT_EQ(st.score, status_score(health_status::stale));
  EXPECT_FALSE(evaluate_health(st, machine, noon + minute)); // no change
}

TEST_F(TwinState, FreshDataEndsStale) {
  accept(machine, {at("temperature_c", 70, noon)});
  ASSERT_TRUE(evaluate_health(st, machine, noon + minute));
  ASSERT_EQ(st.status, health_status::stale);
  EXPECT_TRUE(apply(machine, {at("temperature_c", 71, noon + minute)}, noon + minute).empty());
  EXPECT_EQ(st.status, health_status::ok);
}

TEST_F(TwinState, OfflineTwinIsStaleUntilItIsBackOnline) {
  accept(machine, {at("temperature_c", 120, noon)}); // alarm
  EXPECT_TRUE(apply(machine, {at(std::string(offline_channel), 1, noon + 1)}, noon + 1).empty());
  EXPECT_TRUE(st.offline);
  EXPECT_EQ(st.status, health_status::stale);
  EXPECT_FALSE(evaluate_health(st, machine, noon + 2)); // stays stale
  EXPECT_EQ(st.channels.count(std::string(offline_channel)), 0u); // not a channel value
  EXPECT_TRUE(apply(machine, {at(std::string(offline_channel), 0, noon + minute)}, noon + minute).empty());
  EXPECT_FALSE(st.offline);
  EXPECT_EQ(st.status, health_status::alarm); // back, with its rules in force
}

TEST_F(TwinState, OfflineValueOtherThanZeroOrOneIsRefused) {
  auto refused = apply(machine, {at(std::string(offline_channel), 2, noon)}, noon);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].reason, reject_reason::out_of_range);
  EXPECT_NE(refused[0].message.find("$offline"), std::string::npos) << refused[0].message;
  EXPECT_FALSE(st.offline);
}

// Data age is the age of the newest sample time, not of its arrival: a
// replayed or backfilled reading says nothing of whether the device is alive.
TEST_F(TwinState, StalenessCountsFromTheNewestSampleTimeNotFromArrival) {
  // 20 s old on arrival: stale 10 s later (stale_after_s = 30).
  EXPECT_TRUE(apply(machine, {at("temperature_c", 70, noon - 20 * second)}, noon).empty());
  EXPECT_EQ(st.last_data_ms, noon - 20 * second);
  EXPECT_FALSE(evaluate_health(st, machine, noon + 10 * second));
  EXPECT_EQ(st.status, health_status::ok);
  EXPECT_TRUE(evaluate_health(st, machine, noon + 10 * second + 1));
  EXPECT_EQ(st.status, health_status::stale);
}

TEST_F(TwinState, SampleSeventyTwoHoursOldLeavesAStaleTwinStale) {
  accept(machine, {at("temperature_c", 70, noon - 2 * minute)});
  ASSERT_TRUE(evaluate_health(st, machine, noon));
  ASSERT_EQ(st.status, health_status::stale);
  applied.clear();
  EXPECT_TRUE(apply(machine, {at("vibration_mm_s", 1, noon - 72 * hour)}, noon).empty());
  EXPECT_EQ(applied.size(), 1u); // accepted (and kept in history) all the same
  EXPECT_EQ(st.status, health_status::stale);
  EXPECT_EQ(st.last_data_ms, noon - 2 * minute); // the newest sample time stays
}

TEST_F(TwinState, SampleSeventyTwoHoursOldMakesANewTwinStaleAtOnce) {
  st.created_ms = noon - second; // created a second ago, no data yet
  ASSERT_FALSE(evaluate_health(st, machine, noon));
  ASSERT_EQ(st.status, health_status::ok);
  EXPECT_TRUE(apply(machine, {at("temperature_c", 70, noon - 72 * hour)}, noon).empty());
  EXPECT_EQ(st.status, health_status::stale);
  EXPECT_EQ(st.last_data_ms, noon - 72 * hour);
  EXPECT_EQ(data_since_ms(st), noon - 72 * hour);
}

TEST_F(TwinState, FreshSampleAfterOldOnesMakesTheTwinOk) {
  st.created_ms = noon - second;
  ASSERT_TRUE(apply(machine, {at("temperature_c", 70, noon - 72 * hour)}, noon).empty());
  ASSERT_EQ(st.status, health_status::stale);
  EXPECT_TRUE(apply(machine, {at("temperature_c", 71, noon - second)}, noon).empty());
  EXPECT_EQ(st.status, health_status::ok);
  EXPECT_EQ(st.last_data_ms, noon - second);
}

TEST_F(TwinState, BackOnlineCountsAsDataAtItsOwnTime) {
  accept(machine, {at("temperature_c", 70, noon - 2 * minute)});
  ASSERT_TRUE(apply(machine, {at(std::string(offline_channel), 1, noon - minute)}, noon).empty());
  // A replayed "online" mark from three days ago: online, but no sign of life.
  EXPECT_TRUE(apply(machine, {at(std::string(offline_channel), 0, noon - 72 * hour)}, noon).empty());
  EXPECT_FALSE(st.offline);
  EXPECT_EQ(st.status, health_status::stale);
  // One from now is.
  EXPECT_TRUE(apply(machine, {at(std::string(offline_channel), 0, noon)}, noon).empty());
  EXPECT_EQ(st.status, health_status::ok);
  EXPECT_EQ(st.last_data_ms, noon);
}

TEST_F(TwinState, DataTimeIsNeverLaterThanTheAllowedSkew) {
  // The offline mark takes any timestamp; a far-future one does not keep the
  // twin fresh for longer than a sample could.
  EXPECT_TRUE(apply(machine, {at(std::string(offline_channel), 0, noon + day)}, noon).empty());
  EXPECT_EQ(st.last_data_ms, noon + limits.future_skew_ms);
}

TEST_F(TwinState, TwinThatNeverSentDataIsNotStale) {
  EXPECT_FALSE(evaluate_health(st, machine, noon));
  EXPECT_EQ(st.status, health_status::ok);
}

TEST_F(TwinState, TwinWithoutDataTurnsStaleAfterStaleAfterFromItsCreation) {
  st.created_ms = noon;
  EXPECT_FALSE(evaluate_health(st, machine, noon + 30 * second));
  EXPECT_EQ(st.status, health_status::ok);
  EXPECT_TRUE(evaluate_health(st, machine, noon + 30 * second + 1));
  EXPECT_EQ(st.status, health_status::stale);
  EXPECT_EQ(st.last_data_ms, 0); // no data is not data
}

TEST_F(TwinState, KindWithoutStaleAfterNeverTurnsStale) {
  accept(warehouse, {at("receipt/SKU-1", 1, noon)});
  EXPECT_FALSE(evaluate_health(st, warehouse, noon + 30 * day));
  EXPECT_EQ(st.status, health_status::ok);
}

// ---------------------------------------------------------------------------
// What the twin hands its parent

TEST_F(TwinState, MachineContributesPowerEnergyCountAndItsHealth) {
  power(machine, {{noon, 60}, {noon + minute, 120}});
  accept(machine, {at("state", 1, noon + minute)});

  contribution expected;
  expected.sums = {{"power_kw", 120}, {"energy_kwh", 1}, {"energy_today_kwh", 1},
                   {"count/running", 1}};
  expected.counts[static_cast<size_t>(health_status::ok)] = 1;
  expected.score_sum = 100;
  expected.score_count = 1;
  expected.worst_id = std::string(twin);
  expected.worst_status = health_status::ok;
  expected.latest_ts_ms = noon + minute;
  EXPECT_TRUE(st.own == expected);
  EXPECT_TRUE(own_contribution(st, machine, twin) == expected);
}

TEST_F(TwinState, AlarmedTwinNamesItselfAsWorst) {
  accept(machine, {at("temperature_c", 120, noon)});
  EXPECT_EQ(st.own.counts[static_cast<size_t>(health_status::alarm)], 1);
  EXPECT_EQ(st.own.counts[static_cast<size_t>(health_status::ok)], 0);
  EXPECT_EQ(st.own.score_sum, 0);
  EXPECT_EQ(st.own.worst_id, twin);
  EXPECT_EQ(st.own.worst_status, health_status::alarm);
}

TEST_F(TwinState, IdleMachineIsNotCountedAsRunning) {
  accept(machine, {at("state", 2, noon)});
  EXPECT_EQ(st.own.sums.count("count/running"), 0u);
  accept(machine, {at("state", 1, noon + 1)});
  EXPECT_EQ(st.own.sums.at("count/running"), 1);
}

TEST_F(TwinState, StoppedMachineAddsNoPowerButKeepsItsEnergy) {
  power(machine, {{noon, 60}, {noon + minute, 0}});
  EXPECT_EQ(st.own.sums.count("power_kw"), 0u);
  EXPECT_DOUBLE_EQ(st.own.sums.at("energy_kwh"), 1.0);
}

TEST_F(TwinState, WarehouseContributesStockPerSku) {
  accept(warehouse, {at("receipt/SKU-1", 7, noon), at("receipt/SKU-2", 2, noon),
                     at("pick/SKU-2", 1, noon)});
  EXPECT_EQ(st.own.sums, (std::map<std::string, double>{{"stock/SKU-1", 7},
                                                         {"stock/SKU-2", 1}}));
  EXPECT_EQ(st.own.score_count, 1);
}

TEST_F(TwinState, MeterContributesEnergyFromItsCounter) {
  accept(meter, {at("energy_total_kwh", 10, noon), at("energy_total_kwh", 12.5, noon + 1)});
  EXPECT_DOUBLE_EQ(st.own.sums.at("energy_kwh"), 2.5);
  EXPECT_DOUBLE_EQ(st.own.sums.at("energy_today_kwh"), 2.5);
  EXPECT_EQ(st.own.sums.count("power_kw"), 0u);
}

TEST_F(TwinState, KindWithoutChannelsIsNotCountedInHealth) {
  st.status = health_status::alarm;
  st.score = 0;
  auto own = own_contribution(st, line, "acme/plant-1/line-2");
  EXPECT_TRUE(own == contribution{});
}

} // namespace
} // namespace twinrt::twins
