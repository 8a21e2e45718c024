#pragma once

#include <cstddef>

#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt::runtime {

/// A twin as seen by a caller: identity, place, and its whole state
/// (channels, health, rollups).
struct twin_view {
  twin_meta meta;
  size_t children = 0;
  twins::twin_state state;
  bool active = false; // was in memory when asked
};

} // namespace twinrt::runtime
