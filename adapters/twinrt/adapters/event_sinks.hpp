#pragma once

#include <optional>
#include <string>

#include "twinrt/runtime/config.hpp"
#include "twinrt/runtime/node.hpp"

namespace twinrt::adapters {

/// Builds the sinks of `cfg.sinks` (webhook, mqtt), each with the routes of
/// `cfg.routes` that name it, and hands them to the node's event router. A
/// sink no route names is not started. Returns a reason naming the sink when
/// one cannot be built (e.g. a bad MQTT URL); then none is started.
std::optional<std::string> start_event_sinks(runtime::node& n, const runtime::node_config& cfg);

} // namespace twinrt::adapters
