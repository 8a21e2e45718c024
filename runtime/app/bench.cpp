#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include <kj/async-io.h>
#include <kj/compat/http.h>
#include <kj/debug.h>

#include "commands.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::app {

namespace {

namespace fs = std::filesystem;

constexpr int machines_per_line = 100;
constexpr int lines_per_plant = 50;
const char* const channels[] = {"vibration_mm_s", "temperature_c", "power_kw", "state"};

using twins::wall_ms;

long peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

std::string machine_id(int i) {
  int line = i / machines_per_line;
  int plant = line / lines_per_plant;
  return "bench/plant-" + std::to_string(plant) + "/line-" + std::to_string(line) + "/m-"
         + std::to_string(i);
}

std::vector<runtime::twin_spec> hierarchy(int machines) {
  std::vector<runtime::twin_spec> out;
  out.push_back({"bench", "enterprise", ""});
  int lines = (machines + machines_per_line - 1) / machines_per_line;
  int plants = (lines + lines_per_plant - 1) / lines_per_plant;
  for (int p = 0; p < plants; ++p)
    out.push_back({"bench/plant-" + std::to_string(p), "plant", "bench"});
  for (int l = 0; l < lines; ++l)
    out.push_back({"bench/plant-" + std::to_string(l / lines_per_plant) + "/line-"
                     + std::to_string(l),
                   "line", "bench/plant-" + std::to_string(l / lines_per_plant)});
  for (int m = 0; m < machines; ++m) {
    int l = m / machines_per_line;
    out.push_back({machine_id(m), "machine",
                   "bench/plant-" + std::to_string(l / lines_per_plant) + "/line-"
                     + std::to_string(l)});
  }
  return out;
}

// Fills `out` with the next `batch` samples: 4 channels of consecutive
// machines, so a batch touches batch/4 twins.
void make_batch(std::vector<twins::sample>& out, const std::vector<std::string>& ids,
                std::atomic<uint64_t>& cursor, int batch, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  out.clear();
  auto first = cursor.fetch_add(static_cast<uint64_t>(batch / 4));
  auto ts = wall_ms();
  for (int k = 0; k < batch / 4; ++k) {
    auto& id = ids[(first + static_cast<uint64_t>(k)) % ids.size()];
    out.push_back({id, channels[0], ts, 1.0 + u(rng), "", 0});
    out.push_back({id, channels[1], ts, 50.0 + 10 * u(rng), "", 0});
    out.push_back({id, channels[2], ts, 20.0 + 10 * u(rng), "", 0});
    out.push_back({id, channels[3], ts, 1.0, "", 0});
  }
}

// One GET of http://ADDRESS/metrics. kj reports a refused or broken
// connection by throwing; here, at the edge, it becomes false and a message.
bool scrape_once(kj::AsyncIoContext& io, const std::string& address, size_t& bytes,
                 std::string& error) {
  kj::HttpHeaderTable table;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
                // A new connection per scrape, as Prometheus may open: the
                // exposer closes idle ones.
                auto client = kj::newHttpClient(io.provider->getTimer(), table,
                                                io.provider->getNetwork(), nullptr);
                auto url = kj::str("http://", address.c_str(), "/metrics");
                auto req = client->request(kj::HttpMethod::GET, url, kj::HttpHeaders(table));
                auto resp = req.response.wait(io.waitScope);
                auto body = resp.body->readAllText().wait(io.waitScope);
                if (resp.statusCode != 200)
                  KJ_FAIL_REQUIRE("HTTP status", resp.statusCode);
                bytes = body.size();
              })) {
    error = e->getDescription().cStr();
    return false;
  }
  return true;
}

double process_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// What one scrape costs the whole process (server, actors, client), measured
// on an idle node: `n` scrapes back to back.
struct scrape_cost {
  double cpu_s = 0, wall_s = 0;
  size_t bytes = 0;
  bool ok = false;
};

scrape_cost measure_scrape(const std::string& address, int n) {
  scrape_cost c;
  std::thread t([&] {
    auto io = kj::setupAsyncIo();
    std::string error;
    scrape_once(io, address, c.bytes, error); // warm: the collector's caches fill
    auto cpu0 = process_cpu_s();
    auto t0 = std::chrono::steady_clock::now();
    c.ok = true;
    for (int i = 0; i < n; ++i)
      c.ok = scrape_once(io, address, c.bytes, error) && c.ok;
    c.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / n;
    c.cpu_s = (process_cpu_s() - cpu0) / n;
    if (!c.ok)
      std::cerr << "bench: scrape failed: " << error << "\n";
  });
  t.join();
  return c;
}

// Scrapes http://ADDRESS/metrics every `interval` on its own thread, as
// Prometheus would, until stopped.
class scraper {
public:
  scraper(std::string address, double interval_s)
    : address_(std::move(address)), interval_s_(interval_s) {
    if (interval_s_ > 0)
      thread_ = std::thread([this] { run(); });
  }
  ~scraper() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }

  uint64_t scrapes = 0, failures = 0;
  double slowest_s = 0;
  size_t last_bytes = 0;
  std::string last_error;

private:
  void run() {
    auto io = kj::setupAsyncIo();
    auto next = std::chrono::steady_clock::now();
    while (!stop_) {
      auto t0 = std::chrono::steady_clock::now();
      if (scrape_once(io, address_, last_bytes, last_error))
        ++scrapes;
      else
        ++failures;
      slowest_s = std::max(
        slowest_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(interval_s_));
      while (!stop_ && std::chrono::steady_clock::now() < next)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string address_;
  double interval_s_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What one run of the node measured.
struct node_run {
  bool ok = false;
  bool metrics = false;
  uint64_t accepted = 0;
  double rate = 0;
  int64_t p50 = -1, p99 = -1;
  uint64_t scrapes = 0, scrape_failures = 0;
  double slowest_scrape_s = 0;
  size_t scrape_bytes = 0;
  scrape_cost one_scrape; // measured before the ingest window
};

// Creates the hierarchy in a fresh node under `dir`, warms it up, then
// ingests from `opts.producers` threads for `opts.seconds`. With `metrics`,
// the node serves /metrics and a scraper reads it throughout.
node_run run_node(const bench_options& opts, runtime::node_config cfg, const fs::path& dir,
                  bool metrics) {
  node_run out;
  out.metrics = metrics;
  cfg.data_dir = dir.string();
  cfg.metrics_address = metrics ? (opts.node.metrics_address.empty() ? "127.0.0.1:0"
                                                                     : opts.node.metrics_address)
                                : "";
  auto started = runtime::node::start(cfg);
  if (!started) {
    std::cerr << "bench: " << runtime::describe(started.error()) << "\n";
    return out;
  }
  auto& n = **started;
  auto t0 = std::chrono::steady_clock::now();
  if (auto err = n.create(hierarchy(opts.twins))) {
    std::cerr << "bench: " << runtime::describe(err) << "\n";
    return out;
  }
  std::printf("  [metrics %s] created %d twins in %.2f s", metrics ? "on " : "off",
              static_cast<int>(hierarchy(opts.twins).size()),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  std::vector<std::string> ids;
  for (int m = 0; m < opts.twins; ++m)
    ids.push_back(machine_id(m));
  // Warm-up: one pass over every twin activates it, so the measurement is
  // of steady-state ingest, not of 100,000 first activations.
  std::atomic<uint64_t> cursor{0};
  std::mt19937_64 rng(1);
  std::vector<twins::sample> batch;
  auto tw = std::chrono::steady_clock::now();
  while (cursor.load() < ids.size()) {
    make_batch(batch, ids, cursor, opts.batch, rng);
    if (!n.ingest_waiting(batch)) {
      std::cerr << "bench: warm-up ingest failed\n";
      return out;
    }
  }
  std::printf("; warm-up: %zu twins activated in %.2f s, %lld active\n", ids.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - tw).count(),
              static_cast<long long>(n.active_twins()));
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  if (metrics)
    out.one_scrape = measure_scrape(n.metrics_address(), 5);
  n.probe().reset_rollup_lag();
  std::unique_ptr<scraper> scrape;
  if (metrics)
    scrape = std::make_unique<scraper>(n.metrics_address(), opts.scrape_interval_s);
  std::atomic<uint64_t> accepted{0};
  std::atomic<bool> failed{false};
  auto begin = std::chrono::steady_clock::now();
  auto deadline = begin + std::chrono::duration<double>(opts.seconds);
  std::vector<std::thread> producers;
  for (int p = 0; p < opts.producers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937_64 prng(static_cast<uint64_t>(p) + 7);
      std::vector<twins::sample> b;
      while (std::chrono::steady_clock::now() < deadline) {
        make_batch(b, ids, cursor, opts.batch, prng);
        auto r = n.ingest_waiting(b);
        if (!r) {
          failed = true;
          return;
        }
        accepted += r->accepted;
      }
    });
  }
  for (auto& t : producers)
    t.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (scrape) {
    scrape->stop();
    out.scrapes = scrape->scrapes;
    out.scrape_failures = scrape->failures;
    out.slowest_scrape_s = scrape->slowest_s;
    out.scrape_bytes = scrape->last_bytes;
    if (scrape->failures > 0)
      std::cerr << "bench: " << scrape->failures << " scrapes failed: " << scrape->last_error
                << "\n";
  }
  if (failed) {
    std::cerr << "bench: ingest failed\n";
    return out;
  }
  out.accepted = accepted.load();
  out.rate = static_cast<double>(out.accepted) / elapsed;
  std::this_thread::sleep_for(std::chrono::milliseconds(4 * cfg.rollup_delay_ms + 500));
  out.p50 = n.probe().rollup_lag_percentile("plant", 50);
  out.p99 = n.probe().rollup_lag_percentile("plant", 99);
  out.ok = true;
  return out;
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

} // namespace

int run_bench_ingest(const bench_options& opts) {
  auto base = opts.node.data_dir.empty()
                ? fs::temp_directory_path() / ("twinrt-bench-" + std::to_string(wall_ms()))
                : fs::path(opts.node.data_dir);
  fs::create_directories(base);
  auto cfg = opts.node;
  cfg.passivate_after_ms = 600'000;
  cfg.max_batch_samples = std::max<uint32_t>(cfg.max_batch_samples, static_cast<uint32_t>(opts.batch));
  // --metrics compares off and on; --metrics-address alone runs with them on.
  bool compare = opts.compare_metrics;
  bool only_on = !compare && !opts.node.metrics_address.empty();
  int rounds = compare ? std::max(1, opts.rounds) : 1;
  std::printf("twinrt bench ingest: %d machine twins, batches of %d samples, %d producers, "
              "%.0f s, %u threads, %u shards, WAL %s, metrics %s\n",
              opts.twins, opts.batch, opts.producers, opts.seconds, cfg.threads, cfg.shards,
              cfg.sync_wal ? "synced per commit" : "not synced",
              compare ? "off and on, alternating" : only_on ? "on" : "off");
  if (compare || only_on)
    std::printf("  with metrics on, /metrics is scraped every %.1f s during the measurement\n",
                opts.scrape_interval_s);
  std::vector<node_run> runs;
  for (int r = 0; r < rounds; ++r) {
    for (bool on : {false, true}) {
      if ((on && !compare && !only_on) || (!on && only_on))
        continue;
      auto dir = base / ("node-" + std::string(on ? "on-" : "off-") + std::to_string(r + 1));
      auto run = run_node(opts, cfg, dir, on);
      if (!opts.keep) {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
      if (!run.ok)
        return 1;
      std::printf("  [metrics %s] %.0f samples/s", on ? "on " : "off", run.rate);
      if (on)
        std::printf(" (%llu scrapes of %zu bytes, slowest %.3f s; one scrape on the idle "
                    "node: %.1f ms CPU, %.1f ms wall)",
                    static_cast<unsigned long long>(run.scrapes), run.scrape_bytes,
                    run.slowest_scrape_s, run.one_scrape.cpu_s * 1e3,
                    run.one_scrape.wall_s * 1e3);
      std::printf("\n");
      std::fflush(stdout);
      runs.push_back(run);
    }
  }
  const auto& first = runs.front();
  uint64_t accepted_total = first.accepted;
  double real_rate = first.rate;
  int64_t p50 = first.p50, p99 = first.p99;
  long rss_mb = peak_rss_mb();
  std::vector<double> off_rates, on_rates;
  for (auto& r : runs)
    (r.metrics ? on_rates : off_rates).push_back(r.rate);

  // The ceiling: the same records (history points and twin states, encoded
  // the same way) written straight into a fresh RocksDB, one WriteBatch per
  // batch, same WAL policy, no actors. `with_log` adds the shard log records
  // that twinrt writes with them: the raw cost of today's write path.
  double log_bytes_per_sample = 0;
  auto raw_run = [&](const char* name, bool with_log) -> double {
    std::string error;
    auto raw = runtime::storage::open({(base / name).string(), false, cfg.write_buffer_mb,
                                       cfg.block_cache_mb, nullptr, cfg.virtual_shards},
                                      error);
    if (!raw) {
      std::cerr << "bench: " << error << "\n";
      return -1;
    }
    std::vector<std::string> ids;
    for (int m = 0; m < opts.twins; ++m)
      ids.push_back(machine_id(m));
    std::atomic<uint64_t> cursor{0};
    std::mt19937_64 rng(1);
    std::vector<twins::sample> batch;
    twins::twin_state st;
    for (auto c : channels)
      st.channels[c] = {1.0, wall_ms()};
    st.own.sums["power_kw"] = 25;
    st.own.sums["energy_kwh"] = 100;
    st.own.counts[0] = 1;
    st.own.worst_id = ids.front();
    uint64_t written = 0;
    auto begin = std::chrono::steady_clock::now();
    while (written < accepted_total) {
      make_batch(batch, ids, cursor, opts.batch, rng);
      auto wb = raw->new_batch();
      for (size_t i = 0; i < batch.size(); ++i) {
        auto& s = batch[i];
        auto number = static_cast<uint32_t>(i / 4 + 1);
        runtime::twin_ref twin{s.twin, number};
        wb.put_history(twin, s.channel, s.ts_ms, s.value, 1, s.source, s.seq);
        if (with_log)
          wb.log_sample(twin, s.channel, s.ts_ms, s.value, 1, s.source, s.seq);
        if (i % 4 == 3) {
          ++st.version;
          wb.put_state(twin, st);
        }
      }
      if (auto failure = raw->write_now(std::move(wb), cfg.sync_wal); !failure.empty()) {
        std::cerr << "bench: " << failure << "\n";
        return -1;
      }
      written += batch.size();
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (with_log) {
      uint64_t bytes = 0;
      for (uint32_t shard = 0; shard < raw->virtual_shards(); ++shard)
        for (uint64_t from = 0;;) {
          auto page = raw->read_log(shard, from, 64 << 20);
          for (auto& r : page.records)
            bytes += r.size();
          if (page.records.empty() || page.error)
            break;
          from = page.next;
        }
      log_bytes_per_sample = written ? static_cast<double>(bytes) / static_cast<double>(written) : 0;
    }
    return static_cast<double>(written) / elapsed;
  };
  double raw_rate = raw_run("raw", false);
  double raw_log_rate = raw_rate < 0 ? -1 : raw_run("raw-log", true);
  if (raw_rate < 0 || raw_log_rate < 0)
    return 1;
  if (!opts.keep)
    fs::remove_all(base);

  std::printf("\n  %-44s %12.0f samples/s\n", "twinrt (gate -> shard -> twin -> RocksDB):", real_rate);
  std::printf("  %-44s %12.0f samples/s\n", "raw RocksDB WriteBatch (ceiling):", raw_rate);
  std::printf("  %-44s %12.2f\n", "ratio twinrt / ceiling:", raw_rate > 0 ? real_rate / raw_rate : 0);
  std::printf("  %-44s %12.0f samples/s\n", "raw, the same plus the shard log:", raw_log_rate);
  std::printf("  %-44s %12.2f\n", "ratio twinrt / raw with the shard log:",
              raw_log_rate > 0 ? real_rate / raw_log_rate : 0);
  std::printf("  %-44s %12.1f bytes\n", "shard log per sample (before compression):",
              log_bytes_per_sample);
  std::printf("  %-44s %12ld MB\n", "peak RSS:", rss_mb);
  std::printf("  %-44s %9lld ms p50 %6lld ms p99\n", "sample timestamp -> plant rollup:",
              static_cast<long long>(p50), static_cast<long long>(p99));
  if (compare) {
    double off = median(off_rates), on = median(on_rates);
    std::printf("  %-44s %12.0f samples/s\n", "metrics off (median of rounds):", off);
    std::printf("  %-44s %12.0f samples/s\n", "metrics on, scraped (median of rounds):", on);
    std::printf("  %-44s %+11.1f %%\n", "metrics on vs off:", off > 0 ? (on / off - 1) * 100 : 0);
  }
  return 0;
}

} // namespace twinrt::app
