#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace twinrt::twins {

// What a name may be, the same on every path (RPC, twinctl, MQTT, Sparkplug,
// replay, create). The README's "Names and limits" lists these.

/// A twin id: parts of letters, digits, '-', '_' and '.' joined by '/', at
/// most this many bytes; no part is empty, "." or "..".
inline constexpr std::size_t max_twin_id_bytes = 512;

/// A sample's channel: the model's channel name (at most this many bytes)...
inline constexpr std::size_t max_channel_bytes = 64;

/// ...and, for movement channels, "/SKU": at most this many bytes of
/// letters, digits and - _ . : # (no '/', no space, no control byte).
inline constexpr std::size_t max_sku_bytes = 64;

/// Why `id` cannot be a twin id ("twin id of 1048576 bytes is over the limit
/// of 512"), or nothing when it can. The reason names the rule that failed.
std::optional<std::string> twin_id_refusal(std::string_view id);

/// Why `channel` cannot be a sample's channel name by its form alone (the
/// model decides whether it exists), or nothing when its form is right.
std::optional<std::string> channel_refusal(std::string_view channel);

/// Shows `text` for a message: cut to `max` bytes with "... (N bytes)" after,
/// and bytes that are not printable ASCII as \xNN, so that a 1 MB or binary
/// name never lands whole in a log line or an answer.
std::string printable(std::string_view text, std::size_t max = 80);

} // namespace twinrt::twins
