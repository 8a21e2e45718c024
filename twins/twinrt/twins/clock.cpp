#include "twinrt/twins/clock.hpp"

#include <chrono>

namespace twinrt::twins {

int64_t system_clock::now_ms() const {
  return wall_ms();
}

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

} // namespace twinrt::twins
