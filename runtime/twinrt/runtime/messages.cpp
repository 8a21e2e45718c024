#include "twinrt/runtime/messages.hpp"

#include <caf/actor_system_config.hpp>

#include "twinrt/runtime/storage.hpp"

namespace twinrt::runtime {

const std::vector<twins::sample>& sample_batch::none() {
  static const std::vector<twins::sample> empty;
  return empty;
}

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::twinrt_runtime>();
}

} // namespace twinrt::runtime

namespace twinrt::twins {

std::string state_to_wire(const twin_state& x) {
  return runtime::storage::encode_state(x);
}

caf::error state_from_wire(std::string_view bytes, twin_state& x) {
  auto decoded = runtime::storage::decode_state(bytes);
  if (!decoded)
    return std::move(decoded.error());
  x = std::move(*decoded);
  return caf::error{};
}

} // namespace twinrt::twins
