// Every path that addresses a twin by id goes through the node's
// shard_directory, and a virtual shard that nobody owns is refused, not
// waited for.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>

#include "support.hpp"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/shard_directory.hpp"
#include "twinrt/schemas/builtin_models.hpp"

namespace twinrt {
namespace {

using runtime::code_of;
using runtime::describe;
using runtime::errc;
using testing::eventually;

// Sends every virtual shard to the node's first shard actor: a path that
// routed by itself would reach the others.
class funnel final : public runtime::shard_directory {
public:
  funnel(uint32_t virtual_shards, runtime::shard_actor only)
    : shard_directory(virtual_shards), only_(std::move(only)) {}
  caf::expected<runtime::shard_actor> owner(uint32_t) const override { return only_; }

private:
  runtime::shard_actor only_;
};

// Whether odd virtual shards have an owner now, and how often one was
// asked for in vain, by shard.
struct outage {
  std::atomic<bool> on{false};
  std::mutex mtx;
  std::map<uint32_t, int> refused;

  int refusals(uint32_t shard) {
    std::lock_guard<std::mutex> g(mtx);
    return refused[shard];
  }
};

// The local directory, except that during an outage odd virtual shards have
// no owner, as during a shard move in a cluster.
class outage_directory final : public runtime::shard_directory {
public:
  outage_directory(uint32_t virtual_shards, std::vector<runtime::shard_actor> actors,
                   std::shared_ptr<outage> state)
    : shard_directory(virtual_shards), actors_(std::move(actors)), state_(std::move(state)) {}
  caf::expected<runtime::shard_actor> owner(uint32_t shard) const override {
    if (state_->on.load() && shard % 2 == 1) {
      std::lock_guard<std::mutex> g(state_->mtx);
      ++state_->refused[shard];
      return runtime::make_error(errc::unavailable, "virtual shard " + std::to_string(shard)
                                                      + " has no owner now; retry later");
    }
    return actors_[shard % actors_.size()];
  }

private:
  std::vector<runtime::shard_actor> actors_;
  std::shared_ptr<outage> state_;
};

std::vector<runtime::twin_spec> plant(int lines, int machines) {
  std::vector<runtime::twin_spec> specs{{"acme", "enterprise", ""},
                                        {"acme/plant-1", "plant", "acme"}};
  for (int l = 0; l < lines; ++l) {
    auto line = "acme/plant-1/line-" + std::to_string(l);
    specs.push_back({line, "line", "acme/plant-1"});
    for (int m = 0; m < machines; ++m)
      specs.push_back({line + "/m-" + std::to_string(m), "machine", line});
  }
  return specs;
}

// The built-in machine model as version 3; `never_stale`: without staleness,
// whose sweep would otherwise make a machine send its contribution again.
std::string machine_v3(bool never_stale = false) {
  std::string text;
  for (auto& m : schemas::builtin_models())
    if (m.file_name == "machine.toml")
      text = m.text;
  auto swap = [&](const std::string& from, const std::string& to) {
    if (auto at = text.find(from); at != std::string::npos)
      text.replace(at, from.size(), to);
  };
  swap("version = 2\n", "version = 3\n");
  if (never_stale)
    swap("stale_after_s = 30\n", "stale_after_s = 0\n");
  return text;
}

TEST(Routing, DataKeepsTheVirtualShardCountItWasCreatedWith) {
  testing::temp_dir dir("routing-count");
  auto cfg = testing::test_config(dir.str());
  cfg.virtual_shards = 64;
  {
    auto node = testing::start_node(cfg);
    ASSERT_TRUE(node);
    EXPECT_EQ(node->directory().virtual_shards(), 64u);
    ASSERT_FALSE(node->create(plant(1, 3)));
  }
  cfg.virtual_shards = 256;
  auto node = testing::start_node(cfg);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->directory().virtual_shards(), 64u) << "the stored count wins";
  auto r = node->ingest({{"acme/plant-1/line-0/m-1", "temperature_c", twins::wall_ms(), 50, "", 0}});
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->accepted, 1u);

  testing::temp_dir fresh("routing-fresh");
  auto other = testing::start_node(testing::test_config(fresh.str()));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->directory().virtual_shards(), 256u);
}

TEST(Routing, EveryPathGoesThroughTheDirectoryTheNodeIsGiven) {
  testing::temp_dir dir("routing-funnel");
  auto cfg = testing::test_config(dir.str()); // 3 shard actors
  auto started = runtime::node::start(cfg, [](uint32_t n, std::vector<runtime::shard_actor> local) {
    return std::make_unique<funnel>(n, local.at(0));
  });
  ASSERT_TRUE(started) << describe(started.error());
  auto node = std::move(*started);
  ASSERT_FALSE(node->create(plant(3, 10)));
  std::vector<twins::sample> batch;
  auto now = twins::wall_ms();
  for (auto& t : node->twins())
    if (t.kind == "machine")
      batch.push_back({t.id, "power_kw", now, 10, "", 0});
  auto r = node->ingest(batch);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->accepted, 30u);
  ASSERT_FALSE(node->reparent("acme/plant-1/line-0/m-0", "acme/plant-1/line-1"));
  ASSERT_FALSE(node->remove("acme/plant-1/line-2/m-9"));
  ASSERT_TRUE(node->reload_model_texts({{"machine.toml", machine_v3()}}).refused.empty());
  EXPECT_TRUE(eventually([&] {
    auto m = node->get("acme/plant-1/line-2/m-0");
    return m && m->state.model_version == 3;
  }, std::chrono::seconds(60))) << "the model reload reached the twins through the directory";
  EXPECT_TRUE(eventually([&] {
    auto root = node->get("acme");
    return root && root->state.own == testing::fold_of_children(*node, "acme")
           && root->state.own.sums.count("power_kw")
           && root->state.own.sums.at("power_kw") == 290;
  }, std::chrono::seconds(60)));
  for (auto& m : node->get_many({"acme/plant-1/line-1/m-0", "acme/plant-1/line-0/m-0"}))
    ASSERT_TRUE(m) << describe(m.error());
  auto& probe = node->probe();
  EXPECT_GT(probe.shard(0).active_twins.load(), 0u);
  EXPECT_EQ(probe.shard(1).active_twins.load(), 0u) << "a twin was routed around the directory";
  EXPECT_EQ(probe.shard(2).active_twins.load(), 0u) << "a twin was routed around the directory";
}

class RoutingOutage : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = std::make_unique<testing::temp_dir>("routing-outage");
    auto started = runtime::node::start(
      testing::test_config(dir_->str()), [o = outage_](uint32_t n, std::vector<runtime::shard_actor> local) {
        return std::make_unique<outage_directory>(n, std::move(local), o);
      });
    ASSERT_TRUE(started) << describe(started.error());
    node_ = std::move(*started);
    ASSERT_FALSE(node_->create(plant(8, 6)));
  }

  bool orphaned(const std::string& id) const {
    return node_->directory().shard_of(id) % 2 == 1;
  }

  // A machine whose shard has an owner during the outage (`with_owner`) or not.
  std::string machine(bool with_owner) const {
    for (auto& t : node_->twins())
      if (t.kind == "machine" && orphaned(t.id) != with_owner)
        return t.id;
    ADD_FAILURE() << "no machine " << (with_owner ? "with" : "without") << " an owner";
    return "";
  }

  std::shared_ptr<outage> outage_ = std::make_shared<outage>();
  std::unique_ptr<testing::temp_dir> dir_;
  std::unique_ptr<runtime::node> node_;
};

TEST_F(RoutingOutage, RequestsForATwinWithoutOwnerAreRefusedAndChangeNothing) {
  auto lost = machine(false), kept = machine(true);
  auto now = twins::wall_ms();
  std::vector<twins::sample> batch{{kept, "power_kw", now, 5, "", 0},
                                   {lost, "power_kw", now, 7, "", 0}};
  outage_->on = true;

  auto r = node_->ingest(batch);
  ASSERT_FALSE(r) << "a batch with a twin nobody owns was taken";
  EXPECT_EQ(code_of(r.error()), errc::unavailable);
  EXPECT_NE(describe(r.error()).find("twin " + lost + ": virtual shard"), std::string::npos)
    << describe(r.error());
  auto only_kept = node_->ingest({batch[0]});
  ASSERT_TRUE(only_kept) << describe(only_kept.error());
  EXPECT_EQ(only_kept->accepted, 1u);

  EXPECT_EQ(code_of(node_->get(lost).error()), errc::unavailable);
  EXPECT_TRUE(node_->get(kept));
  auto both = node_->get_many({lost, kept});
  EXPECT_EQ(code_of(both[0].error()), errc::unavailable);
  EXPECT_TRUE(both[1]);

  std::string fresh;
  for (int i = 0; fresh.empty() || !orphaned(fresh); ++i)
    fresh = "acme/plant-1/line-0/new-" + std::to_string(i);
  auto count = node_->twin_count();
  EXPECT_EQ(code_of(node_->create({{fresh, "machine", "acme/plant-1/line-0"}})),
            errc::unavailable);
  EXPECT_EQ(node_->twin_count(), count);
  EXPECT_EQ(code_of(node_->remove(lost)), errc::unavailable);
  EXPECT_EQ(code_of(node_->reparent(lost, "acme/plant-1/line-7")), errc::unavailable);
  EXPECT_EQ(node_->twin_count(), count);

  outage_->on = false;
  r = node_->ingest(batch);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->accepted, 2u);
  auto after = node_->get(lost);
  ASSERT_TRUE(after) << describe(after.error());
  EXPECT_EQ(after->meta.parent.rfind("acme/plant-1/line-", 0), 0u);
  EXPECT_NE(after->meta.parent, "acme/plant-1/line-7") << "the refused move happened";
}

TEST_F(RoutingOutage, AContributionToAParentWithoutOwnerArrivesOnceItHasOne) {
  // A machine that keeps its owner under a line that loses its own.
  std::string line, child;
  for (auto& t : node_->twins())
    if (t.kind == "machine" && !orphaned(t.id) && orphaned(t.parent)) {
      line = t.parent, child = t.id;
      break;
    }
  ASSERT_FALSE(child.empty()) << "no machine with an owner under a line without one";
  // Nothing but the retry may bring the contribution up later.
  ASSERT_TRUE(node_->reload_model_texts({{"machine.toml", machine_v3(true)}}).refused.empty());
  ASSERT_TRUE(node_->get(line)); // in memory, with its fold: not reread from storage later
  auto line_shard = node_->directory().shard_of(line);
  outage_->on = true;
  auto r = node_->ingest({{child, "power_kw", twins::wall_ms(), 42, "", 0}});
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->accepted, 1u);
  // The machine tried to hand its contribution up, and found no owner.
  EXPECT_TRUE(eventually([&] { return outage_->refusals(line_shard) > 0; },
                         std::chrono::seconds(60)));
  EXPECT_EQ(code_of(node_->get(line).error()), errc::unavailable);
  outage_->on = false;
  EXPECT_TRUE(eventually([&] {
    auto l = node_->get(line);
    return l && l->state.own.sums.count("power_kw") && l->state.own.sums.at("power_kw") == 42
           && l->state.own == testing::fold_of_children(*node_, line);
  }, std::chrono::seconds(60))) << line << " never took " << child << "'s contribution";
}

TEST_F(RoutingOutage, ADropForAParentWithoutOwnerArrivesOnceItHasOne) {
  // A machine that keeps its owner leaves a line that loses its own.
  std::string line, child, other_line;
  for (auto& t : node_->twins()) {
    if (t.kind == "machine" && !orphaned(t.id) && orphaned(t.parent) && child.empty())
      line = t.parent, child = t.id;
    if (t.kind == "line" && !orphaned(t.id))
      other_line = t.id;
  }
  ASSERT_FALSE(child.empty()) << "no machine with an owner under a line without one";
  ASSERT_FALSE(other_line.empty()) << "no line with an owner";
  ASSERT_TRUE(node_->reload_model_texts({{"machine.toml", machine_v3(true)}}).refused.empty());
  ASSERT_TRUE(node_->ingest({{child, "power_kw", twins::wall_ms(), 42, "", 0}}));
  ASSERT_TRUE(eventually([&] {
    auto l = node_->get(line);
    return l && l->state.own.sums.count("power_kw") && l->state.own.sums.at("power_kw") == 42;
  }, std::chrono::seconds(60))) << line << " never took " << child << "'s contribution";
  auto line_shard = node_->directory().shard_of(line);
  outage_->on = true;
  ASSERT_FALSE(node_->reparent(child, other_line));
  EXPECT_TRUE(eventually([&] { return outage_->refusals(line_shard) > 0; },
                         std::chrono::seconds(60)));
  outage_->on = false;
  EXPECT_TRUE(eventually([&] {
    auto l = node_->get(line);
    return l && l->state.own == testing::fold_of_children(*node_, line);
  }, std::chrono::seconds(60))) << line << " still counts " << child << ", which left it";
}

} // namespace
} // namespace twinrt
