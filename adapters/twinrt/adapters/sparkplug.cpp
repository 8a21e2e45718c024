#include "twinrt/adapters/sparkplug.hpp"

#include <climits>

#include <caf/atom.hpp>
#include <caf/make_message.hpp>

#include "sparkplug_b.pb.h"

namespace twinrt::adapters::sparkplug {

namespace {

namespace pb = ::twinrt::sparkplug::pb; // generated from schemas/sparkplug_b.proto

constexpr caf::atom_value category = caf::atom("sparkplug");

constexpr const char* type_names[] = {"NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA",
                                      "DDATA",  "NCMD",   "DCMD",   "STATE"};

constexpr const char* datatype_names[] = {
  "Unknown",    "Int8",        "Int16",        "Int32",        "Int64",       "UInt8",
  "UInt16",     "UInt32",      "UInt64",       "Float",        "Double",      "Boolean",
  "String",     "DateTime",    "Text",         "UUID",         "DataSet",     "Bytes",
  "File",       "Template",    "PropertySet",  "PropertySetList", "Int8Array", "Int16Array",
  "Int32Array", "Int64Array",  "UInt8Array",   "UInt16Array",  "UInt32Array", "UInt64Array",
  "FloatArray", "DoubleArray", "BooleanArray", "StringArray",  "DateTimeArray"};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    auto i = s.find(sep, start);
    out.push_back(s.substr(start, i == std::string_view::npos ? i : i - start));
    if (i == std::string_view::npos)
      return out;
    start = i + 1;
  }
}

metric_value read_value(const pb::Payload::Metric& m) {
  using M = pb::Payload::Metric;
  switch (m.value_case()) {
    case M::kIntValue:
      return m.int_value();
    case M::kLongValue:
      return m.long_value();
    case M::kFloatValue:
      return m.float_value();
    case M::kDoubleValue:
      return m.double_value();
    case M::kBooleanValue:
      return m.boolean_value();
    case M::kStringValue:
      return m.string_value();
    case M::kBytesValue:
      return byte_string{m.bytes_value()};
    case M::kDatasetValue:
    case M::kTemplateValue:
    case M::kExtensionValue:
      return compound_value{};
    case M::VALUE_NOT_SET:
      break;
  }
  return std::monostate{};
}

struct value_writer {
  pb::Payload::Metric& m;
  void operator()(std::monostate) const {}
  void operator()(uint32_t v) const { m.set_int_value(v); }
  void operator()(uint64_t v) const { m.set_long_value(v); }
  void operator()(float v) const { m.set_float_value(v); }
  void operator()(double v) const { m.set_double_value(v); }
  void operator()(bool v) const { m.set_boolean_value(v); }
  void operator()(const std::string& v) const { m.set_string_value(v); }
  void operator()(const byte_string& v) const { m.set_bytes_value(v.bytes); }
  void operator()(const compound_value&) const { m.mutable_dataset_value(); }
};

} // namespace

const char* to_string(reason r) {
  switch (r) {
    case reason::bad_topic:
      return "bad_topic";
    case reason::oversized:
      return "oversized";
    case reason::malformed:
      return "malformed";
    case reason::bad_birth:
      return "bad_birth";
    case reason::missing_seq:
      return "missing_seq";
    case reason::before_birth:
      return "before_birth";
    case reason::sequence_gap:
      return "sequence_gap";
    case reason::unknown_alias:
      return "unknown_alias";
    case reason::unknown_metric:
      return "unknown_metric";
    case reason::wrong_type:
      return "wrong_type";
    case reason::unmapped:
      return "unmapped";
    case reason::twin_refused:
      return "twin_refused";
    case reason::sample_refused:
      return "sample_refused";
    case reason::node_failed:
      return "node_failed";
  }
  return "unknown";
}

caf::error make_error(reason r, std::string message) {
  return caf::error{static_cast<uint8_t>(r), category, caf::make_message(std::move(message))};
}

std::optional<reason> reason_of(const caf::error& e) {
  if (!e || e.category() != category)
    return std::nullopt;
  return static_cast<reason>(e.code());
}

std::string message_of(const caf::error& e) {
  if (e.category() == category && e.context().match_elements<std::string>())
    return e.context().get_as<std::string>(0);
  return caf::to_string(e);
}

const char* to_string(message_type t) {
  return type_names[static_cast<size_t>(t)];
}

caf::expected<topic> parse_topic(std::string_view name) {
  auto refuse = [&](const char* why) {
    return make_error(reason::bad_topic, "topic '" + std::string(name) + "': " + why);
  };
  auto parts = split(name, '/');
  if (parts[0] != topic_namespace)
    return refuse("not in the spBv1.0 namespace");
  for (auto& p : parts)
    if (p.empty())
      return refuse("has an empty element");
  topic t;
  if (parts.size() == 3 && parts[1] == "STATE") {
    t.type = message_type::state;
    t.edge_node = std::string(parts[2]);
    return t;
  }
  if (parts.size() < 4 || parts.size() > 5)
    return refuse("is not spBv1.0/{group}/{type}/{edge node}[/{device}]");
  size_t type = 0;
  while (type < std::size(type_names) - 1 && parts[2] != type_names[type])
    ++type;
  if (type == std::size(type_names) - 1)
    return refuse("unknown message type");
  t.type = static_cast<message_type>(type);
  t.group = std::string(parts[1]);
  t.edge_node = std::string(parts[3]);
  bool device_message = t.type == message_type::dbirth || t.type == message_type::ddeath
                        || t.type == message_type::ddata || t.type == message_type::dcmd;
  if (device_message && parts.size() != 5)
    return refuse("a device message needs a device id");
  if (!device_message && parts.size() != 4)
    return refuse("a node message has no device id");
  if (device_message)
    t.device = std::string(parts[4]);
  return t;
}

std::string topic_name(const topic& t) {
  std::string out(topic_namespace);
  if (t.type == message_type::state)
    return out + "/STATE/" + t.edge_node;
  out += "/" + t.group + "/" + to_string(t.type) + "/" + t.edge_node;
  if (!t.device.empty())
    out += "/" + t.device;
  return out;
}

std::string datatype_name(uint32_t datatype) {
  if (datatype < std::size(datatype_names))
    return datatype_names[datatype];
  return "datatype " + std::to_string(datatype);
}

bool is_numeric(uint32_t datatype) {
  return (datatype >= 1 && datatype <= 11) || datatype == 13;
}

const char* value_field_name(const metric_value& v) {
  constexpr const char* names[] = {"no value",      "int_value",    "long_value",
                                   "float_value",   "double_value", "boolean_value",
                                   "string_value",  "bytes_value",  "a DataSet/Template value"};
  return names[v.index()];
}

caf::expected<payload> decode(std::string_view bytes, std::string_view what, size_t max_bytes) {
  if (bytes.size() > max_bytes)
    return make_error(reason::oversized, "payload of " + std::string(what) + ": "
                                           + std::to_string(bytes.size())
                                           + " bytes is more than the limit of "
                                           + std::to_string(max_bytes));
  pb::Payload msg;
  if (bytes.size() > static_cast<size_t>(INT_MAX)
      || !msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error(reason::malformed, "payload of " + std::string(what) + " ("
                                           + std::to_string(bytes.size())
                                           + " bytes): not a Sparkplug B payload "
                                             "(truncated or not protobuf)");
  payload p;
  if (msg.has_timestamp())
    p.timestamp = msg.timestamp();
  if (msg.has_seq())
    p.seq = msg.seq();
  p.metrics.reserve(static_cast<size_t>(msg.metrics_size()));
  for (auto& m : msg.metrics()) {
    metric out;
    if (m.has_name())
      out.name = m.name();
    if (m.has_alias())
      out.alias = m.alias();
    if (m.has_timestamp())
      out.timestamp = m.timestamp();
    if (m.has_datatype())
      out.datatype = m.datatype();
    out.is_historical = m.is_historical();
    out.is_transient = m.is_transient();
    out.is_null = m.is_null();
    out.value = read_value(m);
    p.metrics.push_back(std::move(out));
  }
  return p;
}

std::string encode(const payload& p) {
  pb::Payload msg;
  if (p.timestamp)
    msg.set_timestamp(*p.timestamp);
  if (p.seq)
    msg.set_seq(*p.seq);
  for (auto& m : p.metrics) {
    auto& out = *msg.add_metrics();
    if (m.name)
      out.set_name(*m.name);
    if (m.alias)
      out.set_alias(*m.alias);
    if (m.timestamp)
      out.set_timestamp(*m.timestamp);
    if (m.datatype)
      out.set_datatype(*m.datatype);
    if (m.is_historical)
      out.set_is_historical(true);
    if (m.is_transient)
      out.set_is_transient(true);
    if (m.is_null)
      out.set_is_null(true);
    std::visit(value_writer{out}, m.value);
  }
  return msg.SerializeAsString();
}

caf::expected<double> to_number(const metric_value& v, uint32_t datatype, std::string_view what) {
  auto refuse = [&] {
    return make_error(reason::wrong_type, "metric " + std::string(what) + ": "
                                            + value_field_name(v) + " does not fit datatype "
                                            + datatype_name(datatype));
  };
  auto integer = [&](uint64_t& out) {
    if (auto u32 = std::get_if<uint32_t>(&v))
      return out = *u32, true;
    if (auto u64 = std::get_if<uint64_t>(&v))
      return out = *u64, true;
    return false;
  };
  uint64_t u = 0;
  switch (static_cast<data_type>(datatype)) {
    case data_type::int8:
      return integer(u) ? caf::expected<double>(static_cast<int8_t>(u)) : refuse();
    case data_type::int16:
      return integer(u) ? caf::expected<double>(static_cast<int16_t>(u)) : refuse();
    case data_type::int32:
      return integer(u) ? caf::expected<double>(static_cast<int32_t>(u)) : refuse();
    case data_type::int64:
      return integer(u) ? caf::expected<double>(static_cast<double>(static_cast<int64_t>(u)))
                        : refuse();
    case data_type::uint8:
    case data_type::uint16:
    case data_type::uint32:
    case data_type::uint64:
    case data_type::date_time:
      return integer(u) ? caf::expected<double>(static_cast<double>(u)) : refuse();
    case data_type::float_:
    case data_type::double_:
      if (auto f = std::get_if<float>(&v))
        return static_cast<double>(*f);
      if (auto d = std::get_if<double>(&v))
        return *d;
      return refuse();
    case data_type::boolean:
      if (auto b = std::get_if<bool>(&v))
        return *b ? 1.0 : 0.0;
      return refuse();
    default:
      return refuse();
  }
}

payload rebirth_command(uint64_t now_ms) {
  payload p;
  p.timestamp = now_ms;
  metric m;
  m.name = "Node Control/Rebirth";
  m.timestamp = now_ms;
  m.datatype = static_cast<uint32_t>(data_type::boolean);
  m.value = true;
  p.metrics.push_back(std::move(m));
  return p;
}

} // namespace twinrt::adapters::sparkplug
