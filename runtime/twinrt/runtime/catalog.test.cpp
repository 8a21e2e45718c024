#include "twinrt/runtime/catalog.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace twinrt::runtime {
namespace {

// acme with two plants of one line each, a warehouse; globex with nothing.
class Catalog : public ::testing::Test {
protected:
  void SetUp() override {
    cat.load({{"acme", 1, "enterprise", ""},
              {"acme/plant-1", 2, "plant", "acme"},
              {"acme/plant-1/line-1", 3, "line", "acme/plant-1"},
              {"acme/plant-2", 4, "plant", "acme"},
              {"acme/plant-2/line-1", 5, "line", "acme/plant-2"},
              {"acme/warehouse-3", 6, "warehouse", "acme"},
              {"globex", 7, "enterprise", ""}});
  }

  std::vector<std::string> subtree(std::string_view root) const {
    std::vector<std::string> ids;
    for (auto& m : cat.subtree(root))
      ids.push_back(m.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  catalog cat;
};

TEST_F(Catalog, BelowAnswersEachIdOfABatchByTheRollupTree) {
  std::vector<std::string_view> ids{"acme/plant-1/line-1", "acme/plant-1/line-1", "acme/plant-1",
                                    "acme/plant-2/line-1", "acme",                "acme/plant-1/x",
                                    "globex"};
  EXPECT_EQ(cat.below("acme/plant-1", ids),
            (std::vector<bool>{true, true, true, false, false, false, false}));
  EXPECT_EQ(cat.below("acme", ids), (std::vector<bool>{true, true, true, true, true, false, false}));
  EXPECT_EQ(cat.below("", ids), std::vector<bool>(ids.size(), true));
}

TEST_F(Catalog, AMovedTwinAndItsChildrenAreBelowTheirNewAncestorsOnly) {
  cat.reparent("acme/plant-1", "globex");
  std::vector<std::string_view> ids{"acme/plant-1/line-1", "acme/plant-1", "acme/plant-2"};
  EXPECT_EQ(cat.below("globex", ids), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(cat.below("acme", ids), (std::vector<bool>{false, false, true}));
  EXPECT_TRUE(cat.is_ancestor("globex", "acme/plant-1/line-1"));
  EXPECT_EQ(subtree("globex"),
            (std::vector<std::string>{"acme/plant-1", "acme/plant-1/line-1", "globex"}));
}

TEST_F(Catalog, SubtreeIsTheTwinAndEveryTwinBelowIt) {
  EXPECT_EQ(subtree("acme/plant-2"),
            (std::vector<std::string>{"acme/plant-2", "acme/plant-2/line-1"}));
  EXPECT_EQ(subtree("").size(), 7u);
  EXPECT_TRUE(subtree("acme/plant-9").empty());
  EXPECT_EQ(subtree("acme/warehouse-3"), (std::vector<std::string>{"acme/warehouse-3"}));
}

} // namespace
} // namespace twinrt::runtime
