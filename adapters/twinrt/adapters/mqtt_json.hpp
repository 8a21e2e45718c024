#pragma once
// MQTT JSON telemetry: which twin a topic feeds, and the samples a payload carries.
// Pure functions and values: no sockets, no node. Every error names the input.
//
// Topic patterns are MQTT topic filters whose levels may also be `{name}`:
//   plants/{plant}/lines/{line}/machines/{machine}/telemetry
// `{name}` matches exactly one level (like `+`) and captures it; `+` matches one
// level without capturing; `#`, only as the last level, matches the rest (zero or more
// levels). A twin pattern such as `acme/{plant}/{line}/{machine}` is filled in from the
// captures; every `{name}` it uses must be captured by its topic pattern.
//
// Payload: one JSON object of channel -> number (true/false count as 1/0), with optional
//   "ts"  sample time in ms since the Unix epoch (an integer; default: the receive time),
//   "seq" a positive integer sequence number of this message on its topic,
// or a JSON array of such objects. Movement channels name the SKU: "receipt/SKU-0001": 12.
//
// Message identity (so that a message re-delivered by the broker is applied once): each
// sample gets source = the topic and seq = "seq" when the object has one, else its "ts".
// The node refuses a sample whose seq is not above the last one applied for that
// (twin, channel, source), so a redelivery is refused as duplicate_sequence. Hence a
// publisher that wants exactly-once effect sends "ts" (strictly increasing per topic and
// channel) or "seq"; samples without either get the receive time, which is unique per
// delivery, so a redelivery of those would apply twice.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "twinrt/twins/sample.hpp"

namespace twinrt::adapters::mqtt {

/// One level of a compiled topic pattern.
struct topic_level {
  enum kind_t : uint8_t { literal, capture, single, rest } kind = literal;
  std::string text; // the literal, or the capture's name
};

/// A compiled `[[mqtt.routes]]` entry: topic pattern -> twin pattern.
class route {
public:
  /// Compiles a route. On error returns the reason naming the pattern, e.g.
  /// "route 'a/{x}/#/b': '#' must be the last level".
  static std::optional<std::string> compile(const std::string& topic_pattern,
                                            const std::string& twin_pattern, route& out);

  /// The twin id `topic` maps to, or nothing when the topic does not match.
  std::optional<std::string> twin_for(std::string_view topic) const;

  /// The MQTT subscription filter (`{name}` becomes `+`).
  const std::string& filter() const { return filter_; }
  const std::string& topic_pattern() const { return topic_pattern_; }
  const std::string& twin_pattern() const { return twin_pattern_; }

private:
  std::string topic_pattern_, twin_pattern_, filter_;
  std::vector<topic_level> levels_;
  // The twin pattern in pieces: literal text, or the index of a capture in levels_.
  std::vector<std::pair<std::string, int>> twin_parts_;
};

/// The first route whose pattern matches the topic, in configuration order.
struct router {
  std::vector<route> routes;
  /// The twin id for `topic`; nothing when no route matches.
  std::optional<std::string> twin_for(std::string_view topic) const;
};

/// Why a payload was refused (metric label `reason` and dead-letter field).
enum class payload_error : uint8_t {
  invalid_json,    // not JSON at all, or truncated
  wrong_type,      // a value, ts or seq of the wrong JSON type, or a non-object in the array
  bad_timestamp,   // ts negative or beyond year 9999
  bad_seq,         // seq zero, negative or above 2^53
  empty,           // no channel values at all
};

const char* to_string(payload_error e);

struct payload_refusal {
  payload_error reason = payload_error::invalid_json;
  std::string message; // names the topic, the element and the key
};

/// Parses a JSON payload into samples for `twin` from `topic`; `now_ms` stands in for a
/// missing "ts". On success `out` holds the samples in payload order (object keys in
/// their JSON order); on failure `out` is unchanged and the refusal says why.
std::optional<payload_refusal> parse_json_payload(std::string_view topic, std::string_view payload,
                                                  const std::string& twin, int64_t now_ms,
                                                  std::vector<twins::sample>& out);

/// A topic name (not a filter) is valid for matching: not empty, no `+` or `#`, no NUL.
bool valid_topic_name(std::string_view topic);

/// Notices messages that never arrived. A broker may drop QoS 1 messages (Mosquitto does when
/// a session's queue passes max_queued_messages) without telling anyone; when publishers number
/// their messages with "seq" (1, 2, 3 ... per topic), the numbers that never came show it.
/// Keeps, per topic, the highest seq seen: a seq more than one above it is a gap (the numbers
/// between are missing); one at or below it (a redelivery, or the samples of the same object)
/// is not. A sample whose seq equals its ts carried no "seq" of its own (parse_json_payload then
/// uses ts) and is not watched. The first seq of a topic since this watch was made starts it,
/// so what was lost before (while the node was down) is not seen. Not thread-safe: one owner.
class sequence_watch {
public:
  struct gap {
    std::string topic;
    uint64_t first = 0;    // the first missing seq
    uint64_t last = 0;     // the last missing seq
    uint64_t after = 0;    // the highest seq seen before the gap
    uint64_t missing() const { return last - first + 1; }
  };

  /// Looks at the samples of one message (source = topic), in order; returns the gaps they
  /// reveal, usually none.
  std::vector<gap> observe(const std::vector<twins::sample>& samples);

  /// Topics being watched (one entry each).
  size_t topics() const { return highest_.size(); }

private:
  std::unordered_map<std::string, uint64_t> highest_;
};

} // namespace twinrt::adapters::mqtt
