#include "twinrt/twins/rollup.hpp"

#include <algorithm>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace twinrt::twins {

// Readable failure messages; the same definition is in twin_state.test.cpp.
inline void PrintTo(health_status s, std::ostream* os) { *os << to_string(s); }

namespace {

// What a leaf twin in `status` with `sums` hands its parent.
contribution leaf(std::string id, health_status status,
                  std::map<std::string, double> sums = {}) {
  contribution c;
  c.sums = std::move(sums);
  c.counts[static_cast<size_t>(status)] = 1;
  c.score_sum = status_score(status);
  c.score_count = 1;
  c.worst_id = std::move(id);
  c.worst_status = status;
  return c;
}

int64_t count_of(const contribution& c, health_status s) {
  return c.counts[static_cast<size_t>(s)];
}

TEST(Rollup, FoldAddsSumsKeyByKey) {
  contribution acc;
  fold_into(acc, leaf("a", health_status::ok, {{"power_kw", 120}, {"stock/SKU-1", 4}}));
  fold_into(acc, leaf("b", health_status::ok, {{"power_kw", 30.5}, {"count/running", 1}}));
  std::map<std::string, double> expected{
    {"power_kw", 150.5}, {"stock/SKU-1", 4}, {"count/running", 1}};
  EXPECT_EQ(acc.sums, expected);
}

TEST(Rollup, FoldAddsHealthCountsAndScores) {
  contribution acc;
  fold_into(acc, leaf("a", health_status::ok));
  fold_into(acc, leaf("b", health_status::warning));
  fold_into(acc, leaf("c", health_status::warning));
  fold_into(acc, leaf("d", health_status::stale));
  EXPECT_EQ(count_of(acc, health_status::ok), 1);
  EXPECT_EQ(count_of(acc, health_status::warning), 2);
  EXPECT_EQ(count_of(acc, health_status::alarm), 0);
  EXPECT_EQ(count_of(acc, health_status::stale), 1);
  EXPECT_EQ(acc.score_count, 4);
  EXPECT_DOUBLE_EQ(acc.score(), (100.0 + 50 + 50 + 25) / 4);
}

TEST(Rollup, ScoreWithNoTwinCountedIsFull) {
  contribution acc;
  fold_into(acc, contribution{}); // e.g. an empty line
  EXPECT_EQ(acc.score_count, 0);
  EXPECT_EQ(acc.score(), 100.0);
}

TEST(Rollup, StatusScoresRankOkAboveWarningAboveStaleAboveAlarm) {
  EXPECT_GT(status_score(health_status::ok), status_score(health_status::warning));
  EXPECT_GT(status_score(health_status::warning), status_score(health_status::stale));
  EXPECT_GT(status_score(health_status::stale), status_score(health_status::alarm));
}

TEST(Rollup, WorstTwinIsTheOneWithTheWorseStatus) {
  contribution acc;
  fold_into(acc, leaf("a", health_status::warning));
  fold_into(acc, leaf("z", health_status::alarm));
  fold_into(acc, leaf("m", health_status::ok));
  EXPECT_EQ(acc.worst_id, "z");
  EXPECT_EQ(acc.worst_status, health_status::alarm);
}

TEST(Rollup, StaleIsWorseThanAlarm) {
  contribution acc;
  fold_into(acc, leaf("a", health_status::alarm));
  fold_into(acc, leaf("b", health_status::stale));
  EXPECT_EQ(acc.worst_id, "b");
  EXPECT_EQ(acc.worst_status, health_status::stale);
}

TEST(Rollup, WorstTieGoesToTheSmallerIdWhicheverComesFirst) {
  contribution small_first;
  fold_into(small_first, leaf("acme/line-1/press-2", health_status::alarm));
  fold_into(small_first, leaf("acme/line-1/press-9", health_status::alarm));

  contribution large_first;
  fold_into(large_first, leaf("acme/line-1/press-9", health_status::alarm));
  fold_into(large_first, leaf("acme/line-1/press-2", health_status::alarm));

  EXPECT_EQ(small_first.worst_id, "acme/line-1/press-2");
  EXPECT_EQ(large_first.worst_id, "acme/line-1/press-2");
}

TEST(Rollup, ChildWithoutTwinsLeavesTheWorstAlone) {
  contribution acc;
  fold_into(acc, leaf("a", health_status::warning));
  contribution empty_line;
  empty_line.sums["power_kw"] = 5;
  fold_into(acc, empty_line);
  EXPECT_EQ(acc.worst_id, "a");
  EXPECT_EQ(acc.worst_status, health_status::warning);
}

TEST(Rollup, FoldDoesNotDependOnOrder) {
  // Values exact in binary, so that the order of additions cannot matter.
  std::vector<contribution> children{
    leaf("d", health_status::alarm, {{"power_kw", 10.5}, {"stock/SKU-1", 3}}),
    leaf("b", health_status::alarm, {{"power_kw", 2.25}}),
    leaf("c", health_status::ok, {{"stock/SKU-1", -3}, {"count/running", 1}}),
    leaf("a", health_status::warning, {{"energy_kwh", 7}}),
  };
  std::vector<size_t> order{0, 1, 2, 3};
  contribution first;
  for (auto i : order)
    fold_into(first, children[i]);
  EXPECT_EQ(first.worst_id, "b");

  int permutations = 0;
  while (std::next_permutation(order.begin(), order.end())) {
    contribution acc;
    for (auto i : order)
      fold_into(acc, children[i]);
    EXPECT_TRUE(acc == first) << "order " << order[0] << order[1] << order[2] << order[3];
    ++permutations;
  }
  EXPECT_EQ(permutations, 23);
}

TEST(Rollup, SumThatReturnsToZeroIsRemoved) {
  contribution acc;
  fold_into(acc, leaf("a", health_status::ok, {{"stock/SKU-1", 5}, {"power_kw", 1}}));
  fold_into(acc, leaf("b", health_status::ok, {{"stock/SKU-1", -5}}));
  EXPECT_EQ(acc.sums.count("stock/SKU-1"), 0u);
  EXPECT_EQ(acc.sums.at("power_kw"), 1.0);
}

TEST(Rollup, StockBackAtZeroEqualsStockNeverTouched) {
  contribution touched;
  fold_into(touched, leaf("a", health_status::ok, {{"stock/SKU-1", 5}}));
  fold_into(touched, leaf("b", health_status::ok, {{"stock/SKU-1", -5}}));

  contribution untouched;
  fold_into(untouched, leaf("a", health_status::ok));
  fold_into(untouched, leaf("b", health_status::ok));

  EXPECT_TRUE(touched == untouched);
}

TEST(Rollup, ZeroSumInAChildIsNotCarriedIntoTheParent) {
  contribution child;
  child.sums["power_kw"] = 0;
  contribution acc;
  fold_into(acc, child);
  EXPECT_TRUE(acc.sums.empty());
}

TEST(Rollup, EqualContributionsCompareEqual) {
  auto a = leaf("a", health_status::warning, {{"power_kw", 3}});
  auto b = leaf("a", health_status::warning, {{"power_kw", 3}});
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a != b);
}

TEST(Rollup, ContributionsDifferingInAnyFieldAreUnequal) {
  const auto base = leaf("a", health_status::warning, {{"power_kw", 3}});
  std::vector<std::pair<const char*, contribution>> variants;
  auto vary = [&](const char* what, auto change) {
    auto c = base;
    change(c);
    variants.emplace_back(what, c);
  };
  vary("sum value", [](contribution& c) { c.sums["power_kw"] = 4; });
  vary("sum key", [](contribution& c) { c.sums["energy_kwh"] = 1; });
  vary("counts", [](contribution& c) { c.counts[0] += 1; });
  vary("score_sum", [](contribution& c) { c.score_sum += 1; });
  vary("score_count", [](contribution& c) { c.score_count += 1; });
  vary("worst_id", [](contribution& c) { c.worst_id = "b"; });
  vary("worst_status", [](contribution& c) { c.worst_status = health_status::alarm; });
  for (auto& [what, c] : variants) {
    EXPECT_FALSE(c == base) << what;
    EXPECT_TRUE(c != base) << what;
  }
}

TEST(Rollup, StatusNamesAreStableLabels) {
  EXPECT_STREQ(to_string(health_status::ok), "ok");
  EXPECT_STREQ(to_string(health_status::warning), "warning");
  EXPECT_STREQ(to_string(health_status::alarm), "alarm");
  EXPECT_STREQ(to_string(health_status::stale), "stale");
}

} // namespace
} // namespace twinrt::twins
