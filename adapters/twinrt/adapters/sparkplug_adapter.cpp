#include "twinrt/adapters/sparkplug_adapter.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "twinrt/adapters/batch_queue.hpp"
#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::adapters::sparkplug {

namespace {

constexpr size_t max_queued_messages = 1024; // beyond this, the MQTT thread waits
constexpr size_t max_batch_messages = 256;   // messages whose samples go in one ingest
constexpr size_t kept_refusals = 100;

using twins::wall_ms;

std::string state_payload(bool online, int64_t ts) {
  return std::string("{\"online\":") + (online ? "true" : "false")
         + ",\"timestamp\":" + std::to_string(ts) + "}";
}

} // namespace

uint64_t adapter_stats::refused_total() const {
  uint64_t n = 0;
  for (auto r : refused)
    n += r;
  return n;
}

struct adapter::impl {
  runtime::node& node;
  runtime::node_config::sparkplug_settings settings;
  sparkplug::mapping rules;
  std::function<void(const refusal&)> refusal_hook;
  std::unique_ptr<mqtt::client> client;

  // Handed from the MQTT thread to the worker.
  std::unique_ptr<batch_queue<mqtt::message>> queue; // made by start()
  std::thread worker;

  // The worker's own.
  std::map<std::pair<std::string, std::string>, edge_node_session> sessions;
  std::unordered_map<std::string, std::string> known_twins; // id -> parent

  mutable std::mutex stats_mtx;
  adapter_stats counters;
  std::deque<refusal> recent;
  std::string broker; // host:port in use

  // Prometheus series (metrics.cpp lists the families).
  std::atomic<int64_t>* messages_total;
  std::atomic<int64_t>* samples_total;
  std::atomic<int64_t>* rebirths_total;
  std::atomic<int64_t>* connected_gauge;
  std::array<std::atomic<int64_t>*, reason_count + 1> rejected_total{};

  impl(runtime::node& n, runtime::node_config::sparkplug_settings s)
    : node(n), settings(std::move(s)), rules(settings.devices) {
    auto& p = node.probe();
    messages_total = &p.adapter_series("twinrt_sparkplug_messages_total", {});
    samples_total = &p.adapter_series("twinrt_sparkplug_samples_total", {});
    rebirths_total = &p.adapter_series("twinrt_sparkplug_rebirth_requests_total", {});
    connected_gauge = &p.adapter_series("twinrt_sparkplug_connected", {});
    for (int r = 1; r <= reason_count; ++r)
      rejected_total[static_cast<size_t>(r)] = &p.adapter_series(
        "twinrt_sparkplug_rejected_total", {{"reason", to_string(static_cast<reason>(r))}});
  }

  template <class F>
  void count(F&& f) {
    std::lock_guard<std::mutex> g(stats_mtx);
    f(counters);
  }

  void refuse(refusal r) {
    rejected_total[static_cast<size_t>(r.why)]->fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> g(stats_mtx);
      ++counters.refused[static_cast<size_t>(r.why)];
      recent.push_back(r);
      if (recent.size() > kept_refusals)
        recent.pop_front();
    }
    if (refusal_hook)
      refusal_hook(r);
  }

  void refuse(const caf::error& e) {
    refuse(refusal{reason_of(e).value_or(reason::malformed), message_of(e)});
  }

  // -- the MQTT thread ---------------------------------------------------------

  void enqueue(const mqtt::message& m) {
    queue->push(m); // waits for room; refused once stopping (not acknowledged)
  }

  void on_connection(bool up) {
    connected_gauge->store(up ? 1 : 0, std::memory_order_relaxed);
    if (up && !settings.host_id.empty())
      client->publish(std::string(topic_namespace) + "/STATE/" + settings.host_id,
                      state_payload(true, wall_ms()), 1, true);
  }

  // -- the worker --------------------------------------------------------------

  // Takes what is queued (up to max_batch_messages), handles the messages in
  // order, stores all their samples in one ingest, then acknowledges them;
  // if the node failed to store them, they are not acknowledged and the
  // broker delivers them again.
  void run() {
    for (;;) {
      auto taken = queue->take();
      if (taken.empty())
        return; // stopped
      std::vector<twins::sample> batch;
      for (auto& m : taken)
        handle(m, batch);
      bool durable = ingest(std::move(batch));
      for (auto& m : taken) {
        if (m.qos == 0)
          continue;
        if (durable)
          client->ack(m.packet_id);
        else
          count([](adapter_stats& s) { ++s.not_acked; });
      }
    }
  }

  // Appends the samples the message carries to `batch`; creates or moves the
  // twins its births name at once.
  void handle(const mqtt::message& m, std::vector<twins::sample>& batch) {
    count([](adapter_stats& s) { ++s.messages; });
    messages_total->fetch_add(1, std::memory_order_relaxed);
    auto t = parse_topic(m.topic);
    if (!t) {
      refuse(t.error());
      return;
    }
    if (t->type == message_type::ncmd || t->type == message_type::dcmd
        || t->type == message_type::state)
      return; // commands (ours among them) and host states change no twin
    auto p = decode(m.payload, m.topic, settings.max_payload_bytes);
    if (!p) {
      refuse(p.error());
      return;
    }
    auto now = wall_ms();
    auto key = std::make_pair(t->group, t->edge_node);
    auto s = sessions.find(key);
    if (s == sessions.end())
      s = sessions
            .emplace(key, edge_node_session(t->group, t->edge_node, settings.rebirth_interval_ms))
            .first;
    auto out = s->second.handle(t->type, t->device, *p, now);
    for (auto& r : out.refused)
      refuse(std::move(r));
    if (out.ignored > 0)
      count([&](adapter_stats& st) { st.ignored_metrics += out.ignored; });
    if (out.rebirth)
      request_rebirth(*t, now);
    apply(*t, out, now, batch);
  }

  void request_rebirth(const topic& t, int64_t now) {
    topic cmd{message_type::ncmd, t.group, t.edge_node, ""};
    client->publish(topic_name(cmd), encode(rebirth_command(static_cast<uint64_t>(now))), 0);
    count([](adapter_stats& s) { ++s.rebirths_requested; });
    rebirths_total->fetch_add(1, std::memory_order_relaxed);
  }

  std::string source_of(const topic& t, const std::string& device) const {
    return "spb:" + t.group + "/" + t.edge_node + (device.empty() ? "" : "/" + device);
  }

  std::string describe(const topic& t, const std::string& device) const {
    return "edge node " + t.group + "/" + t.edge_node + (device.empty() ? "" : " device " + device);
  }

  // Creates the twin of a birth, or moves it under the parent the mapping
  // names. False (after counting why) when it cannot be used.
  bool ensure_twin(const twin_target& target, const std::string& who) {
    auto known = known_twins.find(target.id);
    if (known != known_twins.end() && known->second == target.parent)
      return true;
    auto view = node.get(target.id);
    if (!view) {
      if (auto err = node.create({{target.id, target.kind, target.parent}})) {
        refuse({reason::twin_refused, "birth of " + who + ": twin " + target.id + ": "
                                        + runtime::describe(err)});
        return false;
      }
      count([](adapter_stats& s) { ++s.twins_created; });
    } else {
      if (view->meta.kind != target.kind) {
        refuse({reason::twin_refused, "birth of " + who + ": twin " + target.id + " is a "
                                        + view->meta.kind + ", the mapping says "
                                        + target.kind});
        return false;
      }
      if (view->meta.parent != target.parent && !target.parent.empty()) {
        if (auto err = node.reparent(target.id, target.parent)) {
          refuse({reason::twin_refused, "birth of " + who + ": moving twin " + target.id
                                          + " under " + target.parent + ": "
                                          + runtime::describe(err)});
          return false;
        }
        count([](adapter_stats& s) { ++s.twins_moved; });
      }
    }
    known_twins[target.id] = target.parent;
    return true;
  }

  bool twin_exists(const std::string& id) {
    if (known_twins.count(id) > 0)
      return true;
    return static_cast<bool>(node.get(id));
  }

  void apply(const topic& t, const outcome& out, int64_t now, std::vector<twins::sample>& batch) {
    std::map<std::string, std::optional<twin_target>> targets; // device -> twin
    auto target_of = [&](const std::string& device) -> const std::optional<twin_target>& {
      auto i = targets.find(device);
      if (i != targets.end())
        return i->second;
      auto target = rules.find(t.group, t.edge_node, device);
      if (!target)
        refuse({reason::unmapped, "no [[sparkplug.devices]] rule maps " + describe(t, device)});
      return targets.emplace(device, std::move(target)).first->second;
    };
    auto mark = [&](const std::string& twin, bool offline) {
      twins::sample s;
      s.twin = twin;
      s.channel = std::string(twins::offline_channel);
      s.ts_ms = now;
      s.value = offline ? 1 : 0;
      batch.push_back(std::move(s));
    };
    uint64_t online = 0, offline = 0;
    for (auto& device : out.born) {
      auto& target = target_of(device);
      if (!target)
        continue;
      if (!ensure_twin(*target, describe(t, device))) {
        targets[device].reset(); // its values have nowhere to go
        continue;
      }
      mark(target->id, false);
      ++online;
    }
    for (auto& u : out.updates) {
      auto& target = target_of(u.device);
      if (!target)
        continue;
      twins::sample s;
      s.twin = target->id;
      s.channel = mapping::channel(*target, u.metric);
      s.ts_ms = u.ts_ms;
      s.value = u.value;
      s.source = source_of(t, u.device);
      s.seq = u.ts_ms > 0 ? static_cast<uint64_t>(u.ts_ms) : 0;
      batch.push_back(std::move(s));
    }
    for (auto& device : out.died) {
      auto target = rules.find(t.group, t.edge_node, device);
      if (!target || !twin_exists(target->id))
        continue; // nothing of it is a twin: nothing to mark
      mark(target->id, true);
      ++offline;
    }
    count([&](adapter_stats& s) {
      s.online_marks += online;
      s.offline_marks += offline;
    });
  }

  // False when the node could not store them.
  bool ingest(std::vector<twins::sample> batch) {
    size_t limit = std::max<size_t>(1, node.config().max_batch_samples);
    for (size_t from = 0; from < batch.size(); from += limit) {
      std::vector<twins::sample> part(batch.begin() + static_cast<ptrdiff_t>(from),
                                      batch.begin()
                                        + static_cast<ptrdiff_t>(std::min(batch.size(), from + limit)));
      auto result = node.ingest_waiting(std::move(part));
      if (!result) {
        refuse({reason::node_failed,
                "node could not store the samples: " + runtime::describe(result.error())});
        return false;
      }
      uint64_t duplicates = 0;
      for (auto& r : result->rejected) {
        if (r.reason == twins::reject_reason::duplicate_sequence)
          ++duplicates;
        else
          refuse({reason::sample_refused, r.message});
      }
      samples_total->fetch_add(static_cast<int64_t>(result->accepted), std::memory_order_relaxed);
      count([&](adapter_stats& s) {
        s.samples_accepted += result->accepted;
        s.duplicates += duplicates;
      });
    }
    return true;
  }
};

adapter::adapter(runtime::node& node, runtime::node_config::sparkplug_settings settings)
  : impl_(std::make_unique<impl>(node, std::move(settings))) {
}

adapter::~adapter() {
  stop();
}

void adapter::on_refusal(std::function<void(const refusal&)> f) {
  impl_->refusal_hook = std::move(f);
}

caf::error adapter::start() {
  auto& s = impl_->settings;
  mqtt::client_options opts;
  opts.username = s.username;
  opts.password = s.password;
  auto broker = s.broker;
  auto tls = s.tls;
  std::string tls_section = "sparkplug.tls";
  if (broker.empty()) { // the broker of the MQTT JSON adapter, if there is one
    auto& m = impl_->node.config().mqtt;
    broker = m.enabled ? m.host + ":" + std::to_string(m.port) : "127.0.0.1:1883";
    if (m.enabled) {
      tls = m.tls;
      tls_section = "mqtt.tls";
    }
    if (m.enabled && opts.username.empty()) {
      opts.username = m.username;
      opts.password = m.password;
    }
  }
  auto address = runtime::parse_broker(broker);
  if (!address)
    return runtime::make_error(runtime::errc::bad_request,
                               "sparkplug.broker '" + broker + "' is not HOST:PORT or mqtts://HOST:PORT");
  tls.enabled = tls.enabled || address->tls;
  if (tls.enabled) {
    auto context = mqtt::make_tls_context(tls, tls_section);
    if (!context)
      return std::move(context.error());
    opts.tls = std::move(*context);
  }
  impl_->broker = broker;
  opts.host = address->host;
  opts.port = address->port;
  opts.client_id = s.client_id;
  opts.clean_session = false;
  // Larger than any payload we accept, so that an oversized payload reaches
  // decode() and is refused with its reason instead of dropping the link.
  opts.max_packet_bytes = static_cast<size_t>(s.max_payload_bytes) * 2 + 65'536;
  if (!s.host_id.empty())
    opts.last_will = mqtt::will{std::string(topic_namespace) + "/STATE/" + s.host_id,
                                state_payload(false, wall_ms()), 1, true};
  auto& d = *impl_;
  d.client = std::make_unique<mqtt::client>(std::move(opts));
  d.client->on_message([&d](const mqtt::message& m) { d.enqueue(m); });
  d.client->on_connection([&d](bool up) { d.on_connection(up); });
  mqtt::report_connect_failures(*d.client, "twinrt sparkplug", [&d](mqtt::connect_failure why) {
    d.node.probe()
      .adapter_series("twinrt_sparkplug_connect_failures_total", {{"reason", to_string(why)}})
      .fetch_add(1);
  });
  if (s.groups.empty())
    d.client->subscribe(std::string(topic_namespace) + "/#", 1);
  for (auto& g : s.groups)
    d.client->subscribe(std::string(topic_namespace) + "/" + g + "/#", 1);
  d.queue = std::make_unique<batch_queue<mqtt::message>>(
    batch_limits{max_queued_messages, max_batch_messages, std::numeric_limits<size_t>::max(),
                 std::chrono::milliseconds(0)});
  d.worker = std::thread([&d] { d.run(); });
  d.client->start();
  return {};
}

void adapter::stop() {
  auto& d = *impl_;
  // First: the MQTT thread may wait for room in the queue. What is queued is
  // dropped unacknowledged; the broker delivers it again.
  if (d.queue)
    d.queue->stop();
  if (d.client)
    d.client->stop();
  d.connected_gauge->store(0, std::memory_order_relaxed);
  if (d.worker.joinable())
    d.worker.join();
}

std::string adapter::broker() const {
  return impl_->broker;
}

bool adapter::connected() const {
  return impl_->client && impl_->client->connected();
}

adapter_stats adapter::stats() const {
  std::lock_guard<std::mutex> g(impl_->stats_mtx);
  return impl_->counters;
}

std::vector<refusal> adapter::recent_refusals() const {
  std::lock_guard<std::mutex> g(impl_->stats_mtx);
  return {impl_->recent.begin(), impl_->recent.end()};
}

} // namespace twinrt::adapters::sparkplug
