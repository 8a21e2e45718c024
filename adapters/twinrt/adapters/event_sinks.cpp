#include "twinrt/adapters/event_sinks.hpp"

#include "twinrt/adapters/mqtt_sink.hpp"
#include "twinrt/adapters/webhook_sink.hpp"
#include "twinrt/runtime/errc.hpp"

namespace twinrt::adapters {

std::optional<std::string> start_event_sinks(runtime::node& n, const runtime::node_config& cfg) {
  struct planned {
    runtime::sink_settings settings;
    std::vector<runtime::event_filter> routes;
    const runtime::node_config::sink* spec;
    std::shared_ptr<const mqtt::tls_context> tls;
  };
  std::vector<planned> plan;
  for (auto& s : cfg.sinks) {
    planned p;
    p.spec = &s;
    p.settings.name = s.name;
    p.settings.max_batch = s.max_batch;
    p.settings.backoff_min_ms = s.backoff_min_ms;
    p.settings.backoff_max_ms = s.backoff_max_ms;
    for (auto& r : cfg.routes) {
      if (r.sink != s.name)
        continue;
      runtime::event_filter f;
      f.kinds = r.kinds;
      f.subtree = r.subtree;
      f.types = r.types;
      f.min_severity = twins::parse_severity(r.min_severity).value_or(twins::severity::info);
      p.routes.push_back(std::move(f));
    }
    if (s.type == "mqtt") {
      auto b = runtime::parse_broker(s.url);
      if (!b)
        return "sink '" + s.name + "': url '" + s.url + "' is not mqtt://host:port or mqtts://host:port";
      if (b->tls) {
        auto tls = mqtt::make_tls_context(s.tls, "sinks." + s.name);
        if (!tls)
          return runtime::describe(tls.error());
        p.tls = std::move(*tls);
      }
    }
    if (!p.routes.empty())
      plan.push_back(std::move(p));
  }
  for (auto& p : plan) {
    std::unique_ptr<runtime::event_sink> sink;
    if (p.spec->type == "mqtt") {
      mqtt_sink_options o;
      auto b = runtime::parse_broker(p.spec->url);
      o.host = b->host;
      o.port = b->port;
      o.tls = p.tls;
      o.topic = p.spec->topic;
      o.client_id = "twinrt-sink-" + p.spec->name;
      o.timeout_ms = p.spec->timeout_ms;
      sink = std::make_unique<mqtt_sink>(std::move(o));
    } else {
      sink = std::make_unique<webhook_sink>(webhook_options{p.spec->url, p.spec->timeout_ms});
    }
    n.add_event_sink(std::move(p.settings), std::move(sink), std::move(p.routes));
  }
  return std::nullopt;
}

} // namespace twinrt::adapters
