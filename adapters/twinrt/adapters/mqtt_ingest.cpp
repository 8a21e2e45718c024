#include "twinrt/adapters/mqtt_ingest.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "twinrt/adapters/batch_queue.hpp"
#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/adapters/mqtt_json.hpp"
#include "twinrt/adapters/rate_limited_log.hpp"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::adapters::mqtt {

namespace {

using clock = std::chrono::steady_clock;

using twins::wall_ms;

// A message parsed and waiting for its batch.
struct queued {
  uint16_t packet_id = 0; // 0: QoS 0, nothing to acknowledge
  std::string topic;
  std::string payload; // kept for the dead letter when the node refuses samples
  std::vector<twins::sample> samples;
};

} // namespace

struct ingest::impl {
  runtime::node& node;
  runtime::node_config::mqtt_settings cfg;
  router routes;
  std::unique_ptr<client> cl;
  rate_limited_log log{"twinrt mqtt"};
  rate_limited_log gap_log{"twinrt mqtt"}; // its own budget: rejections do not hide gaps
  sequence_watch seqs; // on the client's I/O thread only

  // Metrics (the node's probe owns the atomics).
  std::atomic<int64_t>* result_accepted;
  std::atomic<int64_t>* result_partial;
  std::atomic<int64_t>* result_duplicate;
  std::atomic<int64_t>* result_rejected;
  std::atomic<int64_t>* samples_total;
  std::atomic<int64_t>* dead_letters;
  std::atomic<int64_t>* connected_gauge;
  std::atomic<int64_t>* connects;
  std::atomic<int64_t>* queued_gauge;
  std::atomic<int64_t>* sequence_gaps;
  std::atomic<int64_t>* gap_messages;
  std::atomic<uint64_t> batches{0};

  // Messages go to one of `lane_count` lanes by topic, each with its own batch thread, so
  // that two node ingests are in flight while the samples of one topic stay in order (a
  // topic's samples are one source whose sequence numbers must arrive rising).
  static constexpr size_t lane_count = 2;
  struct lane {
    std::unique_ptr<batch_queue<queued>> queue;
    std::thread thread;
  };
  lane lanes[lane_count];
  size_t max_queue; // messages per lane

  impl(runtime::node& n, runtime::node_config::mqtt_settings s)
    : node(n), cfg(std::move(s)) {
    auto& p = node.probe();
    auto result = [&](const char* r) {
      return &p.adapter_series("twinrt_mqtt_messages_total", {{"result", r}});
    };
    result_accepted = result("accepted");
    result_partial = result("partial");
    result_duplicate = result("duplicate");
    result_rejected = result("rejected");
    samples_total = &p.adapter_series("twinrt_mqtt_samples_total", {});
    dead_letters = &p.adapter_series("twinrt_mqtt_dead_letters_total", {});
    connected_gauge = &p.adapter_series("twinrt_mqtt_connected", {});
    connects = &p.adapter_series("twinrt_mqtt_connects_total", {});
    queued_gauge = &p.adapter_series("twinrt_mqtt_queued_messages", {});
    sequence_gaps = &p.adapter_series("twinrt_mqtt_sequence_gaps_total", {});
    gap_messages = &p.adapter_series("twinrt_mqtt_sequence_gap_messages_total", {});
    max_queue = std::max<size_t>(10'000, size_t{4} * cfg.batch_messages);
    batch_limits limits;
    limits.capacity = max_queue;
    limits.max_items = cfg.batch_messages;
    limits.max_weight = node.config().max_batch_samples;
    limits.linger = std::chrono::milliseconds(cfg.linger_ms);
    for (auto& l : lanes)
      l.queue = std::make_unique<batch_queue<queued>>(
        limits, [](const queued& q) { return q.samples.size(); });
  }

  void count_rejection(const std::string& reason) {
    node.probe().adapter_series("twinrt_mqtt_rejected_total", {{"reason", reason}}).fetch_add(1);
  }

  // Logs, counts and dead-letters one refusal of a whole message or of some of its samples.
  void report(const std::string& topic, const std::string& payload, const std::string& reason,
              const std::string& error) {
    count_rejection(reason);
    log.line(reason + ": " + error);
    if (cfg.dead_letter_topic.empty())
      return;
    nlohmann::json dl;
    dl["topic"] = topic;
    dl["reason"] = reason;
    dl["error"] = error;
    dl["payload"] = payload.size() > 65'536 ? payload.substr(0, 65'536) : payload;
    if (payload.size() > 65'536)
      dl["payload_bytes"] = payload.size();
    auto text = dl.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dead_letters->fetch_add(1, std::memory_order_relaxed);
    cl->publish(cfg.dead_letter_topic, std::move(text), cfg.qos);
  }

  // Messages a publisher numbered that never arrived (the broker dropped them, or they were
  // lost before it): counted and logged, naming the topic and the missing numbers.
  void count_gap(const sequence_watch::gap& g) {
    sequence_gaps->fetch_add(1, std::memory_order_relaxed);
    gap_messages->fetch_add(static_cast<int64_t>(g.missing()), std::memory_order_relaxed);
    auto range = g.first == g.last ? std::to_string(g.first)
                                   : std::to_string(g.first) + ".." + std::to_string(g.last);
    gap_log.line("sequence gap: topic " + g.topic + ": seq " + range + " never arrived ("
                 + std::to_string(g.missing()) + (g.missing() == 1 ? " message" : " messages")
                 + " after seq " + std::to_string(g.after)
                 + "); check the broker's max_queued_messages");
  }

  // Rejects a whole message before ingest: counted, dead-lettered, acknowledged.
  void reject(const message& m, const std::string& reason, const std::string& error) {
    result_rejected->fetch_add(1, std::memory_order_relaxed);
    report(m.topic, m.payload, reason, error);
    if (m.packet_id != 0)
      cl->ack(m.packet_id);
  }

  // On the client's I/O thread.
  void on_message(const message& m) {
    auto bytes = m.dropped_bytes > 0 ? m.dropped_bytes : m.payload.size();
    if (bytes > cfg.max_payload_bytes) {
      reject(m, "oversized",
             "topic " + m.topic + ": payload of " + std::to_string(bytes)
               + " bytes is above max_payload_bytes " + std::to_string(cfg.max_payload_bytes));
      return;
    }
    auto twin = routes.twin_for(m.topic);
    if (!twin) {
      reject(m, "unknown_topic", "topic " + m.topic + " matches no [[mqtt.routes]] pattern");
      return;
    }
    queued q;
    if (auto err = parse_json_payload(m.topic, m.payload, *twin, wall_ms(), q.samples)) {
      reject(m, to_string(err->reason), err->message);
      return;
    }
    for (auto& g : seqs.observe(q.samples))
      count_gap(g);
    q.packet_id = m.packet_id;
    q.topic = m.topic;
    q.payload = m.payload;
    auto& l = lanes[std::hash<std::string>{}(m.topic) % lane_count];
    if (m.qos == 0) {
      if (l.queue->try_push(q) == batch_queue<queued>::pushed::full) {
        reject(m, "overloaded", "topic " + m.topic + ": QoS 0 message dropped, "
                                  + std::to_string(max_queue) + " messages are queued");
        return;
      }
    } else if (!l.queue->push(std::move(q))) {
      return; // stopping: not acknowledged, the broker re-delivers it to the next session
    }
    update_queued_gauge();
  }

  void update_queued_gauge() {
    size_t n = 0;
    for (auto& l : lanes)
      n += l.queue->size();
    queued_gauge->store(static_cast<int64_t>(n), std::memory_order_relaxed);
  }

  void run(lane& l) {
    for (;;) {
      auto batch = l.queue->take();
      if (batch.empty())
        return;
      update_queued_gauge();
      std::vector<twins::sample> samples;
      std::vector<uint32_t> owner; // message index of each sample
      for (uint32_t i = 0; i < batch.size(); ++i)
        for (auto& s : batch[i].samples) {
          samples.push_back(s);
          owner.push_back(i);
        }
      caf::expected<twins::ingest_result> r{twins::ingest_result{}};
      for (int64_t pause_ms = 50;; pause_ms = std::min<int64_t>(pause_ms * 2, 2'000)) {
        if (samples.size() > node.config().max_batch_samples) {
          // One message alone carries more samples than a node batch may hold.
          r = runtime::make_error(runtime::errc::bad_request, "too many samples");
          break;
        }
        r = node.ingest_waiting(samples);
        if (r)
          break;
        log.line("ingest of " + std::to_string(batch.size()) + " messages failed, retrying: "
                 + runtime::describe(r.error()));
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        if (l.queue->closed())
          return; // not acknowledged: re-delivered to the next session
      }
      batches.fetch_add(1, std::memory_order_relaxed);
      finish(batch, owner, r);
    }
  }

  // Classifies each message of a durable batch, reports refusals, acknowledges in order.
  void finish(std::vector<queued>& batch, const std::vector<uint32_t>& owner,
              const caf::expected<twins::ingest_result>& r) {
    std::vector<std::vector<const twins::rejection*>> refused(batch.size());
    std::vector<uint32_t> first(batch.size(), 0); // batch index of each message's first sample
    for (uint32_t k = static_cast<uint32_t>(owner.size()); k-- > 0;)
      first[owner[k]] = k;
    if (r)
      for (auto& rej : r->rejected)
        if (rej.index < owner.size())
          refused[owner[rej.index]].push_back(&rej);
    int64_t stored = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& m = batch[i];
      if (!r) {
        result_rejected->fetch_add(1, std::memory_order_relaxed);
        report(m.topic, m.payload, "too_many_samples",
               "topic " + m.topic + ": " + std::to_string(m.samples.size())
                 + " samples are more than the node's max_batch_samples");
      } else {
        size_t dups = 0;
        const twins::rejection* first_bad = nullptr;
        std::string reasons;
        for (auto* rej : refused[i]) {
          if (rej->reason == twins::reject_reason::duplicate_sequence) {
            ++dups;
            continue;
          }
          if (!first_bad)
            first_bad = rej;
          if (!reasons.empty())
            reasons += "; ";
          // The node numbers samples in the whole batch; the sender knows its message.
          auto prefix = "sample " + std::to_string(rej->index) + " ";
          if (rej->message.rfind(prefix, 0) == 0)
            reasons += "sample " + std::to_string(rej->index - first[i]) + " "
                       + rej->message.substr(prefix.size());
          else
            reasons += rej->message;
        }
        auto ok = static_cast<int64_t>(m.samples.size() - refused[i].size());
        stored += ok;
        if (!first_bad) {
          (ok == 0 && dups > 0 ? result_duplicate : result_accepted)
            ->fetch_add(1, std::memory_order_relaxed);
        } else {
          (ok > 0 ? result_partial : result_rejected)->fetch_add(1, std::memory_order_relaxed);
          report(m.topic, m.payload, twins::to_string(first_bad->reason),
                 "topic " + m.topic + ": " + reasons);
        }
      }
      if (m.packet_id != 0)
        cl->ack(m.packet_id);
    }
    samples_total->fetch_add(stored, std::memory_order_relaxed);
  }

  // Takes no more messages, makes those queued durable and acknowledges them, then
  // disconnects.
  void stop() {
    for (auto& l : lanes)
      l.queue->close(); // the batch threads drain their queues and return
    for (auto& l : lanes)
      if (l.thread.joinable())
        l.thread.join();
    cl->stop();
    connected_gauge->store(0);
    std::fprintf(stderr,
                 "twinrt mqtt: stopped; messages accepted %lld, partial %lld, duplicate %lld, "
                 "rejected %lld; sequence gaps %lld (%lld messages never arrived)\n",
                 static_cast<long long>(result_accepted->load()),
                 static_cast<long long>(result_partial->load()),
                 static_cast<long long>(result_duplicate->load()),
                 static_cast<long long>(result_rejected->load()),
                 static_cast<long long>(sequence_gaps->load()),
                 static_cast<long long>(gap_messages->load()));
  }
};

ingest::ingest(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

ingest::~ingest() { impl_->stop(); }

caf::expected<std::unique_ptr<ingest>>
ingest::start(runtime::node& n, const runtime::node_config::mqtt_settings& settings) {
  auto p = std::make_unique<impl>(n, settings);
  if (settings.routes.empty())
    return runtime::make_error(runtime::errc::bad_request,
                               "needs at least one [[mqtt.routes]] entry");
  for (auto& r : settings.routes) {
    route compiled;
    if (auto err = route::compile(r.topic, r.twin, compiled))
      return runtime::make_error(runtime::errc::bad_request, *err);
    p->routes.routes.push_back(std::move(compiled));
  }
  auto opts = options_for(settings);
  if (!opts)
    return std::move(opts.error());
  auto& o = *opts;
  // Room for the topic and header above the largest payload the adapter reads; a larger
  // PUBLISH arrives without its payload (dropped_bytes) and is rejected as oversized.
  o.max_packet_bytes = size_t{settings.max_payload_bytes} + 65'536 + 4;
  p->cl = std::make_unique<client>(o);
  auto raw = p.get();
  p->cl->on_message([raw](const message& m) { raw->on_message(m); });
  p->cl->on_connection([raw](bool up) {
    raw->connected_gauge->store(up ? 1 : 0);
    if (up)
      raw->connects->fetch_add(1);
    std::fprintf(stderr, "twinrt mqtt: %s %s%s:%u\n", up ? "connected to" : "lost",
                 raw->cfg.tls.enabled ? "mqtts://" : "", raw->cfg.host.c_str(),
                 static_cast<unsigned>(raw->cfg.port));
  });
  report_connect_failures(*p->cl, "twinrt mqtt", [raw](connect_failure why) {
    raw->node.probe()
      .adapter_series("twinrt_mqtt_connect_failures_total", {{"reason", to_string(why)}})
      .fetch_add(1);
  });
  for (auto& r : p->routes.routes)
    p->cl->subscribe(r.filter(), settings.qos);
  for (auto& l : p->lanes)
    l.thread = std::thread([raw, &l] { raw->run(l); });
  p->cl->start();
  return std::unique_ptr<ingest>(new ingest(std::move(p)));
}

bool ingest::connected() const { return impl_->cl->connected(); }

bool ingest::wait_connected(int64_t timeout_ms) const {
  return impl_->cl->wait_connected(timeout_ms);
}

ingest_stats ingest::stats() const {
  ingest_stats s;
  s.accepted = static_cast<uint64_t>(impl_->result_accepted->load());
  s.partial = static_cast<uint64_t>(impl_->result_partial->load());
  s.duplicate = static_cast<uint64_t>(impl_->result_duplicate->load());
  s.rejected = static_cast<uint64_t>(impl_->result_rejected->load());
  s.samples = static_cast<uint64_t>(impl_->samples_total->load());
  s.dead_letters = static_cast<uint64_t>(impl_->dead_letters->load());
  s.batches = impl_->batches.load();
  s.sequence_gaps = static_cast<uint64_t>(impl_->sequence_gaps->load());
  s.sequence_gap_messages = static_cast<uint64_t>(impl_->gap_messages->load());
  return s;
}

} // namespace twinrt::adapters::mqtt
