#include "twinrt/twins/model.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace twinrt::twins {
namespace {

constexpr std::string_view machine_toml = R"(# A production machine.
kind = "machine"
version = 1
description = "Production machine"
parents = ["line"]
stale_after_s = 30
export_metrics = false

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
min = 0
max = 5000

[channels.state]
type = "state"
min = 0
max = 3

[channels.parts_total]
unit = "parts"
type = "counter"
min = 0
max = 1e12

[[health]]
channel = "vibration_mm_s"
warning_above = 4.5
alarm_above = 7.1

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

constexpr std::string_view warehouse_toml = R"(kind = "warehouse"
version = 1

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
min = 0
max = 10000
)";

model parse_ok(std::string_view text, std::string file = "test.toml") {
  auto r = parse_model(text, std::move(file));
  if (auto e = std::get_if<model_error>(&r)) {
    ADD_FAILURE() << "refused: " << e->to_string();
    return {};
  }
  return std::get<model>(std::move(r));
}

model_error parse_refused(std::string_view text) {
  auto r = parse_model(text, "broken.toml");
  if (std::holds_alternative<model>(r)) {
    ADD_FAILURE() << "model was accepted but should have been refused";
    return {};
  }
  return std::get<model_error>(std::move(r));
}

// A minimal valid model followed by `rest`, so that a test's broken part
// starts on line 3.
std::string small_model(std::string_view rest) {
  return "kind = \"probe\"\nversion = 1\n" + std::string(rest);
}

// ---------------------------------------------------------------------------
// Parsing a valid model

TEST(Model, MachineModelReadsHeaderFields) {
  auto m = parse_ok(machine_toml, "models/machine.toml");
  EXPECT_EQ(m.kind, "machine");
  EXPECT_EQ(m.version, 1u);
  EXPECT_EQ(m.description, "Production machine");
  EXPECT_EQ(m.parents, std::vector<std::string>{"line"});
  EXPECT_EQ(m.stale_after_ms, 30'000);
  EXPECT_FALSE(m.export_metrics);
  EXPECT_EQ(m.file_name, "models/machine.toml");
  EXPECT_EQ(m.text, machine_toml);
}

TEST(Model, MachineModelReadsEveryChannelWithTypeUnitAndRange) {
  auto m = parse_ok(machine_toml);
  ASSERT_EQ(m.channels.size(), 5u);

  auto& temp = m.channels.at("temperature_c");
  EXPECT_EQ(temp.name, "temperature_c");
  EXPECT_EQ(temp.unit, "degC");
  EXPECT_EQ(temp.type, channel_type::gauge);
  EXPECT_EQ(temp.min, -40.0);
  EXPECT_EQ(temp.max, 400.0);
  EXPECT_EQ(temp.effect, movement_effect::none);

  // Integer bounds are read as numbers too.
  auto& power = m.channels.at("power_kw");
  EXPECT_EQ(power.min, 0.0);
  EXPECT_EQ(power.max, 5000.0);

  auto& state = m.channels.at("state");
  EXPECT_EQ(state.type, channel_type::state);
  EXPECT_EQ(state.unit, ""); // unit is optional

  auto& parts = m.channels.at("parts_total");
  EXPECT_EQ(parts.type, channel_type::counter);
  EXPECT_EQ(parts.max, 1e12);
}

TEST(Model, MachineModelReadsHealthRulesLeavingUnsetBoundsEmpty) {
  auto m = parse_ok(machine_toml);
  ASSERT_EQ(m.health.size(), 2u);

  auto& vib = m.health[0];
  EXPECT_EQ(vib.channel, "vibration_mm_s");
  EXPECT_EQ(vib.warning_above, 4.5);
  EXPECT_EQ(vib.alarm_above, 7.1);
  EXPECT_FALSE(vib.warning_below);
  EXPECT_FALSE(vib.alarm_below);
  EXPECT_FALSE(vib.warning_equals);
  EXPECT_FALSE(vib.alarm_equals);

  auto& state = m.health[1];
  EXPECT_EQ(state.channel, "state");
  EXPECT_EQ(state.alarm_equals, 3.0);
  EXPECT_FALSE(state.warning_above);
  EXPECT_FALSE(state.alarm_above);
}

TEST(Model, MachineModelReadsEnergyAndCounts) {
  auto m = parse_ok(machine_toml);
  EXPECT_EQ(m.power_channel, "power_kw");
  EXPECT_EQ(m.energy_channel, "");
  ASSERT_EQ(m.counts.size(), 1u);
  EXPECT_EQ(m.counts[0].name, "running");
  EXPECT_EQ(m.counts[0].channel, "state");
  EXPECT_EQ(m.counts[0].equals, 1.0);
}

TEST(Model, CounterCanBeTheEnergyChannel) {
  auto m = parse_ok(small_model(R"(
[channels.energy_total_kwh]
type = "counter"
min = 0
max = 1e12

[energy]
energy_channel = "energy_total_kwh"
)"));
  EXPECT_EQ(m.energy_channel, "energy_total_kwh");
  EXPECT_EQ(m.power_channel, "");
}

TEST(Model, MovementChannelsKeepTheirEffect) {
  auto m = parse_ok(warehouse_toml);
  EXPECT_EQ(m.channels.at("receipt").type, channel_type::movement);
  EXPECT_EQ(m.channels.at("receipt").effect, movement_effect::in);
  EXPECT_EQ(m.channels.at("pick").effect, movement_effect::out);
  EXPECT_EQ(m.channels.at("adjust").effect, movement_effect::adjust);
  EXPECT_EQ(m.channels.at("adjust").min, -1'000'000.0);
}

TEST(Model, KindWithoutChannelsIsARollupOnlyModel) {
  auto m = parse_ok(R"(kind = "line"
version = 3
parents = ["plant"]
)");
  EXPECT_EQ(m.kind, "line");
  EXPECT_EQ(m.version, 3u);
  EXPECT_TRUE(m.channels.empty());
  EXPECT_TRUE(m.health.empty());
  EXPECT_EQ(m.stale_after_ms, 0); // never turns stale
  EXPECT_FALSE(m.export_metrics);
}

// ---------------------------------------------------------------------------
// Refusing a broken model: file, line and reason

TEST(Model, ErrorReadsAsFileLineReason) {
  model_error e{"models/machine.toml", 12, "min is above max"};
  EXPECT_EQ(e.to_string(), "models/machine.toml:12: min is above max");
}

TEST(Model, TomlSyntaxErrorIsRefusedWithItsLine) {
  auto e = parse_refused("kind = \"probe\"\nversion = 1\ndescription = \"unterminated\n");
  EXPECT_EQ(e.file, "broken.toml");
  EXPECT_EQ(e.line, 3);
  EXPECT_FALSE(e.reason.empty());
}

TEST(Model, UnknownTopLevelKeyIsRefused) {
  auto e = parse_refused(small_model("colour = \"red\"\n"));
  EXPECT_EQ(e.file, "broken.toml");
  EXPECT_EQ(e.line, 3);
  EXPECT_NE(e.reason.find("unknown key 'colour'"), std::string::npos) << e.reason;
}

TEST(Model, UnknownKeyInChannelIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
min = 0
max = 1
scale = 10
)"));
  EXPECT_EQ(e.line, 8);
  EXPECT_NE(e.reason.find("unknown key 'scale' in channel 'temp'"), std::string::npos)
    << e.reason;
}

TEST(Model, ChannelWithoutTypeIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
unit = "degC"
min = 0
max = 1
)"));
  EXPECT_EQ(e.line, 4); // the channel's table header
  EXPECT_NE(e.reason.find("missing key 'type'"), std::string::npos) << e.reason;
}

TEST(Model, UnknownChannelTypeIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "thermometer"
min = 0
max = 1
)"));
  EXPECT_EQ(e.line, 5);
  EXPECT_NE(e.reason.find("type 'thermometer'"), std::string::npos) << e.reason;
}

TEST(Model, ChannelWithoutRangeIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
min = 0
)"));
  EXPECT_EQ(e.line, 4);
  EXPECT_NE(e.reason.find("min and max"), std::string::npos) << e.reason;
}

TEST(Model, MinAboveMaxIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
min = 10
max = 5
)"));
  EXPECT_EQ(e.line, 6); // the line of min
  EXPECT_NE(e.reason.find("channel 'temp': min is above max"), std::string::npos)
    << e.reason;
}

TEST(Model, UpperCaseChannelNameIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.Temp]
type = "gauge"
min = 0
max = 1
)"));
  EXPECT_EQ(e.line, 4);
  EXPECT_NE(e.reason.find("channel name 'Temp'"), std::string::npos) << e.reason;
}

TEST(Model, MovementChannelWithoutEffectIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.receipt]
type = "movement"
min = 0
max = 100
)"));
  EXPECT_EQ(e.line, 4);
  EXPECT_NE(e.reason.find("missing key 'effect'"), std::string::npos) << e.reason;
}

TEST(Model, MovementChannelWithUnknownEffectIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.receipt]
type = "movement"
effect = "sideways"
min = 0
max = 100
)"));
  EXPECT_EQ(e.line, 6);
  EXPECT_NE(e.reason.find("effect 'sideways'"), std::string::npos) << e.reason;
}

TEST(Model, EffectOnANonMovementChannelIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
effect = "in"
min = 0
max = 1
)"));
  EXPECT_EQ(e.line, 6);
  EXPECT_NE(e.reason.find("only movement channels have an effect"), std::string::npos)
    << e.reason;
}

TEST(Model, HealthRuleOnUnknownChannelIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
min = 0
max = 100

[[health]]
channel = "pressure"
warning_above = 5
)"));
  EXPECT_EQ(e.line, 10);
  EXPECT_NE(e.reason.find("unknown channel 'pressure'"), std::string::npos) << e.reason;
}

TEST(Model, HealthRuleWithoutThresholdIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
min = 0
max = 100

[[health]]
channel = "temp"
)"));
  EXPECT_EQ(e.line, 9);
  EXPECT_NE(e.reason.find("sets no threshold"), std::string::npos) << e.reason;
}

TEST(Model, HealthWarningAboveItsAlarmIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.temp]
type = "gauge"
min = 0
max = 100

[[health]]
channel = "temp"
warning_above = 90
alarm_above = 80
)"));
  EXPECT_EQ(e.line, 9);
  EXPECT_NE(e.reason.find("warning_above is above alarm_above"), std::string::npos)
    << e.reason;
}

TEST(Model, BothPowerAndEnergyChannelIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.power_kw]
type = "gauge"
min = 0
max = 100

[channels.energy_kwh]
type = "counter"
min = 0
max = 1e9

[energy]
power_channel = "power_kw"
energy_channel = "energy_kwh"
)"));
  EXPECT_EQ(e.line, 14); // the [energy] header
  EXPECT_NE(e.reason.find("not both"), std::string::npos) << e.reason;
}

TEST(Model, PowerChannelThatIsNotAGaugeIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.energy_kwh]
type = "counter"
min = 0
max = 1e9

[energy]
power_channel = "energy_kwh"
)"));
  EXPECT_EQ(e.line, 10);
  EXPECT_NE(e.reason.find("must be a gauge"), std::string::npos) << e.reason;
}

TEST(Model, MissingKindIsRefused) {
  auto e = parse_refused("version = 1\n");
  EXPECT_EQ(e.file, "broken.toml");
  EXPECT_NE(e.reason.find("missing key 'kind'"), std::string::npos) << e.reason;
}

TEST(Model, VersionThatIsNotAWholeNumberFromOneIsRefused) {
  // 4294967297 used to be read as version 1, and `true` as version 1.
  for (auto version : {"0", "-1", "4294967296", "4294967297", "true", "2.0", "\"2\""}) {
    SCOPED_TRACE(version);
    auto e = parse_refused("kind = \"probe\"\nversion = " + std::string(version) + "\n");
    EXPECT_EQ(e.line, 2);
    EXPECT_NE(e.reason.find("'version' must be a whole number"), std::string::npos)
      << e.reason;
  }
}

TEST(Model, LargestVersionIsAccepted) {
  auto m = parse_ok("kind = \"probe\"\nversion = 4294967295\n");
  EXPECT_EQ(m.version, 4'294'967'295u);
}

TEST(Model, ExportMetricsMustBeABoolean) {
  // `1` used to be read as true.
  auto e = parse_refused(small_model("export_metrics = 1\n"));
  EXPECT_EQ(e.line, 3);
  EXPECT_NE(e.reason.find("'export_metrics' must be true or false"), std::string::npos)
    << e.reason;
  EXPECT_TRUE(parse_ok(small_model("export_metrics = true\n")).export_metrics);
}

TEST(Model, CountWithoutEqualsIsRefused) {
  auto e = parse_refused(small_model(R"(
[channels.state]
type = "state"
min = 0
max = 3

[[counts]]
name = "running"
channel = "state"
)"));
  EXPECT_EQ(e.line, 9);
  EXPECT_NE(e.reason.find("needs 'equals'"), std::string::npos) << e.reason;
}

// ---------------------------------------------------------------------------
// Finding the channel a sample names

TEST(Model, MovementChannelIsFoundWithItsSku) {
  auto m = parse_ok(warehouse_toml);
  std::string_view sku;
  auto c = m.find_channel("receipt/SKU-1", &sku);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "receipt");
  EXPECT_EQ(sku, "SKU-1");
}

TEST(Model, MovementChannelIsFoundWithoutAskingForTheSku) {
  auto m = parse_ok(warehouse_toml);
  auto c = m.find_channel("pick/SKU-9", nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "pick");
}

TEST(Model, MovementChannelNeedsExactlyOneNonEmptySku) {
  auto m = parse_ok(warehouse_toml);
  EXPECT_EQ(m.find_channel("receipt", nullptr), nullptr);
  EXPECT_EQ(m.find_channel("receipt/", nullptr), nullptr);
  EXPECT_EQ(m.find_channel("receipt/SKU-1/extra", nullptr), nullptr);
}

TEST(Model, PlainChannelIsFoundByItsNameAndLeavesItemAlone) {
  auto m = parse_ok(warehouse_toml);
  std::string_view item = "untouched";
  auto c = m.find_channel("power_kw", &item);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "power_kw");
  EXPECT_EQ(item, "untouched");
}

TEST(Model, PlainChannelWithASkuIsNotFound) {
  auto m = parse_ok(warehouse_toml);
  EXPECT_EQ(m.find_channel("power_kw/SKU-1", nullptr), nullptr);
}

TEST(Model, UnknownChannelIsNotFound) {
  auto m = parse_ok(warehouse_toml);
  EXPECT_EQ(m.find_channel("temperature_c", nullptr), nullptr);
  EXPECT_EQ(m.find_channel("ship/SKU-1", nullptr), nullptr);
  EXPECT_EQ(m.find_channel("", nullptr), nullptr);
}

// ---------------------------------------------------------------------------
// The set of models in force

model versioned(uint32_t version, std::string description = "") {
  model m;
  m.kind = "machine";
  m.version = version;
  m.description = description;
  m.text = "version " + std::to_string(version) + " " + description;
  return m;
}

TEST(ModelSet, UnknownKindIsNotFound) {
  model_set set;
  EXPECT_EQ(set.find("machine"), nullptr);
  EXPECT_TRUE(set.all().empty());
}

TEST(ModelSet, NewerVersionReplacesTheOneInForce) {
  model_set set;
  ASSERT_EQ(set.put(versioned(1)), std::nullopt);
  EXPECT_EQ(set.put(versioned(2)), std::nullopt);
  ASSERT_NE(set.find("machine"), nullptr);
  EXPECT_EQ(set.find("machine")->version, 2u);
  EXPECT_EQ(set.all().size(), 1u);
}

TEST(ModelSet, OlderVersionIsRefusedAndTheNewerStays) {
  model_set set;
  ASSERT_EQ(set.put(versioned(3)), std::nullopt);
  auto why = set.put(versioned(2));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("older"), std::string::npos) << *why;
  EXPECT_EQ(set.find("machine")->version, 3u);
}

TEST(ModelSet, SameVersionWithOtherTextIsRefused) {
  model_set set;
  ASSERT_EQ(set.put(versioned(2, "first")), std::nullopt);
  auto why = set.put(versioned(2, "edited"));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("without a new version"), std::string::npos) << *why;
  EXPECT_EQ(set.find("machine")->description, "first");
}

TEST(ModelSet, SameVersionWithSameTextIsANoOp) {
  model_set set;
  ASSERT_EQ(set.put(versioned(2)), std::nullopt);
  auto before = set.find("machine");
  EXPECT_EQ(set.put(versioned(2)), std::nullopt);
  EXPECT_EQ(set.find("machine"), before); // the very same model in force
}

TEST(ModelSet, KindsAreKeptApart) {
  model_set set;
  auto line = versioned(1);
  line.kind = "line";
  ASSERT_EQ(set.put(versioned(5)), std::nullopt);
  EXPECT_EQ(set.put(std::move(line)), std::nullopt); // version 1 of another kind
  EXPECT_EQ(set.find("machine")->version, 5u);
  EXPECT_EQ(set.find("line")->version, 1u);
  EXPECT_EQ(set.all().size(), 2u);
}

// ---------------------------------------------------------------------------
// Loading several model files

TEST(ModelFiles, TwoFilesDefiningOneKindAreFlagged) {
  auto files = load_model_texts({{"a/machine.toml", std::string(machine_toml)},
                                 {"b/machine_copy.toml", std::string(machine_toml)},
                                 {"c/warehouse.toml", std::string(warehouse_toml)}});
  ASSERT_EQ(files.models.size(), 2u);
  EXPECT_EQ(files.models[0].file_name, "a/machine.toml");
  EXPECT_EQ(files.models[1].kind, "warehouse");
  ASSERT_EQ(files.errors.size(), 1u);
  EXPECT_EQ(files.errors[0].file, "b/machine_copy.toml");
  EXPECT_NE(files.errors[0].reason.find("'machine'"), std::string::npos)
    << files.errors[0].reason;
}

TEST(ModelFiles, BrokenFileIsReportedAndTheOthersStillLoad) {
  auto files = load_model_texts({{"bad.toml", "kind = \"bad\"\nversion = 0\n"},
                                 {"warehouse.toml", std::string(warehouse_toml)}});
  ASSERT_EQ(files.models.size(), 1u);
  EXPECT_EQ(files.models[0].kind, "warehouse");
  ASSERT_EQ(files.errors.size(), 1u);
  EXPECT_EQ(files.errors[0].file, "bad.toml");
  EXPECT_EQ(files.errors[0].line, 2);
}

TEST(ModelFiles, MissingDirectoryIsAnError) {
  auto files = load_model_dir("/nonexistent/twinrt/models");
  EXPECT_TRUE(files.models.empty());
  ASSERT_EQ(files.errors.size(), 1u);
  EXPECT_EQ(files.errors[0].file, "/nonexistent/twinrt/models");
}

std::vector<std::string> toml_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".toml")
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ModelFiles, EveryShippedModelParses) {
  auto files = load_model_dir(TWINRT_MODELS_DIR);
  for (auto& e : files.errors)
    ADD_FAILURE() << e.to_string();
  auto expected = toml_files_in(TWINRT_MODELS_DIR);
  ASSERT_FALSE(expected.empty()) << "no models in " << TWINRT_MODELS_DIR;
  std::vector<std::string> loaded;
  for (auto& m : files.models)
    loaded.push_back(m.file_name);
  EXPECT_EQ(loaded, expected);
}

TEST(ModelFiles, EveryShippedParentKindIsAShippedModel) {
  auto files = load_model_dir(TWINRT_MODELS_DIR);
  std::set<std::string> kinds;
  for (auto& m : files.models)
    kinds.insert(m.kind);
  for (auto& m : files.models)
    for (auto& p : m.parents)
      EXPECT_EQ(kinds.count(p), 1u) << m.file_name << ": parent kind '" << p << "'";
}

} // namespace
} // namespace twinrt::twins
