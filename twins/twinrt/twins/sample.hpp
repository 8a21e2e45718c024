#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace twinrt::twins {

/// A reserved channel no model can declare (model channel names are lower-case
/// letters, digits and _). A sample on it with value 1 marks its twin offline,
/// with value 0 back online; an offline twin's health is stale until then.
/// Adapters send it when they learn that the device behind a twin went away
/// (Sparkplug B NDEATH/DDEATH) or came back (a birth). It is stored in the
/// twin's history like any sample, so history(id, "$offline") shows when the
/// twin was reachable.
inline constexpr std::string_view offline_channel = "$offline";

/// One telemetry value for one channel of one twin. `source` and `seq` are
/// optional (empty / 0); when given, a sample whose sequence number is not
/// above the last one applied from that source to that channel is refused as a
/// duplicate, so a redelivery is applied once.
struct sample {
  std::string twin;    // twin id, e.g. acme/plant-1/line-2/press-7
  std::string channel; // channel name; movement channels carry "/SKU"
  int64_t ts_ms = 0;   // sample time, milliseconds since the Unix epoch
  double value = 0;
  std::string source;  // sender identity for de-duplication
  uint64_t seq = 0;    // sender sequence number, 0 when not used
};

/// Why a sample was refused. Each value maps to a metric label and a message.
enum class reject_reason : uint8_t {
  unknown_twin,
  unknown_channel,
  not_finite,
  out_of_range,
  future_timestamp,
  duplicate_sequence,
  not_whole_units,
  invalid_name,  // twin id, channel or SKU of the wrong form or length (twins/names.hpp)
  bad_timestamp, // not after the Unix epoch (0, negative)
};

inline constexpr int reject_reason_count = 9;

/// Stable snake_case name, used as the metric label and in JSON.
const char* to_string(reject_reason reason);

/// One refused sample: its position in the submitted batch and why.
struct rejection {
  uint32_t index = 0;
  reject_reason reason = reject_reason::unknown_twin;
  std::string message; // names the sample: "sample 3 for a/b.c: value NaN ..."
};

/// Outcome of one acknowledged batch: every sample not listed in `rejected`
/// is durable.
struct ingest_result {
  uint64_t accepted = 0;
  std::vector<rejection> rejected;
};

} // namespace twinrt::twins
