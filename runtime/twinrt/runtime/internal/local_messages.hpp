#pragma once

// The only messages that cannot cross a wire: a caller outside the actor
// system (the RPC event loop, which must not block) hands the bridge actor a
// callback to run with the answer. A callback is code in this process, so
// these messages are local by nature; everything the bridge asks on the
// caller's behalf is a plain message of messages.hpp.

#include <functional>
#include <memory>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/expected.hpp>

#include "twinrt/runtime/messages.hpp"

namespace twinrt::runtime::internal {

using get_done = std::function<void(caf::expected<twin_view>)>;
using ingest_done = std::function<void(caf::expected<twins::ingest_result>)>;
using ack_done = std::function<void(caf::expected<alert_record>)>;
// Shared, because CAF wants message contents copyable.
using get_done_ptr = std::shared_ptr<get_done>;
using ingest_done_ptr = std::shared_ptr<ingest_done>;
using ack_done_ptr = std::shared_ptr<ack_done>;

} // namespace twinrt::runtime::internal

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::get_done_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::ack_done_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(twinrt::runtime::internal::ingest_done_ptr)
