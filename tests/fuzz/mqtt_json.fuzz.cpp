// Fuzz target for the MQTT JSON adapter's parsers: the topic routes and the payload.
// Input: a topic, a newline, then the payload. Beyond not crashing, a payload that parses
// must give samples that name the topic as their source and a non-empty channel.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "twinrt/adapters/mqtt_json.hpp"

using namespace twinrt::adapters::mqtt;

namespace {

router make_router() {
  router rt;
  route r;
  route::compile("plants/{plant}/lines/{line}/machines/{machine}/telemetry",
                 "acme/{plant}/{line}/{machine}", r);
  rt.routes.push_back(r);
  route::compile("site/+/{dev}/#", "acme/{dev}", r);
  rt.routes.push_back(r);
  return rt;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const router rt = make_router();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  auto topic = nl == std::string_view::npos ? in : in.substr(0, nl);
  auto payload = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  auto twin = rt.twin_for(topic);
  // The topic as a pattern too: compiling never throws, and a compiled route matches safely.
  route r;
  if (!route::compile(std::string(topic), "t/{a}", r))
    (void)r.twin_for(payload.substr(0, 64));
  if (!route::compile(std::string(topic), "t", r))
    (void)r.twin_for(topic);

  std::vector<twinrt::twins::sample> out;
  auto err = parse_json_payload(topic, payload, twin.value_or("acme/x"), 1'764'000'000'000, out);
  if (err) {
    if (!out.empty() || err->message.rfind("topic ", 0) != 0)
      __builtin_trap();
  } else {
    if (out.empty())
      __builtin_trap();
    for (auto& s : out)
      if (s.channel.empty() || s.source != topic || s.seq == 0)
        __builtin_trap();
  }
  return 0;
}
