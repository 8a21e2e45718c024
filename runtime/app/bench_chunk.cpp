// twinrt bench chunk: the history chunk codec (twins/chunk.hpp) on demo-like
// telemetry and on counters, next to what the same samples cost stored today
// (one RocksDB key and Cap'n Proto value per sample). No database is opened:
// today's figure is the size of the keys and values storage::put_history
// writes, before RocksDB compresses them.

#include <ctime>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "commands.hpp"
#include "twinrt/adapters/simulator.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/chunk.hpp"

namespace twinrt::app {

namespace {

struct series {
  std::string twin;
  std::string channel;
  std::vector<twins::chunk_point> points;
};

struct figures {
  uint64_t points = 0;
  uint64_t chunks = 0;
  uint64_t chunk_bytes = 0;
  uint64_t key_bytes = 0;   // one key per chunk, shaped like today's history key
  uint64_t today_bytes = 0; // today's keys and values
  double encode_s = 0;
  double decode_s = 0;
  bool exact = true;
};

// CPU time of this thread: on a machine shared with other work, wall-clock
// rates say more about the neighbours than about the codec.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Bytes today's layout writes for the same points: one history record per
// sample, in a scratch storage of its own.
uint64_t today_bytes(const std::vector<series>& all) {
  scratch_dir dir("chunk");
  std::string error;
  runtime::storage_options opts;
  opts.path = (dir.path / "db").string();
  opts.sync_wal = false;
  auto db = runtime::storage::open(opts, error);
  if (!db) {
    std::fprintf(stderr, "bench chunk: %s\n", error.c_str());
    return 0;
  }
  uint64_t total = 0;
  uint32_t number = 1;
  for (auto& s : all) {
    auto b = db->new_batch();
    std::string id = "bench/series-" + std::to_string(number);
    for (auto& p : s.points)
      b.put_history({id, number}, s.channel, p.ts_ms, p.value, p.model_version, p.source, p.seq);
    total += b.payload_bytes();
    ++number;
  }
  return total;
}

figures measure(const std::vector<series>& all, int chunk_points) {
  figures f;
  std::vector<std::string> chunks;
  double t0 = cpu_seconds();
  for (auto& s : all) {
    twins::chunk_encoder enc;
    for (auto& p : s.points) {
      enc.append(p.ts_ms, p.value, p.model_version, p.source, p.seq);
      if (enc.size() == static_cast<uint32_t>(chunk_points))
        chunks.push_back(enc.seal());
    }
    if (!enc.empty())
      chunks.push_back(enc.seal());
  }
  f.encode_s = cpu_seconds() - t0;

  t0 = cpu_seconds();
  double sum = 0;
  uint64_t decoded = 0;
  for (auto& c : chunks) {
    auto r = twins::chunk_reader::open(c);
    auto* reader = std::get_if<twins::chunk_reader>(&r);
    if (reader == nullptr) {
      f.exact = false;
      continue;
    }
    while (auto* p = reader->next()) {
      sum += p->value;
      ++decoded;
    }
    if (!reader->error().empty())
      f.exact = false;
  }
  f.decode_s = cpu_seconds() - t0;
  if (std::isnan(sum))
    std::printf("%s", ""); // keeps the sum alive

  // Exactness, outside the timed part: every point back, bit for bit.
  size_t next = 0;
  for (auto& s : all) {
    size_t at = 0;
    while (at < s.points.size()) {
      auto back = twins::decode_chunk(chunks[next++]);
      auto* pts = std::get_if<std::vector<twins::chunk_point>>(&back);
      if (pts == nullptr) {
        f.exact = false;
        return f;
      }
      for (auto& p : *pts)
        if (at >= s.points.size() || !(p == s.points[at++]))
          f.exact = false;
    }
  }

  f.chunks = chunks.size();
  f.points = decoded;
  for (auto& c : chunks)
    f.chunk_bytes += c.size();
  for (auto& s : all) {
    uint64_t n = (s.points.size() + static_cast<size_t>(chunk_points) - 1)
                 / static_cast<size_t>(chunk_points);
    f.key_bytes += n * (1 + 4 + s.channel.size() + 1 + 8); // 'H', number, channel, 0, time
  }
  f.today_bytes = today_bytes(all);
  return f;
}

// The demo's simulated enterprise (machines, vehicles, warehouses) at 1 Hz.
// `decimals` >= 0 rounds every value to that many decimals, as a device of
// that resolution reports it (4.37 read from text is 437 / 100.0); -1 keeps
// the simulator's full-precision doubles.
std::vector<series> demo_series(int points, int decimals, uint64_t seed) {
  adapters::enterprise_layout layout;
  int64_t start = 1'764'547'200'000; // 2025-12-01T00:00Z
  adapters::simulator sim(layout, seed);
  sim.set_scenario(adapters::demo_scenario(layout, start, start + points * 500LL));
  std::map<std::pair<std::string, std::string>, size_t> index;
  std::vector<series> out;
  for (int i = 0; i < points; ++i) {
    int64_t ts = start + i * 1000LL;
    for (auto& s : sim.tick(ts, 1000)) {
      auto [it, added] = index.try_emplace({s.twin, s.channel}, out.size());
      if (added)
        out.push_back(series{s.twin, s.channel, {}});
      double v = s.value;
      if (decimals >= 0)
        v = std::round(v * std::pow(10.0, decimals)) / std::pow(10.0, decimals);
      out[it->second].points.push_back({s.ts_ms, v, 1, s.source, s.seq});
    }
  }
  return out;
}

// Counters that advance by a fixed whole step every second (energy meters,
// part counters on a steady machine).
std::vector<series> counter_series(int points, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<series> out;
  for (int c = 0; c < 100; ++c) {
    series s{"bench/counter-" + std::to_string(c), "energy_wh", {}};
    double value = static_cast<double>(rng() % 1'000'000);
    double step = static_cast<double>(1 + rng() % 50);
    for (int i = 0; i < points; ++i)
      s.points.push_back({1'764'547'200'000 + i * 1000LL, value + step * i, 1, "", 0});
    out.push_back(std::move(s));
  }
  return out;
}

void print_row(const char* name, const figures& f) {
  double n = static_cast<double>(f.points);
  std::printf("%-44s %10.0f %7.2f %7.2f %7.1f %9.1f %12.2f %12.2f  %s\n", name, n,
              static_cast<double>(f.chunk_bytes) / n,
              static_cast<double>(f.chunk_bytes + f.key_bytes) / n,
              static_cast<double>(f.today_bytes) / n,
              static_cast<double>(f.today_bytes) / static_cast<double>(f.chunk_bytes + f.key_bytes),
              n / f.encode_s / 1e6, n / f.decode_s / 1e6, f.exact ? "exact" : "MISMATCH");
}

} // namespace

int run_bench_chunk(const bench_chunk_options& opts) {
  if (opts.points < 1 || opts.chunk < 1) {
    std::fprintf(stderr, "twinrt bench chunk: --points and --chunk must be at least 1\n");
    return 2;
  }
  std::printf("history chunks: %d points per series at 1 Hz, sealed every %d points\n",
              opts.points, opts.chunk);
  std::printf("%-44s %10s %7s %7s %7s %9s %12s %12s\n", "data", "points", "B/pt", "+key",
              "today", "today/new", "enc Mpt/s", "dec Mpt/s");
  struct data_set {
    const char* name;
    std::vector<series> all;
  };
  std::vector<data_set> sets;
  sets.push_back(
    {"demo enterprise, simulator's full doubles", demo_series(opts.points, -1, opts.seed)});
  sets.push_back(
    {"demo enterprise, values to 0.01", demo_series(opts.points, 2, opts.seed)});
  std::vector<series> machines;
  for (auto& s : sets.back().all)
    if (s.twin.find("/machine-") != std::string::npos)
      machines.push_back(s);
  sets.push_back({"demo machines only, values to 0.01", std::move(machines)});
  sets.push_back({"regular counters (fixed step a second)", counter_series(opts.points, opts.seed)});
  bool exact = true;
  for (auto& d : sets) {
    auto f = measure(d.all, opts.chunk);
    print_row(d.name, f);
    exact = exact && f.exact;
  }
  std::printf("B/pt: sealed chunk bytes per point; +key: with one key per chunk shaped like "
              "today's history key;\ntoday: one key and Cap'n Proto value per sample "
              "(storage::put_history), before RocksDB's compression;\nenc, dec: million "
              "points per CPU second of one thread (encode: append and seal; decode: "
              "open and iterate).\n");
  if (!exact) {
    std::fprintf(stderr, "twinrt bench chunk: a chunk did not decode to the points it was "
                         "given\n");
    return 1;
  }
  return 0;
}

} // namespace twinrt::app
