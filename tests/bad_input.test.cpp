// Bad input is refused alone: each bad sample comes back with its reason and
// index, is counted once, leaves no trace, and the good samples of its batch
// go in. Bad trees and bad model files are refused whole.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

#include "support.hpp"
#include "twinrt/schemas/builtin_models.hpp"
#include "twinrt/twins/names.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt {
namespace {

using runtime::code_of;
using runtime::describe;
using runtime::errc;
using twins::reject_reason;
using twins::sample;

const std::string enterprise = "acme";
const std::string plant = "acme/plant-1";
const std::string line = "acme/plant-1/line-1";
const std::string machine = "acme/plant-1/line-1/press-1";
const std::string warehouse = "acme/wh-1";

// The first field in which two states differ, or "" when they are equal.
std::string difference(const twins::twin_state& a, const twins::twin_state& b) {
  std::ostringstream os;
  if (a.version != b.version)
    os << "version " << a.version << " vs " << b.version;
  else if (a.model_version != b.model_version)
    os << "model_version " << a.model_version << " vs " << b.model_version;
  else if (a.channels != b.channels)
    os << "channels (" << a.channels.size() << " vs " << b.channels.size() << " entries)";
  else if (a.sources != b.sources)
    os << "sources";
  else if (a.stock != b.stock)
    os << "stock";
  else if (a.energy_kwh != b.energy_kwh || a.energy_today_kwh != b.energy_today_kwh
           || a.energy_day != b.energy_day || a.last_power_kw != b.last_power_kw
           || a.last_power_ms != b.last_power_ms || a.last_counter_kwh != b.last_counter_kwh)
    os << "energy";
  else if (a.status != b.status || a.score != b.score)
    os << "status " << twins::to_string(a.status) << " vs " << twins::to_string(b.status);
  else if (a.last_data_ms != b.last_data_ms)
    os << "last_data_ms " << a.last_data_ms << " vs " << b.last_data_ms;
  else if (a.own != b.own)
    os << "contribution";
  else if (!(a.alerts == b.alerts))
    os << "alerts (" << a.alerts.size() << " vs " << b.alerts.size() << " rules tracked)";
  else if (!(a == b))
    os << "some field";
  return os.str();
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  ASSERT_TRUE(out.good()) << p;
}

void write_builtin_models(const std::filesystem::path& dir) {
  for (auto& m : schemas::builtin_models())
    write_file(dir / m.file_name, m.text);
}

// A model file whose 8th line is wrong: min above max.
const std::string broken_model = R"(kind = "press"
version = 1
parents = ["line"]

[channels.force_kn]
unit = "kN"
type = "gauge"
min = 10.0
max = 5.0
)";
const std::string broken_reason = ":8: channel 'force_kn': min is above max";

class BadInput : public ::testing::Test {
protected:
  testing::temp_dir dir{"bad-input"};
  runtime::node_config cfg = [this] {
    auto c = testing::test_config(dir.str());
    c.max_batch_samples = 16;
    c.future_skew_ms = 5'000;
    return c;
  }();
  std::unique_ptr<runtime::node> node = testing::start_node(cfg);
  int64_t t0 = twins::wall_ms() - 10'000;

  void SetUp() override {
    ASSERT_TRUE(node);
    ASSERT_FALSE(node->create({{enterprise, "enterprise", ""},
                               {plant, "plant", enterprise},
                               {line, "line", plant},
                               {machine, "machine", line},
                               {warehouse, "warehouse", enterprise}}));
  }

  uint32_t number_of(const std::string& id) {
    for (auto& m : node->twins())
      if (m.id == id)
        return m.number;
    ADD_FAILURE() << "no twin " << id;
    return 0;
  }

  std::vector<runtime::history_point> stored(const std::string& id, const std::string& channel,
                                             int64_t ts) {
    return node->store().read_history({id, number_of(id)}, channel, ts, ts + 1, 10);
  }

  twins::model_set::model_ptr model(const std::string& kind) {
    for (auto& m : node->models())
      if (m->kind == kind)
        return m;
    return nullptr;
  }

  std::map<std::string, twins::twin_state> leaf_states() {
    std::map<std::string, twins::twin_state> out;
    for (auto& id : {machine, warehouse}) {
      auto v = node->get(id);
      EXPECT_TRUE(v) << id;
      if (v)
        out[id] = v->state;
    }
    return out;
  }

  void accept_all(std::vector<sample> batch) {
    auto r = node->ingest(std::move(batch));
    ASSERT_TRUE(r) << describe(r.error());
    ASSERT_TRUE(r->rejected.empty()) << r->rejected.front().message;
  }

  // Ingests `batch`, whose sample `bad` alone must be refused for `reason`
  // with a message holding `detail`, and checks that the refusal changed
  // nothing while every other sample went in.
  void expect_refused_alone(const std::vector<sample>& batch, uint32_t bad, reject_reason reason,
                            const std::string& detail) {
    auto& s = batch[bad];
    auto before = leaf_states();
    auto& probe = node->probe();
    auto rejected_before = probe.rejected(reason);
    auto rejected_total_before = probe.rejected_total();
    auto accepted_before = probe.accepted();
    auto& db = node->store();
    std::map<uint32_t, uint64_t> log_before; // shard -> its last log record
    for (auto& x : batch)
      log_before[db.shard_of(x.twin)] = db.last_log_seq(db.shard_of(x.twin));

    auto r = node->ingest(batch);
    ASSERT_TRUE(r) << describe(r.error());
    ASSERT_EQ(r->rejected.size(), 1u);
    auto& rej = r->rejected.front();
    EXPECT_EQ(rej.index, bad);
    EXPECT_EQ(rej.reason, reason) << twins::to_string(rej.reason) << ": " << rej.message;
    EXPECT_NE(rej.message.find("sample " + std::to_string(bad) + " "), std::string::npos)
      << rej.message;
    EXPECT_NE(rej.message.find(s.twin + "." + s.channel), std::string::npos) << rej.message;
    EXPECT_NE(rej.message.find(detail), std::string::npos) << rej.message;
    EXPECT_EQ(r->accepted, batch.size() - 1);

    EXPECT_EQ(probe.rejected(reason), rejected_before + 1);
    EXPECT_EQ(probe.rejected_total(), rejected_total_before + 1);
    EXPECT_EQ(probe.accepted(), accepted_before + batch.size() - 1);

    // Each leaf is its old state plus exactly the good samples sent to it.
    for (auto& [id, old] : before) {
      auto after = node->get(id);
      ASSERT_TRUE(after) << id;
      auto expected = old;
      std::vector<uint32_t> good;
      for (uint32_t i = 0; i < batch.size(); ++i)
        if (i != bad && batch[i].twin == id)
          good.push_back(i);
      if (!good.empty()) {
        std::vector<uint32_t> applied;
        auto refused = twins::apply_samples(expected, *model(after->meta.kind), id, batch, good,
                                            after->state.last_data_ms, {cfg.future_skew_ms},
                                            applied);
        ASSERT_TRUE(refused.empty()) << "test bug: " << refused.front().message;
      }
      // Alert rules (a warehouse below its minimum stock) run in the twin
      // actor after the samples; tests/alerts_lifecycle.py covers them.
      expected.alerts = after->state.alerts;
      EXPECT_EQ(difference(after->state, expected), "") << id;
    }

    // The good samples are stored; the bad one is not.
    for (uint32_t i = 0; i < batch.size(); ++i) {
      if (i == bad)
        continue;
      auto points = stored(batch[i].twin, batch[i].channel, batch[i].ts_ms);
      ASSERT_EQ(points.size(), 1u) << "sample " << i;
      EXPECT_EQ(points[0].value, batch[i].value) << "sample " << i;
    }
    if (node->get(s.twin)) {
      EXPECT_TRUE(stored(s.twin, s.channel, s.ts_ms).empty()) << "the refused sample was stored";
    }

    // The shard log's new records hold the good samples, once each, and
    // not the bad one.
    using logged = std::tuple<std::string, std::string, int64_t, double, std::string, uint64_t>;
    std::vector<logged> expected_log, found_log;
    for (uint32_t i = 0; i < batch.size(); ++i)
      if (i != bad)
        expected_log.emplace_back(batch[i].twin, batch[i].channel, batch[i].ts_ms,
                                  batch[i].value, batch[i].source, batch[i].seq);
    for (auto [shard, last] : log_before) {
      auto page = db.read_log(shard, last + 1, 1 << 20);
      ASSERT_FALSE(page.error) << describe(page.error);
      for (auto& bytes : page.records) {
        auto rec = runtime::storage::decode_log_record(bytes);
        ASSERT_TRUE(rec) << describe(rec.error());
        for (auto& x : rec->samples)
          found_log.emplace_back(x.twin, x.channel, x.ts_ms, x.value, x.source, x.seq);
      }
    }
    std::sort(expected_log.begin(), expected_log.end());
    std::sort(found_log.begin(), found_log.end());
    EXPECT_EQ(found_log, expected_log);
  }

  std::vector<std::string> ids() {
    std::vector<std::string> out;
    for (auto& m : node->twins())
      out.push_back(m.id);
    return out;
  }

  std::map<std::string, std::string> parents() {
    std::map<std::string, std::string> out;
    for (auto& m : node->twins())
      out[m.id] = m.parent;
    return out;
  }
};

// -- one refusal reason at a time ---------------------------------------------------

TEST_F(BadInput, SampleForAnUnknownTwinIsRefusedAlone) {
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {line + "/press-9", "temperature_c", t0, 51, "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0}},
                       1, reject_reason::unknown_twin, "no twin " + line + "/press-9");
  EXPECT_EQ(code_of(node->get(line + "/press-9").error()), errc::unknown_twin);
}

TEST_F(BadInput, SampleForAnUnknownChannelIsRefusedAlone) {
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0},
                        {machine, "pressure_bar", t0, 3, "", 0}},
                       2, reject_reason::unknown_channel, "unknown channel");
}

TEST_F(BadInput, MovementWithoutASkuOrGaugeWithOneIsAnUnknownChannel) {
  for (std::string channel : {"receipt", "receipt/", "receipt/SKU-1/x", "power_kw/SKU-1"}) {
    SCOPED_TRACE(channel);
    expect_refused_alone({{warehouse, "receipt/SKU-1", t0, 5, "", 0},
                          {warehouse, channel, t0 + 1, 6, "", 0},
                          {machine, "temperature_c", t0, 50, "", 0}},
                         1, reject_reason::unknown_channel, "unknown channel");
  }
}

TEST_F(BadInput, NaNValueIsRefusedAlone) {
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {machine, "vibration_mm_s", t0, std::nan(""), "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0}},
                       1, reject_reason::not_finite, "NaN");
}

TEST_F(BadInput, InfiniteValueIsRefusedAlone) {
  expect_refused_alone({{machine, "vibration_mm_s", t0,
                         std::numeric_limits<double>::infinity(), "", 0},
                        {machine, "temperature_c", t0, 50, "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0}},
                       0, reject_reason::not_finite, "Inf");
}

TEST_F(BadInput, ValueOutOfRangeIsRefusedAlone) {
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {machine, "vibration_mm_s", t0, 100.5, "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0}},
                       1, reject_reason::out_of_range, "100.5");
}

TEST_F(BadInput, TimestampBeyondTheAllowedSkewIsRefusedAlone) {
  auto future = twins::wall_ms() + cfg.future_skew_ms + 60'000;
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {machine, "vibration_mm_s", future, 2, "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0}},
                       1, reject_reason::future_timestamp, "in the future");
}

TEST_F(BadInput, ResentSequenceIsRefusedAlone) {
  ASSERT_NO_FATAL_FAILURE(accept_all({{machine, "vibration_mm_s", t0, 2.0, "plc-1", 7}}));
  // The resend carries another time and value so that a wrongly applied
  // copy would show in state and history.
  ASSERT_NO_FATAL_FAILURE(
    expect_refused_alone({{machine, "temperature_c", t0 + 1000, 50, "plc-1", 1},
                          {machine, "vibration_mm_s", t0 + 1000, 2.5, "plc-1", 7},
                          {warehouse, "power_kw", t0 + 1000, 12, "", 0}},
                         1, reject_reason::duplicate_sequence, "sequence 7"));
  auto first = stored(machine, "vibration_mm_s", t0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].value, 2.0);
  EXPECT_EQ(first[0].seq, 7u);
}

TEST_F(BadInput, FractionOfAUnitOnAMovementChannelIsRefusedAlone) {
  ASSERT_NO_FATAL_FAILURE(accept_all({{warehouse, "receipt/SKU-1", t0, 10, "wms", 1}}));
  ASSERT_NO_FATAL_FAILURE(
    expect_refused_alone({{warehouse, "receipt/SKU-2", t0 + 1000, 3, "wms", 1},
                          {warehouse, "receipt/SKU-1", t0 + 1000, 1.5, "wms", 2},
                          {machine, "temperature_c", t0 + 1000, 50, "", 0}},
                         1, reject_reason::not_whole_units, "1.5"));
  auto st = node->get(warehouse)->state;
  EXPECT_EQ(st.stock, (std::map<std::string, int64_t>{{"SKU-1", 10}, {"SKU-2", 3}}));
  // Its sequence number was not used up: the corrected resend goes in.
  ASSERT_NO_FATAL_FAILURE(accept_all({{warehouse, "receipt/SKU-1", t0 + 2000, 2, "wms", 2}}));
  EXPECT_EQ(node->get(warehouse)->state.stock.at("SKU-1"), 12);
}

// -- batches ------------------------------------------------------------------------

TEST_F(BadInput, BatchOverTheLimitIsRefusedWholeNamingItsSize) {
  std::vector<sample> batch;
  for (uint32_t i = 0; i <= cfg.max_batch_samples; ++i)
    batch.push_back({machine, "temperature_c", t0 + i, 20.0 + i, "", 0});
  auto before = leaf_states();
  auto accepted_before = node->probe().accepted();
  auto r = node->ingest(batch);
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::bad_request);
  auto why = describe(r.error());
  EXPECT_NE(why.find(std::to_string(batch.size())), std::string::npos) << why;
  EXPECT_NE(why.find(std::to_string(cfg.max_batch_samples)), std::string::npos) << why;
  EXPECT_EQ(node->probe().accepted(), accepted_before);
  EXPECT_EQ(difference(node->get(machine)->state, before[machine]), "");
  EXPECT_TRUE(node->store()
                .read_history({machine, number_of(machine)}, "temperature_c", t0, t0 + 1000, 100)
                .empty());
}

TEST_F(BadInput, BatchAtTheLimitIsTaken) {
  std::vector<sample> batch;
  for (uint32_t i = 0; i < cfg.max_batch_samples; ++i)
    batch.push_back({machine, "temperature_c", t0 + i, 20.0 + i, "", 0});
  ASSERT_NO_FATAL_FAILURE(accept_all(batch));
  EXPECT_EQ(node->store()
              .read_history({machine, number_of(machine)}, "temperature_c", t0, t0 + 1000, 100)
              .size(),
            cfg.max_batch_samples);
}

// -- creating twins -------------------------------------------------------------------

TEST_F(BadInput, CreateRefusesAnInvalidId) {
  auto before = ids();
  for (std::string id : {std::string(""), line + "/press 2", line + "//press-2",
                         line + "/press-2/", "/" + line, line + "/press-ü"}) {
    auto e = node->create({{id, "machine", line}});
    EXPECT_EQ(code_of(e), errc::bad_request) << "'" << id << "': " << describe(e);
    EXPECT_NE(describe(e).find(id.empty() ? std::string("twin id is empty")
                                          : "'" + twins::printable(id) + "'"),
              std::string::npos)
      << describe(e);
  }
  EXPECT_EQ(ids(), before);
}

TEST_F(BadInput, CreateRefusesAnUnknownKind) {
  auto before = ids();
  auto e = node->create({{line + "/press-2", "lathe", line}});
  EXPECT_EQ(code_of(e), errc::bad_request) << describe(e);
  EXPECT_NE(describe(e).find("lathe"), std::string::npos) << describe(e);
  EXPECT_NE(describe(e).find(line + "/press-2"), std::string::npos) << describe(e);
  EXPECT_EQ(ids(), before);
}

TEST_F(BadInput, CreateRefusesAMissingParent) {
  auto before = ids();
  auto e = node->create({{plant + "/line-9/press-2", "machine", plant + "/line-9"}});
  EXPECT_EQ(code_of(e), errc::unknown_twin) << describe(e);
  EXPECT_NE(describe(e).find("no parent twin " + plant + "/line-9"), std::string::npos)
    << describe(e);
  EXPECT_EQ(ids(), before);
}

TEST_F(BadInput, CreateRefusesAParentOfTheWrongKind) {
  auto before = ids();
  auto e = node->create({{plant + "/press-2", "machine", plant}});
  EXPECT_EQ(code_of(e), errc::conflict) << describe(e);
  EXPECT_NE(describe(e).find("cannot be under a plant"), std::string::npos) << describe(e);
  // A kind that needs a parent cannot be a root either.
  e = node->create({{"press-2", "machine", ""}});
  EXPECT_EQ(code_of(e), errc::bad_request) << describe(e);
  EXPECT_EQ(ids(), before);
}

TEST_F(BadInput, CreateRefusesAnExistingId) {
  ASSERT_NO_FATAL_FAILURE(accept_all({{machine, "temperature_c", t0, 50, "", 0}}));
  auto state_before = node->get(machine)->state;
  auto before = parents();
  // Even with another kind and parent, the existing twin stays as it was.
  auto e = node->create({{machine, "warehouse", enterprise}});
  EXPECT_EQ(code_of(e), errc::conflict) << describe(e);
  EXPECT_NE(describe(e).find(machine + " already exists"), std::string::npos) << describe(e);
  // Twice in one list.
  e = node->create({{line + "/press-2", "machine", line}, {line + "/press-2", "machine", line}});
  EXPECT_EQ(code_of(e), errc::conflict) << describe(e);
  EXPECT_EQ(parents(), before);
  auto view = node->get(machine);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->meta.kind, "machine");
  EXPECT_EQ(difference(view->state, state_before), "");
}

TEST_F(BadInput, CreateOfAListWithOneBadEntryCreatesNone) {
  auto before = ids();
  auto metas_before = node->store().load_metas().size();
  auto e = node->create({{plant + "/line-2", "line", plant},
                         {plant + "/line-2/press-1", "machine", plant + "/line-2"},
                         {plant + "/line-2/press-2", "lathe", plant + "/line-2"}});
  EXPECT_EQ(code_of(e), errc::bad_request) << describe(e);
  EXPECT_EQ(ids(), before);
  EXPECT_EQ(node->store().load_metas().size(), metas_before);
  EXPECT_EQ(code_of(node->get(plant + "/line-2").error()), errc::unknown_twin);
  EXPECT_EQ(node->get(plant)->children, 1u);
  // The good entries can then be created on their own.
  EXPECT_FALSE(node->create({{plant + "/line-2", "line", plant},
                             {plant + "/line-2/press-1", "machine", plant + "/line-2"}}));
}

// -- moving twins ---------------------------------------------------------------------

TEST_F(BadInput, ReparentRefusesAParentOfTheWrongKind) {
  auto before = parents();
  auto e = node->reparent(machine, plant);
  EXPECT_EQ(code_of(e), errc::conflict) << describe(e);
  EXPECT_NE(describe(e).find("cannot be under a plant"), std::string::npos) << describe(e);
  e = node->reparent(machine, warehouse);
  EXPECT_EQ(code_of(e), errc::conflict) << describe(e);
  EXPECT_EQ(parents(), before);
  EXPECT_EQ(node->get(machine)->meta.parent, line);
  EXPECT_EQ(node->get(line)->children, 1u);
}

TEST_F(BadInput, ReparentRefusesACycle) {
  // The built-in kinds are strictly layered, so a cycle among them is always
  // refused for its kind first; an area may nest in an area.
  auto refusals = node->reload_model_texts({{"area.toml", R"(kind = "area"
version = 1
parents = ["plant", "area"]
)"}}).refused;
  ASSERT_TRUE(refusals.empty()) << refusals.front();
  auto a1 = plant + "/area-1";
  auto a2 = a1 + "/area-2";
  auto a3 = a2 + "/area-3";
  ASSERT_FALSE(node->create({{a1, "area", plant}, {a2, "area", a1}, {a3, "area", a2}}));
  auto before = parents();
  for (auto& [id, under] : std::vector<std::pair<std::string, std::string>>{
         {a1, a3}, {a1, a2}, {a2, a3}, {a1, a1}}) {
    auto e = node->reparent(id, under);
    EXPECT_EQ(code_of(e), errc::conflict) << id << " under " << under << ": " << describe(e);
    EXPECT_NE(describe(e).find("cycle"), std::string::npos) << describe(e);
  }
  EXPECT_EQ(parents(), before);
  // A move that makes no cycle is taken.
  EXPECT_FALSE(node->reparent(a3, a1));
  EXPECT_EQ(node->get(a3)->meta.parent, a1);
}

TEST_F(BadInput, ReparentRefusesAnUnknownTwinOrParent) {
  auto before = parents();
  EXPECT_EQ(code_of(node->reparent(line + "/press-9", line)), errc::unknown_twin);
  EXPECT_EQ(code_of(node->reparent(machine, plant + "/line-9")), errc::unknown_twin);
  EXPECT_EQ(parents(), before);
}

// -- model files ----------------------------------------------------------------------

TEST(BadModelFiles, StartWithABrokenModelFileFailsNamingFileLineAndReason) {
  testing::temp_dir data{"bad-model-start"};
  testing::temp_dir models{"bad-model-start-models"};
  write_builtin_models(models.path());
  auto broken = models.path() / "press.toml";
  write_file(broken, broken_model);
  auto cfg = testing::test_config(data.str());
  cfg.models_dir = models.str();
  auto n = runtime::node::start(cfg);
  ASSERT_FALSE(n) << "started with a broken model file";
  EXPECT_EQ(code_of(n.error()), errc::bad_model);
  EXPECT_EQ(describe(n.error()), broken.string() + broken_reason);
  // Once the file is fixed the node starts on the same data directory.
  std::filesystem::remove(broken);
  auto fixed = testing::start_node(cfg);
  EXPECT_TRUE(fixed);
}

TEST_F(BadInput, ReloadWithABrokenFileKeepsTheModelsInForce) {
  std::map<std::string, std::pair<uint32_t, std::string>> before;
  for (auto& m : node->models())
    before[m->kind] = {m->version, m->text};
  testing::temp_dir models{"bad-model-reload"};
  // A good new machine version next to the broken file: all or nothing.
  std::string v2;
  for (auto& m : schemas::builtin_models())
    if (m.file_name == "machine.toml")
      v2 = m.text;
  auto at = v2.find("version = 2");
  ASSERT_NE(at, std::string::npos);
  v2.replace(at, 11, "version = 3");
  v2 += "\n[channels.current_a]\nunit = \"A\"\ntype = \"gauge\"\nmin = 0\nmax = 1000\n";
  write_file(models.path() / "machine.toml", v2);
  write_file(models.path() / "press.toml", broken_model);

  auto refusals = node->reload_models(models.str()).refused;
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0], (models.path() / "press.toml").string() + broken_reason);

  std::map<std::string, std::pair<uint32_t, std::string>> after;
  for (auto& m : node->models())
    after[m->kind] = {m->version, m->text};
  EXPECT_EQ(after, before);
  // The live twin still works under version 2.
  auto r = node->ingest({{machine, "current_a", t0, 5, "", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->rejected.size(), 1u);
  EXPECT_EQ(r->rejected[0].reason, reject_reason::unknown_channel);
}

// -- found by an outside client: every refusal is answered, nothing is cut ----------

TEST_F(BadInput, BatchWhoseOnlySampleHasAnEmptyTwinIdIsAnswered) {
  // This batch once went unanswered and held its in-flight slot for ever:
  // more of them than max_inflight_batches then stopped all ingest.
  for (uint32_t i = 0; i < 2 * cfg.max_inflight_batches + 1; ++i) {
    auto r = node->ingest({{"", "temperature_c", t0, 50, "", 0}});
    ASSERT_TRUE(r) << "batch " << i << ": " << describe(r.error());
    ASSERT_EQ(r->rejected.size(), 1u);
    EXPECT_EQ(r->rejected[0].reason, reject_reason::invalid_name);
    EXPECT_NE(r->rejected[0].message.find("twin id is empty"), std::string::npos)
      << r->rejected[0].message;
  }
  accept_all({{machine, "temperature_c", t0, 50, "", 0}});
}

TEST_F(BadInput, EmptyTwinIdIsRefusedAlone) {
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {"", "temperature_c", t0 + 1, 51, "", 0},
                        {warehouse, "power_kw", t0, 12, "", 0}},
                       1, reject_reason::invalid_name, "twin id is empty");
}

TEST_F(BadInput, TwinIdWithANulByteIsRefusedNotCutAtTheNul) {
  auto before = leaf_states();
  auto evil = warehouse + std::string("\0evil", 5);
  auto r = node->ingest({{evil, "receipt/SKU-1", t0, 5, "", 0}});
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_EQ(r->rejected.size(), 1u);
  EXPECT_EQ(r->rejected[0].reason, reject_reason::invalid_name);
  EXPECT_NE(r->rejected[0].message.find(warehouse + "\\x00evil"), std::string::npos)
    << r->rejected[0].message;
  EXPECT_EQ(r->accepted, 0u);
  EXPECT_EQ(difference(leaf_states()[warehouse], before[warehouse]), "");
  auto made = node->create({{evil, "machine", line}});
  EXPECT_EQ(code_of(made), errc::bad_request);
}

TEST_F(BadInput, TwinIdsWithDotPartsAreNotCreated) {
  auto before = ids();
  for (std::string id : {"acme/./wh-9", "acme/../wh-9", "./acme", "acme/..", "acme/plant-1/."}) {
    SCOPED_TRACE(id);
    auto e = node->create({{id, "warehouse", enterprise}});
    ASSERT_EQ(code_of(e), errc::bad_request) << describe(e);
    EXPECT_NE(describe(e).find("part (parts are names, not paths)"), std::string::npos)
      << describe(e);
  }
  EXPECT_EQ(ids(), before);
  // A dot inside a part is a name like any other.
  ASSERT_FALSE(node->create({{"acme/wh-1.5", "warehouse", enterprise}}));
}

TEST_F(BadInput, TimestampsNotAfterTheEpochAreRefusedAlone) {
  int64_t k = 0;
  for (int64_t ts : {int64_t{0}, int64_t{-5}, std::numeric_limits<int64_t>::min()}) {
    SCOPED_TRACE(ts);
    ++k;
    // A receipt at ts -5 once changed the stock.
    expect_refused_alone({{warehouse, "receipt/SKU-1", t0 + k, 5, "", 0},
                          {warehouse, "receipt/SKU-1", ts, 7, "", 0},
                          {machine, "temperature_c", t0 + k, 50, "", 0}},
                         1, reject_reason::bad_timestamp, "is not after 1970-01-01");
  }
}

TEST_F(BadInput, OversizedSkuIsRefusedAndNeverReachesARollup) {
  auto before = leaf_states();
  auto sku = std::string(1 << 20, 'S');
  auto r = node->ingest({{warehouse, "receipt/" + sku, t0, 5, "", 0},
                         {warehouse, "receipt/SKU-1", t0, 5, "", 0}});
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_EQ(r->rejected.size(), 1u);
  auto& rej = r->rejected[0];
  EXPECT_EQ(rej.index, 0u);
  EXPECT_EQ(rej.reason, reject_reason::invalid_name);
  EXPECT_NE(rej.message.find("SKU of 1048576 bytes is over the limit of 64"), std::string::npos)
    << rej.message.substr(0, 300);
  EXPECT_LT(rej.message.size(), 1000u) << "the answer must not carry the 1 MB name";
  EXPECT_EQ(r->accepted, 1u);
  auto wh = node->get(warehouse);
  ASSERT_TRUE(wh);
  EXPECT_EQ(wh->state.stock.count(sku), 0u);
  EXPECT_EQ(wh->state.stock.at("SKU-1"), before[warehouse].stock["SKU-1"] + 5);
  auto top = node->get(enterprise);
  ASSERT_TRUE(top);
  for (auto& [name, units] : top->state.stock)
    EXPECT_LE(name.size(), twins::max_sku_bytes) << "a rollup holds an oversized SKU";
}

TEST_F(BadInput, OversizedTwinIdIsRefusedForItsLength) {
  auto id = "acme/" + std::string(1 << 20, 'x');
  auto r = node->ingest({{id, "temperature_c", t0, 50, "", 0}});
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_EQ(r->rejected.size(), 1u);
  EXPECT_EQ(r->rejected[0].reason, reject_reason::invalid_name);
  EXPECT_NE(r->rejected[0].message.find("twin id of 1048581 bytes is over the limit of 512"),
            std::string::npos)
    << r->rejected[0].message.substr(0, 300);
  EXPECT_LT(r->rejected[0].message.size(), 1000u);
  auto e = node->create({{id, "machine", line}});
  ASSERT_EQ(code_of(e), errc::bad_request);
  EXPECT_NE(describe(e).find("over the limit of 512"), std::string::npos);
  EXPECT_EQ(describe(e).find("letters"), std::string::npos) << "names the wrong rule";
}

TEST_F(BadInput, OversizedChannelNameIsRefusedForItsLength) {
  expect_refused_alone({{machine, "temperature_c", t0, 50, "", 0},
                        {machine, std::string(65, 'c'), t0, 1, "", 0}},
                       1, reject_reason::invalid_name, "channel name of 65 bytes is over the limit of 64");
}

TEST_F(BadInput, ModelThatNarrowsARangeBelowStoredValuesWarnsNamingTheTwins) {
  accept_all({{machine, "temperature_c", t0, 95, "", 0}});
  std::string text;
  for (auto& m : schemas::builtin_models())
    if (m.file_name == "machine.toml")
      text = m.text;
  auto bump = [&](const std::string& from, const std::string& to) {
    auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  bump("version = 2\n", "version = 3\n");
  bump("min = -40.0\nmax = 400.0\n", "min = -40.0\nmax = 80.0\n");
  auto load = node->reload_model_texts({{"machine.toml", text}});
  ASSERT_TRUE(load.refused.empty()) << load.refused.front();
  ASSERT_EQ(load.warnings.size(), 1u);
  EXPECT_EQ(load.warnings[0],
            "machine v3: " + machine + " temperature_c = 95, outside [-40, 80] degC");
  // The stored value stays; a new one beyond the range is refused.
  EXPECT_EQ(node->get(machine)->state.channels.at("temperature_c").value, 95);
  auto r = node->ingest({{machine, "temperature_c", t0 + 1, 90, "", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->rejected.size(), 1u);
  EXPECT_EQ(r->rejected[0].reason, reject_reason::out_of_range);
}

} // namespace
} // namespace twinrt
