#include "twinrt/adapters/batch_queue.hpp"

#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace twinrt::adapters {
namespace {

using namespace std::chrono_literals;

TEST(BatchQueue, BatchesAreTakenInOrderUpToMaxItems) {
  batch_queue<int> q(batch_limits{10, 3, std::numeric_limits<size_t>::max(), 0ms});
  for (int i = 0; i < 7; ++i)
    ASSERT_TRUE(q.push(i));
  EXPECT_EQ(q.take(), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(q.take(), (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(q.take(), (std::vector<int>{6})) << "no linger: a partial batch at once";
  EXPECT_EQ(q.size(), 0u);
}

TEST(BatchQueue, WeightSplitsBatchesButAHeavyItemStillGoesAlone) {
  batch_queue<std::string> q(batch_limits{10, 10, 5, 0ms},
                             [](const std::string& s) { return s.size(); });
  for (auto s : {"ab", "cd", "efg", "hijklmn", "o"})
    ASSERT_TRUE(q.push(s));
  EXPECT_EQ(q.take(), (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(q.take(), (std::vector<std::string>{"efg"}));
  EXPECT_EQ(q.take(), (std::vector<std::string>{"hijklmn"})) << "heavier than max_weight alone";
  EXPECT_EQ(q.take(), (std::vector<std::string>{"o"}));
}

TEST(BatchQueue, AFullBatchIsTakenWithoutLingering) {
  // An hour of linger: the test only ends if a full batch ends the wait.
  batch_queue<int> q(batch_limits{10, 2, std::numeric_limits<size_t>::max(), 3'600'000ms});
  std::thread producer([&] {
    ASSERT_TRUE(q.push(1));
    ASSERT_TRUE(q.push(2));
  });
  std::vector<int> got;
  while (got.size() < 2)
    for (int v : q.take())
      got.push_back(v);
  producer.join();
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
}

TEST(BatchQueue, CloseEndsALingerAndHandsOutWhatIsQueued) {
  batch_queue<int> q(batch_limits{10, 5, std::numeric_limits<size_t>::max(), 3'600'000ms});
  ASSERT_TRUE(q.push(1));
  std::thread closer([&] { q.close(); });
  EXPECT_EQ(q.take(), (std::vector<int>{1}));
  closer.join();
  EXPECT_TRUE(q.take().empty()) << "closed and drained";
  EXPECT_FALSE(q.push(2)) << "closed: refused";
  int item = 3;
  EXPECT_EQ(q.try_push(item), batch_queue<int>::pushed::closed);
}

TEST(BatchQueue, TryPushSaysFullAndPushWaitsForRoom) {
  batch_queue<int> q(batch_limits{2, 2, std::numeric_limits<size_t>::max(), 0ms});
  ASSERT_TRUE(q.push(1));
  ASSERT_TRUE(q.push(2));
  int item = 3;
  EXPECT_EQ(q.try_push(item), batch_queue<int>::pushed::full);
  EXPECT_EQ(item, 3) << "not moved from when refused";
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    pushed = q.push(3); // waits until take() makes room
  });
  EXPECT_EQ(q.take(), (std::vector<int>{1, 2}));
  producer.join();
  EXPECT_TRUE(pushed);
  EXPECT_EQ(q.take(), (std::vector<int>{3}));
}

TEST(BatchQueue, CloseReleasesAProducerWaitingForRoom) {
  batch_queue<int> q(batch_limits{1, 1, std::numeric_limits<size_t>::max(), 0ms});
  ASSERT_TRUE(q.push(1));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = q.push(2) ? 1 : 0; });
  q.close();
  producer.join();
  EXPECT_EQ(result, 0) << "the waiting push returns false";
  EXPECT_EQ(q.take(), (std::vector<int>{1}));
}

TEST(BatchQueue, StopDropsWhatIsQueuedAndWakesTheConsumer) {
  batch_queue<int> q(batch_limits{10, 5, std::numeric_limits<size_t>::max(), 0ms});
  std::vector<int> first;
  std::thread consumer([&] { first = q.take(); }); // waits: nothing queued yet
  q.stop();
  consumer.join();
  EXPECT_TRUE(first.empty());
  EXPECT_FALSE(q.push(1));
  batch_queue<int> r(batch_limits{10, 5, std::numeric_limits<size_t>::max(), 0ms});
  ASSERT_TRUE(r.push(1));
  r.stop();
  EXPECT_TRUE(r.take().empty()) << "stopped: queued items are dropped";
}

} // namespace
} // namespace twinrt::adapters
