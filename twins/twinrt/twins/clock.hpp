#pragma once

#include <atomic>
#include <cstdint>

namespace twinrt::twins {

/// The wall clock: milliseconds since the Unix epoch, what samples, twin
/// states, alerts and the audit trail are stamped with and what staleness
/// and passivation are measured by. A node reads the one handed to it
/// (runtime::node_config::wall_clock), so that a test moves time instead of sleeping.
/// Implementations are thread-safe.
class clock {
public:
  virtual ~clock() = default;
  virtual int64_t now_ms() const = 0;
};

/// The system's wall clock (std::chrono::system_clock).
class system_clock final : public clock {
public:
  int64_t now_ms() const override;
};

/// A clock that stands still until it is told to move (tests).
class manual_clock final : public clock {
public:
  explicit manual_clock(int64_t start_ms) : ms_(start_ms) {}
  int64_t now_ms() const override { return ms_.load(std::memory_order_relaxed); }
  void set(int64_t ms) { ms_.store(ms, std::memory_order_relaxed); }
  void advance(int64_t ms) { ms_.fetch_add(ms, std::memory_order_relaxed); }

private:
  std::atomic<int64_t> ms_;
};

/// The system's wall clock now, for code that is handed no clock (command
/// line tools, benchmarks, adapters stamping what they receive).
int64_t wall_ms();

} // namespace twinrt::twins
