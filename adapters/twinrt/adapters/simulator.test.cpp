#include "twinrt/adapters/simulator.hpp"

#include <set>

#include <gtest/gtest.h>

namespace twinrt::adapters {

TEST(Simulator, LayoutHasEveryTwinOnceParentsFirst) {
  enterprise_layout l;
  auto twins = enterprise_twins(l);
  std::set<std::string> seen;
  size_t machines = 0, vehicles = 0, warehouses = 0;
  for (auto& t : twins) {
    EXPECT_TRUE(seen.insert(t.id).second) << t.id;
    if (!t.parent.empty()) {
      EXPECT_TRUE(seen.count(t.parent)) << t.id << " before its parent " << t.parent;
    }
    machines += t.kind == "machine";
    vehicles += t.kind == "vehicle";
    warehouses += t.kind == "warehouse";
  }
  EXPECT_EQ(machines, 80u);
  EXPECT_EQ(vehicles, 40u);
  EXPECT_EQ(warehouses, 3u);
}

TEST(Simulator, PicksNeverTakeStockBelowZero) {
  enterprise_layout l;
  simulator sim(l, 42);
  std::map<std::pair<std::string, std::string>, int64_t> stock;
  for (int t = 0; t < 500; ++t) {
    for (auto& s : sim.tick(1'700'000'000'000 + t * 100, 100)) {
      auto slash = s.channel.find('/');
      if (slash == std::string::npos)
        continue;
      auto kind = s.channel.substr(0, slash);
      auto& units = stock[{s.twin, s.channel.substr(slash + 1)}];
      units += kind == "receipt" ? static_cast<int64_t>(s.value) : -static_cast<int64_t>(s.value);
      ASSERT_GE(units, 0) << s.twin << " " << s.channel;
      EXPECT_GT(s.seq, 0u);
    }
  }
}

} // namespace twinrt::adapters
