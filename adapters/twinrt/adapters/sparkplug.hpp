#pragma once

// Sparkplug B (Eclipse Sparkplug 3.0) on the wire: topic names and payloads.
// Plain functions, no sockets and no node: the edge-node state machine is in
// sparkplug_session.hpp, the adapter that feeds a node in sparkplug_adapter.hpp.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace twinrt::adapters::sparkplug {

/// The topic namespace of Sparkplug B.
inline constexpr std::string_view topic_namespace = "spBv1.0";

/// Why an input was refused. Each value is a metric label (to_string).
enum class reason : uint8_t {
  bad_topic = 1,  // not spBv1.0/{group}/{type}/{edge node}[/{device}]
  oversized,      // payload larger than max_payload_bytes
  malformed,      // not a Sparkplug B protobuf payload (truncated, wrong wire types)
  bad_birth,      // birth metric without name or datatype, or a repeated alias
  missing_seq,    // a message that must carry seq has none
  before_birth,   // data from an edge node or device whose birth was not seen
  sequence_gap,   // seq is not the previous one + 1 (mod 256)
  unknown_alias,  // DATA metric alias not declared in the birth
  unknown_metric, // DATA metric name not declared in the birth
  wrong_type,     // the value does not fit the metric's declared datatype
  unmapped,       // no [[sparkplug.devices]] rule for the edge node or device
  twin_refused,   // the node refused to create or move the twin
  sample_refused, // the twin refused a value (unknown channel, out of range ...)
  node_failed,    // the node could not store the samples (not acknowledged)
};
inline constexpr int reason_count = 14;

/// Stable snake_case name of a reason.
const char* to_string(reason r);

/// An error of the Sparkplug category whose context names the input.
caf::error make_error(reason r, std::string message);

/// The reason of a Sparkplug error; nullopt for an error of another category.
std::optional<reason> reason_of(const caf::error& e);

/// The message given to make_error (or CAF's rendering of a foreign error).
std::string message_of(const caf::error& e);

// -- topics ------------------------------------------------------------------

enum class message_type : uint8_t { nbirth, ndeath, dbirth, ddeath, ndata, ddata, ncmd, dcmd, state };

/// "NBIRTH", "DDATA" ...
const char* to_string(message_type t);

struct topic {
  message_type type = message_type::ndata;
  std::string group;     // empty for STATE
  std::string edge_node; // for STATE: the host application id
  std::string device;    // empty for node messages
};

/// Parses "spBv1.0/{group}/{type}/{edge node}[/{device}]" or
/// "spBv1.0/STATE/{host id}". Refuses (reason::bad_topic, naming the topic)
/// another namespace, an unknown type, an empty element, a device on a node
/// message or none on a device message.
caf::expected<topic> parse_topic(std::string_view name);

/// The topic name of `t` (the inverse of parse_topic).
std::string topic_name(const topic& t);

// -- payloads ------------------------------------------------------------------

/// Sparkplug datatype numbers (Metric.datatype), as in the specification.
enum class data_type : uint32_t {
  unknown = 0, int8 = 1, int16 = 2, int32 = 3, int64 = 4, uint8 = 5, uint16 = 6,
  uint32 = 7, uint64 = 8, float_ = 9, double_ = 10, boolean = 11, string = 12,
  date_time = 13, text = 14, uuid = 15, data_set = 16, bytes = 17, file = 18,
  template_ = 19,
};

/// "Int32", "Double" ... for numbers 0..34; "datatype N" for others.
std::string datatype_name(uint32_t datatype);

/// True for the datatypes a channel can hold: integers, Float, Double,
/// Boolean (0 or 1) and DateTime (ms since the epoch).
bool is_numeric(uint32_t datatype);

/// Values that are not a scalar: DataSet, Template or an extension.
struct compound_value {
  bool operator==(const compound_value&) const { return true; }
};
/// bytes_value (Bytes, File).
struct byte_string {
  std::string bytes;
  bool operator==(const byte_string& o) const { return bytes == o.bytes; }
};

/// The value field a metric carried: none, int_value (uint32), long_value
/// (uint64), float_value, double_value, boolean_value, string_value,
/// bytes_value, or a compound one.
using metric_value = std::variant<std::monostate, uint32_t, uint64_t, float, double, bool,
                                  std::string, byte_string, compound_value>;

/// The name of the value field a metric carried ("double_value", "none" ...).
const char* value_field_name(const metric_value& v);

struct metric {
  std::optional<std::string> name;  // in births; DATA may send the alias alone
  std::optional<uint64_t> alias;
  std::optional<uint64_t> timestamp; // ms since the Unix epoch
  std::optional<uint32_t> datatype;
  bool is_historical = false;
  bool is_transient = false;
  bool is_null = false;
  metric_value value;
};

struct payload {
  std::optional<uint64_t> timestamp; // ms since the Unix epoch
  std::optional<uint64_t> seq;
  std::vector<metric> metrics;
};

/// Decodes a Sparkplug B payload. `what` names the input in errors (the
/// topic). Refuses with reason::oversized a payload of more than `max_bytes`
/// bytes (before parsing it) and with reason::malformed one that is not a
/// valid protobuf payload. Never throws, whatever the bytes.
caf::expected<payload> decode(std::string_view bytes, std::string_view what,
                              size_t max_bytes);

/// Encodes a payload (for commands we publish and for test edge nodes).
std::string encode(const payload& p);

/// The number a metric's value stands for under `datatype`: Int8..Int64 are
/// read as two's complement of their width, UInt* as unsigned, Boolean as 0
/// or 1, Float/Double as they are, DateTime as ms. Refuses with
/// reason::wrong_type, naming `what` (the metric), a value field that does not
/// fit the datatype (a string_value for a Double) or a datatype that is not
/// numeric.
caf::expected<double> to_number(const metric_value& v, uint32_t datatype, std::string_view what);

/// The "Node Control/Rebirth" = true command an application publishes as NCMD
/// to ask an edge node to publish its births again.
payload rebirth_command(uint64_t now_ms);

} // namespace twinrt::adapters::sparkplug
