#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace twinrt::cluster {

/// The thread of a background loop (lease renewal, placement rounds, a
/// watch's stream): the loop sleeps with pause(), which wakes early on
/// wake() or stop(), and ends once stopping() says so. Its owner calls
/// stop() first thing in its destructor, before what the loop uses is gone.
class worker {
public:
  worker() = default;
  ~worker() { stop(); }
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start(std::function<void()> loop) { thread_ = std::thread(std::move(loop)); }

  /// Sleeps up to `d`, or until wake() or stop(); false once stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lk(mtx_);
    cv_.wait_for(lk, d, [this] { return stopping_.load() || woken_; });
    woken_ = false;
    return !stopping_.load();
  }
  /// Ends the current (or next) pause early.
  void wake() {
    {
      std::lock_guard<std::mutex> g(mtx_);
      woken_ = true;
    }
    cv_.notify_all();
  }
  /// Asks the loop to end; the loop itself may call it.
  void request_stop() {
    {
      std::lock_guard<std::mutex> g(mtx_);
      stopping_ = true;
    }
    cv_.notify_all();
  }
  /// Asks the loop to end and waits until it has (never from the loop).
  void stop() {
    request_stop();
    if (thread_.joinable())
      thread_.join();
  }
  bool stopping() const { return stopping_.load(); }
  const std::atomic<bool>& stop_flag() const { return stopping_; }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  bool woken_ = false;
  std::thread thread_;
};

} // namespace twinrt::cluster
