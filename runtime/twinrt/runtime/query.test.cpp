#include "twinrt/runtime/query.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "twinrt/twins/predicate.hpp"

namespace twinrt::runtime {

namespace {

using twins::health_status;

twins::twin_state machine_state(double vibration, double power, health_status h = health_status::ok,
                                uint64_t version = 1) {
  twins::twin_state st;
  st.version = version;
  st.channels["vibration_mm_s"] = {vibration, 1000};
  st.channels["power_kw"] = {power, 1000};
  st.status = h;
  st.score = h == health_status::ok ? 100 : 50;
  return st;
}

// acme; plant-1 with line-1 (m1, m2, m3); plant-2 with line-1 (m4, m5).
class QueryIndex : public ::testing::Test {
protected:
  void SetUp() override {
    add("acme", "enterprise", "");
    add("acme/plant-1", "plant", "acme");
    add("acme/plant-1/line-1", "line", "acme/plant-1");
    add("acme/plant-2", "plant", "acme");
    add("acme/plant-2/line-1", "line", "acme/plant-2");
    add("acme/plant-1/line-1/m1", "machine", "acme/plant-1/line-1", machine_state(1.5, 40));
    add("acme/plant-1/line-1/m2", "machine", "acme/plant-1/line-1",
        machine_state(5.0, 70, health_status::warning));
    add("acme/plant-1/line-1/m3", "machine", "acme/plant-1/line-1",
        machine_state(8.0, 10, health_status::alarm));
    add("acme/plant-2/line-1/m4", "machine", "acme/plant-2/line-1", machine_state(2.0, 25));
    add("acme/plant-2/line-1/m5", "machine", "acme/plant-2/line-1", machine_state(3.0, 55));
  }

  void add(const std::string& id, const std::string& kind, const std::string& parent,
           twins::twin_state st = {}) {
    auto number = next_number_++;
    numbers_[id] = number;
    index_.insert({id, number, kind, parent}, st);
  }

  query_page run(query_request q) {
    auto page = index_.run(q);
    EXPECT_TRUE(page) << describe(page.error());
    return page ? *page : query_page{};
  }

  std::vector<std::string> ids(query_request q) {
    std::vector<std::string> out;
    for (auto& h : run(std::move(q)).hits)
      out.push_back(h.id);
    return out;
  }

  // Every page of `q`, following the tokens.
  std::vector<std::string> all_pages(query_request q) {
    std::vector<std::string> out;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = run(q);
      for (auto& h : page.hits)
        out.push_back(h.id);
      if (page.next_page_token.empty())
        break;
      q.page_token = page.next_page_token;
    }
    return out;
  }

  std::string refusal(query_request q) {
    auto page = index_.run(q);
    EXPECT_FALSE(page) << "accepted";
    return page ? "" : describe(page.error());
  }

  query_index index_;
  std::map<std::string, uint32_t> numbers_;
  uint32_t next_number_ = 1;
};

const std::string m1 = "acme/plant-1/line-1/m1";
const std::string m2 = "acme/plant-1/line-1/m2";
const std::string m3 = "acme/plant-1/line-1/m3";
const std::string m4 = "acme/plant-2/line-1/m4";
const std::string m5 = "acme/plant-2/line-1/m5";

} // namespace

TEST_F(QueryIndex, WithoutFiltersEveryTwinIsAnsweredInIdOrder) {
  auto page = run({});
  EXPECT_EQ(page.total, 10u);
  ASSERT_EQ(page.hits.size(), 10u);
  EXPECT_EQ(page.hits.front().id, "acme");
  EXPECT_TRUE(std::is_sorted(page.hits.begin(), page.hits.end(),
                             [](auto& a, auto& b) { return a.id < b.id; }));
  EXPECT_EQ(page.next_page_token, "");
  EXPECT_EQ(page.hits[0].number, numbers_["acme"]);
}

TEST_F(QueryIndex, FiltersByKind) {
  query_request q;
  q.kind = "machine";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m1, m2, m3, m4, m5}));
  q.kind = "line";
  EXPECT_EQ(ids(q), (std::vector<std::string>{"acme/plant-1/line-1", "acme/plant-2/line-1"}));
  q.kind = "vehicle"; // no twin of it
  EXPECT_EQ(run(q).total, 0u);
}

TEST_F(QueryIndex, SubtreeIsTheTwinAndEverythingBelowIt) {
  query_request q;
  q.subtree = "acme/plant-2";
  EXPECT_EQ(ids(q), (std::vector<std::string>{"acme/plant-2", "acme/plant-2/line-1", m4, m5}));
  q.kind = "machine";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m4, m5}));
  q.subtree = "acme/plant-9";
  EXPECT_EQ(run(q).total, 0u) << "an unknown subtree holds nothing";
}

TEST_F(QueryIndex, SubtreeFollowsTheRollupTreeAfterAReparent) {
  index_.reparent(m1, "acme/plant-2/line-1");
  query_request q;
  q.kind = "machine";
  q.subtree = "acme/plant-2";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m1, m4, m5})) << "ids play no part";
  q.subtree = "acme/plant-1";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m2, m3}));
  // A line moved with its machines: they go with it.
  add("acme/plant-3", "plant", "acme");
  index_.reparent("acme/plant-2/line-1", "acme/plant-3");
  q.subtree = "acme/plant-3";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m1, m4, m5}));
}

TEST_F(QueryIndex, FiltersByHealth) {
  query_request q;
  q.health = {health_status::alarm};
  EXPECT_EQ(ids(q), std::vector<std::string>{m3});
  q.health = {health_status::ok, health_status::warning};
  q.kind = "machine";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m1, m2, m4, m5}));
  // Health follows an update.
  index_.update(m3, numbers_[m3], machine_state(1, 10, health_status::ok, 2));
  EXPECT_EQ(ids(q), (std::vector<std::string>{m1, m2, m3, m4, m5}));
}

TEST_F(QueryIndex, PredicateReadsChannelsDerivedValuesAndRollupSums) {
  query_request q;
  q.where = "vibration_mm_s > 4.5";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m2, m3}));
  q.where = "vibration_mm_s > 1.7 and power_kw >= 55";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m2, m5}));

  auto st = machine_state(2.0, 25, health_status::ok, 2);
  st.analytics.derived["rul_hours"] = 40;
  index_.update(m4, numbers_[m4], st);
  q.where = "rul_hours < 72";
  EXPECT_EQ(ids(q), std::vector<std::string>{m4});

  twins::twin_state line;
  line.version = 2;
  line.own.sums["power_kw"] = 120;
  line.own.sums["stock/SKU-1"] = 4;
  index_.update("acme/plant-1/line-1", numbers_["acme/plant-1/line-1"], line);
  q.kind = "line";
  q.where = "power_kw > 100";
  EXPECT_EQ(ids(q), std::vector<std::string>{"acme/plant-1/line-1"});
  // Stock and counts a twin does not hold read as 0, as value_of() reads them.
  q.where = "stock/SKU-1 < 1";
  EXPECT_EQ(ids(q), std::vector<std::string>{"acme/plant-2/line-1"});
  q.where = "count/never_seen == 0";
  EXPECT_EQ(run(q).total, 2u);
  // Any other name no twin has matches nothing.
  q.where = "colour > 0";
  EXPECT_EQ(run(q).total, 0u);
}

TEST_F(QueryIndex, PredicateAgreesWithValueOfOnEveryTwin) {
  // The index answers what twins::predicate::matches would on the states.
  std::map<std::string, twins::twin_state> states;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 10);
  for (int i = 0; i < 50; ++i) {
    auto id = "acme/plant-1/line-1/x" + std::to_string(i);
    auto st = machine_state(u(rng), u(rng) * 10);
    if (i % 3 == 0)
      st.analytics.derived["rul_hours"] = u(rng) * 20;
    if (i % 4 == 0)
      st.own.sums["stock/SKU-1"] = static_cast<int>(u(rng));
    add(id, "machine", "acme/plant-1/line-1", st);
    states[id] = st;
  }
  for (auto where : {"vibration_mm_s > 5", "rul_hours <= 100 and power_kw != 3",
                     "stock/SKU-1 < 3", "score == 100 and health == 0", "energy_kwh == 0"}) {
    auto pred = std::get<twins::predicate>(twins::predicate::parse(where));
    std::vector<std::string> expected;
    for (auto& [id, st] : states)
      if (pred.matches(st))
        expected.push_back(id);
    query_request q;
    q.subtree = "acme/plant-1/line-1";
    q.where = where;
    q.limit = 1000;
    auto got = ids(q);
    got.erase(std::remove_if(got.begin(), got.end(),
                             [&](auto& id) { return states.count(id) == 0; }),
              got.end());
    EXPECT_EQ(got, expected) << where;
  }
}

TEST_F(QueryIndex, SortsByAValueAscendingOrDescendingWithTiesById) {
  index_.update(m4, numbers_[m4], machine_state(2.0, 70, health_status::ok, 2)); // ties m2
  query_request q;
  q.kind = "machine";
  q.sort_by = "power_kw";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m3, m1, m5, m2, m4}));
  q.descending = true;
  EXPECT_EQ(ids(q), (std::vector<std::string>{m2, m4, m5, m1, m3}))
    << "ties go by id ascending either way";
  q.sort_by = "id";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m5, m4, m3, m2, m1}));
}

TEST_F(QueryIndex, TwinsWithoutTheSortValueComeLast) {
  query_request q;
  q.subtree = "acme/plant-2";
  q.sort_by = "vibration_mm_s";
  q.descending = true;
  EXPECT_EQ(ids(q),
            (std::vector<std::string>{m5, m4, "acme/plant-2", "acme/plant-2/line-1"}));
  q.limit = 1;
  EXPECT_EQ(all_pages(q),
            (std::vector<std::string>{m5, m4, "acme/plant-2", "acme/plant-2/line-1"}));
}

TEST_F(QueryIndex, PagesSeeEveryTwinOnceAndCountThemAll) {
  query_request q;
  q.limit = 3;
  auto first = run(q);
  EXPECT_EQ(first.hits.size(), 3u);
  EXPECT_EQ(first.total, 10u);
  EXPECT_EQ(first.next_page_token, "i:" + first.hits.back().id);
  auto seen = all_pages(q);
  auto expected = ids({});
  EXPECT_EQ(seen, expected);
}

TEST_F(QueryIndex, PagingIsNotShiftedByTwinsInsertedOrDeletedBetweenPages) {
  query_request q;
  q.limit = 4;
  auto first = run(q);
  std::vector<std::string> seen;
  for (auto& h : first.hits)
    seen.push_back(h.id);
  add("a-first", "enterprise", ""); // sorts before every twin seen
  index_.erase(seen.back());        // one already seen goes
  q.page_token = first.next_page_token;
  auto rest = all_pages(q);
  seen.insert(seen.end(), rest.begin(), rest.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"acme", "acme/plant-1", "acme/plant-1/line-1", m1,
                                            m2, m3, "acme/plant-2", "acme/plant-2/line-1", m4,
                                            m5}));
}

TEST_F(QueryIndex, PagingByValueFollowsTheOrderAcrossUpdatesAndDeletes) {
  query_request q;
  q.kind = "machine";
  q.sort_by = "power_kw";
  q.descending = true;
  q.limit = 2;
  auto first = run(q);
  ASSERT_EQ(first.hits.size(), 2u);
  EXPECT_EQ(first.hits[0].id, m2);
  EXPECT_EQ(first.hits[1].id, m5);
  EXPECT_EQ(first.next_page_token, "v:55:" + m5);
  index_.erase(m4);
  q.page_token = first.next_page_token;
  EXPECT_EQ(all_pages(q), (std::vector<std::string>{m1, m3}));
}

TEST_F(QueryIndex, UpdatesReplaceValuesAndDropThoseATwinNoLongerHas) {
  auto st = machine_state(9, 40, health_status::alarm, 5);
  st.channels.erase("power_kw");
  index_.update(m1, numbers_[m1], st);
  query_request q;
  q.where = "power_kw > 0";
  q.kind = "machine";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m2, m3, m4, m5}));
  q.where = "vibration_mm_s > 8.5";
  auto page = run(q);
  ASSERT_EQ(page.hits.size(), 1u);
  EXPECT_EQ(page.hits[0].id, m1);
  EXPECT_EQ(page.hits[0].version, 5u) << "the version the index matched";
}

TEST_F(QueryIndex, DeletedTwinIsGoneAndItsOldActorCannotWriteOverItsSuccessor) {
  index_.erase(m3);
  query_request q;
  q.kind = "machine";
  EXPECT_EQ(ids(q), (std::vector<std::string>{m1, m2, m4, m5}));
  auto old_number = numbers_[m3];
  index_.update(m3, old_number, machine_state(99, 1)); // deleted: ignored
  EXPECT_EQ(run(q).total, 4u);
  // A new twin of the same id, then a late update from the deleted one's actor.
  add(m3, "machine", "acme/plant-1/line-1", machine_state(1, 1));
  index_.update(m3, old_number, machine_state(99, 1));
  q.where = "vibration_mm_s > 50";
  EXPECT_EQ(run(q).total, 0u);
  index_.update(m3, numbers_[m3], machine_state(99, 1));
  EXPECT_EQ(run(q).total, 1u);
}

TEST_F(QueryIndex, LoadTakesChildrenBeforeTheirParents) {
  query_index fresh;
  fresh.load({{"a/b/c", 3, "machine", "a/b"}, {"a/b", 2, "line", "a"}, {"a", 1, "plant", ""}});
  fresh.update("a/b/c", 3, machine_state(1, 2));
  query_request q;
  q.subtree = "a";
  q.where = "power_kw == 2";
  auto page = fresh.run(q);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->hits.size(), 1u);
  EXPECT_EQ(page->hits[0].id, "a/b/c");
  EXPECT_EQ(fresh.size(), 3u);
}

TEST_F(QueryIndex, ManyTwinsAcrossChunksPageLikeASortedList) {
  // More twins than a chunk holds, some deleted and replaced, against a
  // plain sort of the same values.
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> v(0, 50); // many ties
  std::map<std::string, double> power;
  for (int i = 0; i < 3000; ++i) {
    auto id = "acme/plant-2/line-1/n" + std::to_string(i);
    double p = v(rng);
    add(id, "machine", "acme/plant-2/line-1", machine_state(1, p));
    power[id] = p;
  }
  for (int i = 0; i < 3000; i += 7) {
    auto id = "acme/plant-2/line-1/n" + std::to_string(i);
    index_.erase(id);
    power.erase(id);
  }
  for (int i = 0; i < 300; ++i) {
    auto id = "acme/plant-2/line-1/r" + std::to_string(i);
    double p = v(rng);
    add(id, "machine", "acme/plant-2/line-1", machine_state(1, p));
    power[id] = p;
  }
  power[m4] = 25;
  power[m5] = 55;
  std::vector<std::pair<double, std::string>> expected;
  for (auto& [id, p] : power)
    expected.emplace_back(-p, id);
  std::sort(expected.begin(), expected.end());
  query_request q;
  q.subtree = "acme/plant-2";
  q.kind = "machine";
  q.sort_by = "power_kw";
  q.descending = true;
  q.limit = 97;
  EXPECT_EQ(run(q).total, expected.size());
  auto got = all_pages(q);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], expected[i].second) << "at " << i;
  EXPECT_GT(index_.memory_bytes(), index_.size() * sizeof(double));
}

TEST_F(QueryIndex, BadRequestsNameTheInputAndTheReason) {
  query_request q;
  q.limit = 5000;
  EXPECT_EQ(refusal(q), "page size 5000 is over the limit of 1000");
  q = {};
  q.where = "vibration_mm_s >";
  EXPECT_EQ(refusal(q),
            "bad predicate 'vibration_mm_s >': expected a number after 'vibration_mm_s', got ''");
  q = {};
  q.page_token = "17";
  EXPECT_EQ(refusal(q), "bad page token '17'");
  q.sort_by = "power_kw";
  q.page_token = "i:acme"; // an id token for a sort by value
  EXPECT_EQ(refusal(q), "bad page token 'i:acme'");
  q.page_token = "v:x:acme";
  EXPECT_EQ(refusal(q), "bad page token 'v:x:acme'");
  auto page = index_.run(q);
  EXPECT_EQ(code_of(page.error()), errc::bad_request);
}

// -- history -----------------------------------------------------------------------

namespace {

std::vector<history_point> points(int64_t t0, const std::vector<double>& values,
                                  int64_t every_ms = 1000) {
  std::vector<history_point> out;
  for (size_t i = 0; i < values.size(); ++i)
    out.push_back({t0 + static_cast<int64_t>(i) * every_ms, values[i], 2, "", 0});
  return out;
}

} // namespace

TEST(History, RawPointsPassThroughOneEach) {
  auto raw = downsample(points(10'000, {3, 1, 4}), 0, 100);
  ASSERT_EQ(raw.size(), 3u);
  EXPECT_EQ(raw[1].ts_ms, 11'000);
  EXPECT_EQ(raw[1].mean, 1);
  EXPECT_EQ(raw[1].min, 1);
  EXPECT_EQ(raw[1].last, 1);
  EXPECT_EQ(raw[1].count, 1u);
  EXPECT_EQ(raw[1].model_version, 2u);
  EXPECT_EQ(downsample(points(10'000, {3, 1, 4}), 0, 2).size(), 2u);
}

TEST(History, StepsFallOnMultiplesOfTheStepAndSummariseTheirPoints) {
  // From t0 + 2 s, 5 s steps: the first holds 2..4 s and starts at t0.
  auto steps = downsample(points(12'000, {4, 1, 5, 9, 2, 6, 5, 3}), 5'000, 100);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].ts_ms, 10'000);
  EXPECT_EQ(steps[0].count, 3u);
  EXPECT_EQ(steps[0].min, 1);
  EXPECT_EQ(steps[0].max, 5);
  EXPECT_DOUBLE_EQ(steps[0].mean, 10.0 / 3);
  EXPECT_EQ(steps[0].last, 5);
  EXPECT_EQ(steps[1].ts_ms, 15'000);
  EXPECT_EQ(steps[1].count, 5u);
  EXPECT_EQ(steps[1].max, 9);
  EXPECT_EQ(steps[1].last, 3);
}

TEST(History, StepsWithoutPointsAreLeftOutAndTheLimitCounts) {
  auto pts = points(0, {1, 2});
  auto late = points(60'000, {7});
  pts.insert(pts.end(), late.begin(), late.end());
  auto steps = downsample(pts, 10'000, 100);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[1].ts_ms, 60'000);
  EXPECT_EQ(downsample(pts, 10'000, 1).size(), 1u);
}

TEST(History, StepsBeforeTheEpochStartOnMultiplesToo) {
  auto steps = downsample(points(-3'000, {1, 2, 3, 4, 5}), 5'000, 100);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].ts_ms, -5'000);
  EXPECT_EQ(steps[0].count, 3u);
  EXPECT_EQ(steps[1].ts_ms, 0);
  EXPECT_EQ(steps[1].count, 2u);
}

TEST(History, RequestsGetDefaultsAndBadOnesAreRefusedWithTheirNumbers) {
  auto r = checked({"m", "c", 0, 0, 0, 0});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->to_ms, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(r->limit, history_request::default_points);
  auto big = checked({"m", "c", 0, 10, 0, 200'000});
  ASSERT_FALSE(big);
  EXPECT_EQ(describe(big.error()), "limit 200000 is over the limit of 100000 points");
  auto backwards = checked({"m", "c", 5, 1, 0, 0});
  ASSERT_FALSE(backwards);
  EXPECT_EQ(describe(backwards.error()), "bad time range: from 5 to 1 step 0");
  EXPECT_EQ(code_of(backwards.error()), errc::bad_request);
}

} // namespace twinrt::runtime
