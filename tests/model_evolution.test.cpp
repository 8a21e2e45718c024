// A new model version takes effect on live twins without a restart, keeps
// what was recorded under the old one, and stays in force across restarts.

#include <filesystem>
#include <fstream>

#include "support.hpp"
#include "twinrt/schemas/builtin_models.hpp"

namespace twinrt {
namespace {

using runtime::describe;
using twins::health_status;
using twins::reject_reason;
using twins::sample;

const std::string machine = "acme/plant-1/line-1/press-1";

std::string builtin_text(const std::string& file_name) {
  for (auto& m : schemas::builtin_models())
    if (m.file_name == file_name)
      return m.text;
  ADD_FAILURE() << "no built-in model " << file_name;
  return "";
}

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "'" << from << "' not in the model";
  ASSERT_EQ(text.find(from, at + 1), std::string::npos) << "'" << from << "' twice";
  text.replace(at, from.size(), to);
}

// The built-in machine model (version 2) as version 3: a `current_a` channel
// more, and vibration warns above 3.0 instead of 4.5.
std::string machine_v2() {
  auto text = builtin_text("machine.toml");
  replace_once(text, "version = 2\n", "version = 3\n");
  replace_once(text, "warning_above = 4.5\n", "warning_above = 3.0\n");
  replace_once(text, "[[health]]\nchannel = \"vibration_mm_s\"",
               "[channels.current_a]\nunit = \"A\"\ntype = \"gauge\"\nmin = 0.0\nmax = 500.0\n\n"
               "[[health]]\nchannel = \"vibration_mm_s\"");
  return text;
}

class ModelEvolution : public ::testing::Test {
protected:
  testing::temp_dir data{"model-evolution"};
  testing::temp_dir models_dir{"model-evolution-models"};
  runtime::node_config cfg = [this] {
    auto c = testing::test_config(data.str());
    c.models_dir = models_dir.str();
    return c;
  }();
  std::unique_ptr<runtime::node> node;
  int64_t t0 = twins::wall_ms() - 10'000;

  void SetUp() override {
    for (auto& m : schemas::builtin_models())
      std::ofstream(models_dir.path() / m.file_name) << m.text;
    node = testing::start_node(cfg);
    ASSERT_TRUE(node);
    ASSERT_EQ(machine_model()->version, 2u);
    ASSERT_FALSE(node->create({{"acme", "enterprise", ""},
                               {"acme/plant-1", "plant", "acme"},
                               {"acme/plant-1/line-1", "line", "acme/plant-1"},
                               {machine, "machine", "acme/plant-1/line-1"}}));
  }

  twins::model_set::model_ptr machine_model() {
    for (auto& m : node->models())
      if (m->kind == "machine")
        return m;
    ADD_FAILURE() << "no machine model in force";
    return std::make_shared<twins::model>();
  }

  twins::ingest_result ingest(std::vector<sample> batch) {
    auto r = node->ingest(std::move(batch));
    EXPECT_TRUE(r) << describe(r.error());
    return r ? *r : twins::ingest_result{};
  }

  void ingest_ok(std::vector<sample> batch) {
    auto r = ingest(std::move(batch));
    ASSERT_TRUE(r.rejected.empty()) << r.rejected.front().message;
  }

  void load_v2() {
    auto refusals = node->reload_model_texts({{"machine.toml", machine_v2()}}).refused;
    ASSERT_TRUE(refusals.empty()) << refusals.front();
    ASSERT_EQ(machine_model()->version, 3u);
  }

  health_status status() {
    auto v = node->get(machine);
    EXPECT_TRUE(v) << describe(v.error());
    return v ? v->state.status : health_status::ok;
  }

  std::vector<runtime::history_point> history(const std::string& channel) {
    auto h = node->history(machine, channel, t0 - 60'000, t0 + 60'000);
    EXPECT_TRUE(h) << describe(h.error());
    return h ? *h : std::vector<runtime::history_point>{};
  }

  void restart() {
    node.reset();
    node = testing::start_node(cfg);
    ASSERT_TRUE(node);
  }
};

TEST_F(ModelEvolution, LowerThresholdTurnsALiveTwinWarningWithoutRestart) {
  ingest_ok({{machine, "vibration_mm_s", t0, 3.5, "", 0}});
  ASSERT_EQ(status(), health_status::ok) << "3.5 is below version 1's 4.5";
  ASSERT_NO_FATAL_FAILURE(load_v2());
  EXPECT_TRUE(testing::eventually([&] { return status() == health_status::warning; }))
    << "status " << twins::to_string(status());
  EXPECT_EQ(node->get(machine)->state.model_version, 3u);
  // Its line counts it as warning too.
  auto warning = static_cast<size_t>(health_status::warning);
  EXPECT_TRUE(testing::eventually([&] {
    auto line = node->get("acme/plant-1/line-1");
    return line && line->state.own.counts[warning] == 1
           && line->state.status == health_status::warning;
  }));
}

// Regression: a reload used to reach only twins in memory, so a passivated
// machine kept the old rules and its line's rollup missed the change.
TEST_F(ModelEvolution, ReloadReachesPassivatedTwinsAndTheirParents) {
  ingest_ok({{machine, "vibration_mm_s", t0, 3.5, "", 0}});
  ASSERT_EQ(status(), health_status::ok);
  ASSERT_TRUE(testing::eventually([&] {
    node->passivate_all(); // a twin with a flush pending says no; ask again
    return node->active_twins() <= 3;
  }))
    << node->active_twins() << " twins still in memory";
  ASSERT_NO_FATAL_FAILURE(load_v2());
  auto warning = static_cast<size_t>(health_status::warning);
  // The line is asked, not the machine: asking the machine would activate it.
  EXPECT_TRUE(testing::eventually([&] {
    auto line = node->get("acme/plant-1/line-1");
    return line && line->state.own.counts[warning] == 1;
  })) << "the line does not count its passivated machine as warning";
}

// Same, across a restart: the twin was passivated when the new version came
// and the node stopped before anyone asked for it.
TEST_F(ModelEvolution, RestartAppliesTheNewVersionToTwinsThatNeverWokeUp) {
  ingest_ok({{machine, "vibration_mm_s", t0, 3.5, "", 0}});
  restart(); // nothing is in memory now
  ASSERT_EQ(node->active_twins(), 0);
  // Load v2 while the machine sleeps, then stop before anything wakes it
  // through the storage-only path: write v2 into the models directory.
  std::ofstream(models_dir.path() / "machine.toml") << machine_v2();
  restart();
  ASSERT_EQ(machine_model()->version, 3u);
  auto warning = static_cast<size_t>(health_status::warning);
  auto stored = node->stored("acme/plant-1/line-1", "line");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].state.own.counts[warning], 1) << "start-up did not refold under v2";
}

TEST_F(ModelEvolution, ChannelAddedByANewVersionIsAcceptedAtOnce) {
  sample current{machine, "current_a", t0, 42.5, "", 0};
  auto r = ingest({current});
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, reject_reason::unknown_channel) << r.rejected[0].message;
  EXPECT_EQ(r.accepted, 0u);
  ASSERT_NO_FATAL_FAILURE(load_v2());
  ingest_ok({current});
  auto latest = node->get(machine)->state.channels;
  ASSERT_EQ(latest.count("current_a"), 1u);
  EXPECT_EQ(latest.at("current_a").value, 42.5);
  auto h = history("current_a");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].value, 42.5);
  EXPECT_EQ(h[0].model_version, 3u);
}

TEST_F(ModelEvolution, HistoryRecordedUnderTheOldVersionReadsBackUnchanged) {
  ingest_ok({{machine, "vibration_mm_s", t0, 3.5, "plc-1", 1},
             {machine, "vibration_mm_s", t0 + 100, 5.0, "plc-1", 2}});
  auto old = history("vibration_mm_s");
  ASSERT_EQ(old.size(), 2u);
  EXPECT_EQ(old[0].model_version, 2u);
  EXPECT_EQ(old[1].model_version, 2u);
  ASSERT_NO_FATAL_FAILURE(load_v2());
  ingest_ok({{machine, "vibration_mm_s", t0 + 200, 3.2, "plc-1", 3}});
  auto h = history("vibration_mm_s");
  ASSERT_EQ(h.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(h[i].ts_ms, old[i].ts_ms) << i;
    EXPECT_EQ(h[i].value, old[i].value) << i;
    EXPECT_EQ(h[i].model_version, 2u) << i;
    EXPECT_EQ(h[i].source, "plc-1") << i;
    EXPECT_EQ(h[i].seq, old[i].seq) << i;
  }
  EXPECT_EQ(h[2].ts_ms, t0 + 200);
  EXPECT_EQ(h[2].value, 3.2);
  EXPECT_EQ(h[2].model_version, 3u);
}

TEST_F(ModelEvolution, ReloadFromADirectoryAppliesTheNewVersion) {
  ingest_ok({{machine, "vibration_mm_s", t0, 3.5, "", 0}});
  testing::temp_dir v2_dir{"model-evolution-v2"};
  std::ofstream(v2_dir.path() / "machine.toml") << machine_v2();
  auto refusals = node->reload_models(v2_dir.str()).refused;
  ASSERT_TRUE(refusals.empty()) << refusals.front();
  EXPECT_EQ(machine_model()->version, 3u);
  EXPECT_TRUE(testing::eventually([&] { return status() == health_status::warning; }));
}

TEST_F(ModelEvolution, NewVersionStaysInForceAfterRestart) {
  ingest_ok({{machine, "vibration_mm_s", t0, 3.5, "", 0}});
  ASSERT_NO_FATAL_FAILURE(load_v2());
  ingest_ok({{machine, "current_a", t0 + 100, 7, "", 0}});
  ASSERT_TRUE(testing::eventually([&] { return status() == health_status::warning; }));
  // The models directory still holds version 1: the stored version 2 wins.
  ASSERT_NO_FATAL_FAILURE(restart());
  auto m = machine_model();
  EXPECT_EQ(m->version, 3u);
  EXPECT_EQ(m->text, machine_v2());
  EXPECT_EQ(status(), health_status::warning);
  ingest_ok({{machine, "current_a", t0 + 200, 8, "", 0}});
  auto h = history("current_a");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].value, 7);
  EXPECT_EQ(h[1].value, 8);
  auto v = history("vibration_mm_s");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].model_version, 2u);
  // Other kinds are unchanged.
  for (auto& pm : node->models()) {
    if (pm->kind != "machine") {
      EXPECT_EQ(pm->text, builtin_text(pm->kind + ".toml")) << pm->kind;
    }
  }
}

TEST_F(ModelEvolution, OlderVersionIsRefusedOnceANewerOneIsInForce) {
  ASSERT_NO_FATAL_FAILURE(load_v2());
  ASSERT_NO_FATAL_FAILURE(restart());
  auto v1 = builtin_text("machine.toml");
  auto refusals = node->reload_model_texts({{"machine.toml", v1}}).refused;
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].rfind("machine.toml:", 0), 0u) << refusals[0];
  EXPECT_NE(refusals[0].find("older than version 3"), std::string::npos) << refusals[0];
  // The same through the directory the node started with.
  refusals = node->reload_models(models_dir.str()).refused;
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_NE(refusals[0].find("older than version 3"), std::string::npos) << refusals[0];
  EXPECT_EQ(machine_model()->version, 3u);
  EXPECT_EQ(machine_model()->text, machine_v2());
}

TEST_F(ModelEvolution, SameVersionWithOtherTextIsRefused) {
  auto text = builtin_text("machine.toml");
  replace_once(text, "warning_above = 4.5\n", "warning_above = 3.0\n");
  auto refusals = node->reload_model_texts({{"machine.toml", text}}).refused;
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_NE(refusals[0].find("without a new version number"), std::string::npos)
    << refusals[0];
  EXPECT_EQ(machine_model()->text, builtin_text("machine.toml"));
}

} // namespace
} // namespace twinrt
