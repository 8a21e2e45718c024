#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "commands.hpp"
#include "twinrt/adapters/event_sinks.hpp"
#include "twinrt/adapters/mqtt_ingest.hpp"
#include "twinrt/adapters/simulator.hpp"
#include "twinrt/adapters/sparkplug_adapter.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::app {

namespace {

std::atomic<bool> stop_flag{false};

extern "C" void on_signal(int) {
  stop_flag.store(true);
}

// The MQTT JSON adapter, when the config has an [mqtt] section. Prints why and returns false
// when it cannot start (a bad route); connecting goes on in the background.
bool start_mqtt(runtime::node& n, const runtime::node_config& cfg, const char* who,
                std::unique_ptr<adapters::mqtt::ingest>& out) {
  if (!cfg.mqtt.enabled)
    return true;
  auto a = adapters::mqtt::ingest::start(n, cfg.mqtt);
  if (!a) {
    std::cerr << who << ": [mqtt] " << runtime::describe(a.error()) << "\n";
    return false;
  }
  out = std::move(*a);
  std::printf("%s: MQTT JSON from %s%s:%u as %s, %zu routes\n", who,
              cfg.mqtt.tls.enabled ? "mqtts://" : "", cfg.mqtt.host.c_str(),
              static_cast<unsigned>(cfg.mqtt.port), cfg.mqtt.client_id.c_str(),
              cfg.mqtt.routes.size());
  return true;
}

// The Sparkplug B adapter, when the config has a [sparkplug] section. Prints
// each refusal (the first 100, then every 1000th) to stderr. Prints why and
// returns false when it cannot start; connecting goes on in the background.
bool start_sparkplug(runtime::node& n, const runtime::node_config& cfg, const char* who,
                     std::unique_ptr<adapters::sparkplug::adapter>& out) {
  if (!cfg.sparkplug.enabled)
    return true;
  auto a = std::make_unique<adapters::sparkplug::adapter>(n, cfg.sparkplug);
  auto refusals = std::make_shared<std::atomic<uint64_t>>(0);
  a->on_refusal([who, refusals](const adapters::sparkplug::refusal& r) {
    auto k = ++*refusals;
    if (k <= 100 || k % 1000 == 0)
      std::fprintf(stderr, "%s: sparkplug refused (%s, #%llu): %s\n", who,
                   adapters::sparkplug::to_string(r.why), static_cast<unsigned long long>(k),
                   r.message.c_str());
  });
  if (auto err = a->start()) {
    std::cerr << who << ": [sparkplug] " << runtime::describe(err) << "\n";
    return false;
  }
  out = std::move(a);
  std::printf("%s: Sparkplug B from %s as %s, %zu device rules\n", who, out->broker().c_str(),
              cfg.sparkplug.client_id.c_str(), cfg.sparkplug.devices.size());
  return true;
}

using twins::wall_ms;

double sum_of(const twins::contribution& c, const std::string& key) {
  auto i = c.sums.find(key);
  return i == c.sums.end() ? 0.0 : i->second;
}

// One line a second: what an operator would glance at.
void print_summary(runtime::node& n, const adapters::enterprise_layout& l, double elapsed_s,
                   double rate) {
  auto root = n.get(l.root);
  if (!root) {
    std::printf("[%5.0fs] %s\n", elapsed_s, runtime::describe(root.error()).c_str());
    return;
  }
  auto& c = root->state.own;
  std::printf("[%5.0fs] ingest %8.0f samples/s | twins %lld active | health %s %.0f "
              "(ok %lld, warning %lld, alarm %lld, stale %lld)",
              elapsed_s, rate, static_cast<long long>(n.active_twins()),
              twins::to_string(root->state.status), c.score(),
              static_cast<long long>(c.counts[0]), static_cast<long long>(c.counts[1]),
              static_cast<long long>(c.counts[2]), static_cast<long long>(c.counts[3]));
  for (int p = 1; p <= l.plants; ++p) {
    auto plant = n.get(l.root + "/plant-" + std::to_string(p));
    if (plant)
      std::printf(" | plant-%d %s %.0f", p, twins::to_string(plant->state.status),
                  plant->state.own.score());
  }
  std::printf(" | power %.1f kW | energy today %.2f kWh (total %.2f)", sum_of(c, "power_kw"),
              sum_of(c, "energy_today_kwh"), sum_of(c, "energy_kwh"));
  std::printf(" | stock");
  for (int s = 1; s <= 3 && s <= l.skus; ++s) {
    auto sku = adapters::sku_name(s);
    std::printf(" %s %.0f", sku.c_str(), sum_of(c, "stock/" + sku));
  }
  std::printf(" | on the road %.0f/%d\n", sum_of(c, "count/on_road"), l.vehicles);
  std::fflush(stdout);
}

} // namespace

bool stop_requested() {
  return stop_flag.load();
}

void install_signal_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

int run_demo(const demo_options& given) {
  auto opts = given;
  if (!opts.node.rpc_address.empty() && opts.node.rpc_tokens.empty()) {
    // The demo's own tokens, printed below; a config file replaces them.
    opts.node.rpc_tokens = {{"demo-admin", "demo-admin", "admin", ""},
                            {"demo-writer", "demo-writer", "write", ""},
                            {"demo-viewer", "demo-viewer", "read", ""},
                            {"plant-1-viewer", "plant-1-viewer", "read", "acme/plant-1"}};
  }
  // The operator API opens once the simulated history is stored (below), so
  // that no question is answered from half of it; metrics are served at once.
  auto started = runtime::node::start(opts.node, {}, false);
  if (!started) {
    std::cerr << "twinrt demo: " << runtime::describe(started.error()) << "\n";
    return 1;
  }
  auto& n = **started;
  if (auto why = adapters::start_event_sinks(n, opts.node)) {
    std::cerr << "twinrt demo: " << *why << "\n";
    return 1;
  }
  std::unique_ptr<adapters::mqtt::ingest> mqtt; // stops before the node
  if (!start_mqtt(n, opts.node, "twinrt demo", mqtt))
    return 1;
  std::unique_ptr<adapters::sparkplug::adapter> sparkplug; // stops before the node
  if (!start_sparkplug(n, opts.node, "twinrt demo", sparkplug))
    return 1;
  adapters::enterprise_layout layout;
  std::vector<runtime::twin_spec> missing;
  auto all = adapters::enterprise_twins(layout);
  for (auto& t : all)
    if (!n.get(t.id))
      missing.push_back(t);
  bool fresh = missing.size() == all.size();
  if (!missing.empty()) {
    if (auto err = n.create(missing)) {
      std::cerr << "twinrt demo: " << runtime::describe(err) << "\n";
      return 1;
    }
    std::printf("twinrt demo: created %zu twins in %s\n", missing.size(),
                opts.node.data_dir.c_str());
  } else {
    std::printf("twinrt demo: continuing from %s\n", opts.node.data_dir.c_str());
  }
  if (!n.metrics_address().empty())
    std::printf("twinrt demo: Prometheus metrics on http://%s/metrics\n",
                n.metrics_address().c_str());
  std::fflush(stdout);
  adapters::simulator sim(layout, opts.seed != 0 ? opts.seed : static_cast<uint64_t>(wall_ms()));
  for (int w = 1; w <= layout.warehouses; ++w) {
    auto id = layout.root + "/warehouse-" + std::to_string(w);
    if (auto v = n.get(id))
      for (auto& [sku, units] : v->state.stock)
        sim.seed_stock(id, sku, units);
  }
  // A new demo first simulates the last hours at high speed, so that the
  // analytics have a history to learn from; the anomalies start two hours
  // before now (on a restart they start again from now).
  constexpr int64_t hour_ms = 3'600'000;
  auto history_from = wall_ms() - (fresh ? opts.history_h : 0) * hour_ms;
  auto scenario = adapters::demo_scenario(
    layout, history_from, fresh ? wall_ms() - std::min(2, opts.history_h / 2) * hour_ms : wall_ms());
  if (!fresh) // wearing machines carry on from where they were
    for (auto& w : scenario.wearing)
      if (auto v = n.get(w.id); v && v->state.channels.count("vibration_mm_s"))
        w.vibration = v->state.channels.at("vibration_mm_s").value;
  sim.set_scenario(scenario);
  bool backfilled = fresh && opts.history_h > 0;
  if (backfilled) {
    std::printf("twinrt demo: simulating the last %d hours at high speed; the operator API "
                "opens when they are stored\n",
                opts.history_h);
    std::fflush(stdout);
    auto history_to = wall_ms();
    auto r = adapters::replay_history(n, sim, history_from, history_to, 60'000, [&](int64_t ts) {
      auto done = static_cast<double>(ts - history_from);
      auto all = static_cast<double>(std::max<int64_t>(1, history_to - history_from));
      std::printf("twinrt demo: history %3.0f%% (%lld of %d h simulated)\n", 100 * done / all,
                  static_cast<long long>((ts - history_from) / hour_ms), opts.history_h);
      std::fflush(stdout);
    }, stop_requested);
    if (!r) {
      std::cerr << "twinrt demo: " << runtime::describe(r.error()) << "\n";
      return 1;
    }
    if (stop_requested()) {
      std::printf("twinrt demo: stopped while simulating the history (%llu samples stored)\n",
                  static_cast<unsigned long long>(*r));
      return 0;
    }
    std::printf("twinrt demo: history 100%%: %llu samples; now running in real time\n",
                static_cast<unsigned long long>(*r));
    std::fflush(stdout);
  }
  if (auto err = n.serve_rpc()) {
    std::cerr << "twinrt demo: " << runtime::describe(err) << "\n";
    return 1;
  }
  if (!n.rpc_address().empty()) {
    std::printf("twinrt demo: operator API on %s; tokens:", n.rpc_address().c_str());
    for (auto& t : opts.node.rpc_tokens)
      std::printf(" %s (%s%s%s)", t.secret.c_str(), t.role.c_str(), t.scope.empty() ? "" : " ",
                  t.scope.c_str());
    std::printf("\n  try: export TWINRT_ADDRESS=%s TWINRT_TOKEN=demo-viewer\n"
                "       twinctl get acme\n",
                n.rpc_address().c_str());
    if (backfilled)
      std::printf("       twinctl query --kind machine --where 'rul_hours < 72' --sort rul_hours\n"
                  "       twinctl query --kind line --where 'throughput_deviation_pct < -25'\n"
                  "       twinctl query --where 'energy_waste_pct > 25'\n"
                  "       twinctl query --kind warehouse --where 'low_stock_skus > 0'\n");
  }
  std::fflush(stdout);
  auto begin = std::chrono::steady_clock::now();
  auto next_print = begin + std::chrono::seconds(1);
  uint64_t since_print = 0;
  auto last_tick = wall_ms();
  while (!stop_requested()) {
    auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - begin).count();
    if (opts.duration_s > 0 && elapsed >= opts.duration_s)
      break;
    auto ts = wall_ms();
    auto batch = sim.tick(ts, ts - last_tick);
    last_tick = ts;
    auto r = n.ingest_waiting(std::move(batch));
    if (!r) {
      std::cerr << "twinrt demo: ingest failed: " << runtime::describe(r.error()) << "\n";
    } else {
      since_print += r->accepted;
      for (auto& rej : r->rejected)
        std::cerr << "twinrt demo: rejected " << rej.message << "\n";
    }
    if (now >= next_print) {
      print_summary(n, layout, elapsed, static_cast<double>(since_print));
      since_print = 0;
      next_print += std::chrono::seconds(1);
    }
    std::this_thread::sleep_until(now + std::chrono::milliseconds(opts.tick_ms));
  }
  std::printf("twinrt demo: stopping\n");
  return 0;
}

int run_node(const runtime::node_config& cfg, double duration_s) {
  auto started = runtime::node::start(cfg);
  if (!started) {
    std::cerr << "twinrt node: " << runtime::describe(started.error()) << "\n";
    return 1;
  }
  auto& n = **started;
  if (auto why = adapters::start_event_sinks(n, cfg)) {
    std::cerr << "twinrt node: " << *why << "\n";
    return 1;
  }
  std::unique_ptr<adapters::mqtt::ingest> mqtt; // stops before the node
  if (!start_mqtt(n, cfg, "twinrt node", mqtt))
    return 1;
  std::unique_ptr<adapters::sparkplug::adapter> sparkplug; // stops before the node
  if (!start_sparkplug(n, cfg, "twinrt node", sparkplug))
    return 1;
  std::printf("twinrt node: %zu twins in %s\n", n.twins().size(), cfg.data_dir.c_str());
  if (!n.metrics_address().empty())
    std::printf("twinrt node: Prometheus metrics on http://%s/metrics\n",
                n.metrics_address().c_str());
  if (!n.rpc_address().empty())
    std::printf("twinrt node: operator API on %s\n", n.rpc_address().c_str());
  std::fflush(stdout);
  auto begin = std::chrono::steady_clock::now();
  while (!stop_requested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (duration_s > 0 && elapsed >= duration_s)
      break;
  }
  std::printf("twinrt node: stopping\n");
  return 0;
}

} // namespace twinrt::app
