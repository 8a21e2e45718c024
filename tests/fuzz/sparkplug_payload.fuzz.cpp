// Fuzz target for the Sparkplug B payload parser and the edge-node session
// that consumes it. Input: the payload bytes (also tried as a topic name).
// Beyond not crashing: a refused payload says why (malformed or oversized); a
// parsed one encodes back to bytes that parse again with the same metrics;
// every message type of a session takes it, and every refusal names its edge
// node.

#include <cstdint>
#include <string>
#include <string_view>

#include "twinrt/adapters/sparkplug.hpp"
#include "twinrt/adapters/sparkplug_session.hpp"

namespace spb = twinrt::adapters::sparkplug;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)spb::parse_topic(in);

  auto p = spb::decode(in, "spBv1.0/g/DDATA/n/d", 64 * 1024);
  if (!p) {
    auto why = spb::reason_of(p.error());
    if (why != spb::reason::malformed && why != spb::reason::oversized)
      __builtin_trap();
    return 0;
  }
  auto again = spb::decode(spb::encode(*p), "again", SIZE_MAX);
  if (!again || again->metrics.size() != p->metrics.size() || again->seq != p->seq
      || again->timestamp != p->timestamp)
    __builtin_trap();
  for (size_t i = 0; i < p->metrics.size(); ++i) {
    auto& a = p->metrics[i];
    auto& b = again->metrics[i];
    if (a.name != b.name || a.alias != b.alias || a.datatype != b.datatype
        || a.value.index() != b.value.index())
      __builtin_trap();
    for (uint32_t type = 0; type <= 34; ++type)
      (void)spb::to_number(a.value, type, "m");
  }

  spb::edge_node_session s("g", "n", 0);
  const spb::message_type order[] = {
    spb::message_type::ndata,  spb::message_type::nbirth, spb::message_type::dbirth,
    spb::message_type::ddata,  spb::message_type::ndata,  spb::message_type::ddeath,
    spb::message_type::ddata,  spb::message_type::ndeath, spb::message_type::state};
  for (auto type : order) {
    auto out = s.handle(type, type == spb::message_type::dbirth || type == spb::message_type::ddata
                                  || type == spb::message_type::ddeath
                                ? "d"
                                : "",
                        *p, 1'764'000'000'000);
    for (auto& r : out.refused)
      if (r.message.find("g/n") == std::string::npos)
        __builtin_trap();
  }
  return 0;
}
