#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace twinrt::adapters {

/// Lines on stderr about refused input, "PREFIX: text": at most 20 per 10 s,
/// then one line with the count of those left out. Thread-safe.
class rate_limited_log {
public:
  explicit rate_limited_log(std::string prefix) : prefix_(std::move(prefix)) {}

  void line(const std::string& text) {
    std::lock_guard<std::mutex> g(mtx_);
    auto now = std::chrono::steady_clock::now();
    if (now - window_ > std::chrono::seconds(10)) {
      if (suppressed_ > 0)
        std::fprintf(stderr, "%s: %llu more lines not logged\n", prefix_.c_str(),
                     static_cast<unsigned long long>(suppressed_));
      window_ = now;
      printed_ = 0;
      suppressed_ = 0;
    }
    if (printed_ < burst) {
      ++printed_;
      std::fprintf(stderr, "%s: %s\n", prefix_.c_str(), text.c_str());
    } else {
      ++suppressed_;
    }
  }

private:
  static constexpr int burst = 20;
  std::string prefix_;
  std::mutex mtx_;
  std::chrono::steady_clock::time_point window_{};
  int printed_ = 0;
  uint64_t suppressed_ = 0;
};

} // namespace twinrt::adapters
