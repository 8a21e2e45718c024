#pragma once
// The hand-over between an adapter's MQTT I/O thread and the thread that makes
// its messages durable (MQTT JSON ingest, Sparkplug B, the edge's buffer
// writer): a bounded queue whose consumer takes batches. A batch is up to
// `max_items` items and `max_weight` weight (e.g. samples; an item heavier than
// that alone is still a batch of its own); after its first item the consumer
// waits up to `linger` for a full batch. The producer waits for room, or is
// told the queue is full (QoS 0: drop and count). Thread-safe; one consumer.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

namespace twinrt::adapters {

struct batch_limits {
  size_t capacity = 10'000; // items queued at most
  size_t max_items = 1'000; // items per batch at most
  size_t max_weight = std::numeric_limits<size_t>::max(); // weight per batch at most
  std::chrono::milliseconds linger{0}; // wait this long for a full batch after the first item
};

template <class T>
class batch_queue {
public:
  /// `weight` of an item, counted against max_weight; none: every item weighs 0.
  explicit batch_queue(batch_limits limits, std::function<size_t(const T&)> weight = {})
    : limits_(limits), weight_(std::move(weight)) {
    if (limits_.max_items == 0)
      limits_.max_items = 1;
    if (limits_.capacity < limits_.max_items)
      limits_.capacity = limits_.max_items;
  }
  batch_queue(const batch_queue&) = delete;
  batch_queue& operator=(const batch_queue&) = delete;

  enum class pushed { queued, full, closed };

  /// Queues `item`, waiting for room. False when the queue is (or gets) closed
  /// meanwhile: the item was not queued.
  bool push(T item) {
    std::unique_lock<std::mutex> g(mtx_);
    has_room_.wait(g, [&] { return items_.size() < limits_.capacity || closed_; });
    if (closed_)
      return false;
    add(std::move(item));
    return true;
  }

  /// Queues `item` (moving from it) only when there is room now.
  pushed try_push(T& item) {
    std::lock_guard<std::mutex> g(mtx_);
    if (closed_)
      return pushed::closed;
    if (items_.size() >= limits_.capacity)
      return pushed::full;
    add(std::move(item));
    return pushed::queued;
  }

  /// The next batch, in queue order. Waits for an item; empty once the queue
  /// is closed and drained (or stopped).
  std::vector<T> take() {
    std::unique_lock<std::mutex> g(mtx_);
    has_work_.wait(g, [&] { return !items_.empty() || closed_; });
    if (items_.empty() || stopped_)
      return {};
    if (items_.size() < limits_.max_items && limits_.linger.count() > 0 && !closed_)
      has_work_.wait_for(g, limits_.linger,
                         [&] { return items_.size() >= limits_.max_items || closed_; });
    if (stopped_)
      return {};
    std::vector<T> batch;
    size_t weight = 0;
    while (!items_.empty() && batch.size() < limits_.max_items) {
      size_t w = weight_ ? weight_(items_.front()) : 0;
      if (!batch.empty() && weight + w > limits_.max_weight)
        break;
      weight += w;
      batch.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    has_room_.notify_all();
    return batch;
  }

  /// No more pushes (waiting ones return false); take() hands out what is
  /// queued, then returns empty.
  void close() {
    {
      std::lock_guard<std::mutex> g(mtx_);
      closed_ = true;
    }
    has_room_.notify_all();
    has_work_.notify_all();
  }

  /// As close(), and take() returns empty at once: what is queued is dropped
  /// (unacknowledged messages, which the broker delivers again).
  void stop() {
    {
      std::lock_guard<std::mutex> g(mtx_);
      stopped_ = true;
    }
    close();
  }

  bool closed() const {
    std::lock_guard<std::mutex> g(mtx_);
    return closed_;
  }

  size_t size() const {
    std::lock_guard<std::mutex> g(mtx_);
    return items_.size();
  }

private:
  void add(T&& item) { // under mtx_
    items_.push_back(std::move(item));
    // The consumer waits for a first item, or (lingering) for a full batch.
    if (items_.size() == 1 || items_.size() >= limits_.max_items)
      has_work_.notify_one();
  }

  batch_limits limits_;
  std::function<size_t(const T&)> weight_;
  mutable std::mutex mtx_;
  std::condition_variable has_work_, has_room_;
  std::deque<T> items_;
  bool closed_ = false;
  bool stopped_ = false;
};

} // namespace twinrt::adapters
