// twinrt bench query: the node's query index on a generated fleet of machine
// twins, beside the ceiling of the same filter and top-N over a plain array of
// the filtered value (no index, no ids, no paging).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "commands.hpp"
#include "twinrt/runtime/query.hpp"

namespace twinrt::app {

namespace {

using clock_type = std::chrono::steady_clock;

struct latency {
  double p50_ms = 0;
  double p99_ms = 0;
  size_t matched = 0; // the answer's total (or the ceiling's match count)
};

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

latency percentiles(std::vector<double> ms, size_t matched) {
  std::sort(ms.begin(), ms.end());
  latency l;
  l.p50_ms = ms[(ms.size() - 1) / 2];
  l.p99_ms = ms[static_cast<size_t>(static_cast<double>(ms.size() - 1) * 0.99)];
  l.matched = matched;
  return l;
}

// Runs `q` `iterations` times; fails loudly when the index refuses it.
bool measure(const runtime::query_index& index, const runtime::query_request& q, int iterations,
             latency& out) {
  std::vector<double> ms;
  size_t total = 0;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = clock_type::now();
    auto page = index.run(q);
    ms.push_back(ms_since(t0));
    if (!page) {
      std::fprintf(stderr, "bench query: %s\n", runtime::describe(page.error()).c_str());
      return false;
    }
    total = page->total;
  }
  out = percentiles(std::move(ms), total);
  return true;
}

// Filter `> threshold` and keep the 20 smallest values: what the index's
// answer needs at the least, over a contiguous array.
latency ceiling(const std::vector<double>& values, double threshold, size_t top, int iterations) {
  std::vector<double> ms;
  std::vector<double> keep;
  keep.reserve(values.size());
  size_t matched = 0;
  double sink = 0;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = clock_type::now();
    keep.clear();
    for (double v : values)
      if (v > threshold)
        keep.push_back(v);
    size_t n = std::min(top, keep.size());
    std::partial_sort(keep.begin(), keep.begin() + static_cast<std::ptrdiff_t>(n), keep.end());
    ms.push_back(ms_since(t0));
    matched = keep.size();
    sink += n > 0 ? keep[0] : 0;
  }
  if (sink < 0)
    std::printf("%f\n", sink); // keeps the loop from being optimized away
  return percentiles(std::move(ms), matched);
}

void print_row(const char* what, const latency& l, const latency* base) {
  std::printf("  %-58s %9.2f %9.2f %10zu", what, l.p50_ms, l.p99_ms, l.matched);
  if (base)
    std::printf(" %8.1fx", l.p50_ms / std::max(base->p50_ms, 1e-6));
  std::printf("\n");
}

// The machine's position in generation order, from its id
// "acme/plant-P/line-L/mN"; -1 for any other id.
long machine_position(const std::string& id, int per_line, int lines_per_plant) {
  long p = 0, l = 0, n = 0;
  if (std::sscanf(id.c_str(), "acme/plant-%ld/line-%ld/m%ld", &p, &l, &n) != 3)
    return -1;
  return ((p - 1) * lines_per_plant + (l - 1)) * per_line + (n - 1);
}

} // namespace

int run_bench_query(const bench_query_options& opts) {
  if (opts.twins < 1 || opts.iterations < 1) {
    std::fprintf(stderr, "bench query: --twins and --iterations must be at least 1\n");
    return 2;
  }
  // acme / plant-P / line-L / mN: 1,000 machines a line, 100 lines a plant.
  const int per_line = 1000, lines_per_plant = 100;
  std::vector<runtime::twin_meta> metas;
  metas.reserve(static_cast<size_t>(opts.twins) + static_cast<size_t>(opts.twins) / per_line + 64);
  uint32_t number = 1;
  metas.push_back({"acme", number++, "enterprise", ""});
  std::vector<size_t> machines; // positions in metas
  machines.reserve(static_cast<size_t>(opts.twins));
  std::string plant, line;
  for (int m = 0; m < opts.twins; ++m) {
    int l = m / per_line;
    if (m % per_line == 0) {
      int p = l / lines_per_plant;
      if (l % lines_per_plant == 0) {
        plant = "acme/plant-" + std::to_string(p + 1);
        metas.push_back({plant, number++, "plant", "acme"});
      }
      line = plant + "/line-" + std::to_string(l % lines_per_plant + 1);
      metas.push_back({line, number++, "line", plant});
    }
    machines.push_back(metas.size());
    metas.push_back({line + "/m" + std::to_string(m % per_line + 1), number++, "machine", line});
  }

  auto t0 = clock_type::now();
  runtime::query_index index;
  index.load(metas);
  double load_ms = ms_since(t0);

  // Values as a running machine has them: vibration mostly low with a tail
  // above the warning threshold, power, temperature, a counter.
  std::mt19937_64 rng(opts.seed);
  std::gamma_distribution<double> vibration(4.0, 0.6); // mean 2.4, ~6% above 4.5
  std::normal_distribution<double> power(40, 12), temp(60, 8);
  std::vector<double> vib_values;
  vib_values.reserve(machines.size());
  t0 = clock_type::now();
  twins::twin_state st;
  for (size_t i = 0; i < machines.size(); ++i) {
    const auto& m = metas[machines[i]];
    double v = vibration(rng);
    vib_values.push_back(v);
    st.version = 1;
    st.channels["vibration_mm_s"] = {v, 1000};
    st.channels["power_kw"] = {power(rng), 1000};
    st.channels["temperature_c"] = {temp(rng), 1000};
    st.channels["cycles"] = {static_cast<double>(i % 100000), 1000};
    st.status = v > 7.1 ? twins::health_status::alarm
              : v > 4.5 ? twins::health_status::warning
                        : twins::health_status::ok;
    st.score = st.status == twins::health_status::ok ? 100 : 60;
    index.update(m.id, m.number, st);
  }
  double update_ms = ms_since(t0);

  std::printf("twinrt bench query: %d machine twins (%zu twins in all), %d iterations per figure\n",
              opts.twins, metas.size(), opts.iterations);
  std::printf("  index: load %.0f ms, first values %.0f ms (%.2f us a twin), %.0f MB held\n", load_ms,
              update_ms, update_ms * 1000 / static_cast<double>(machines.size()),
              static_cast<double>(index.memory_bytes()) / 1e6);
  std::printf("  %-58s %9s %9s %10s %9s\n", "", "p50 ms", "p99 ms", "matched", "/ceiling");

  latency base = ceiling(vib_values, 4.5, 20, opts.iterations);
  print_row("ceiling: filter + top 20 over a double array", base, nullptr);

  runtime::query_request q;
  q.kind = "machine";
  q.where = "vibration_mm_s > 4.5";
  q.sort_by = "vibration_mm_s";
  q.limit = 20;
  latency l;
  if (!measure(index, q, opts.iterations, l))
    return 1;
  print_row("--kind machine --where 'vibration_mm_s > 4.5' --sort .. -n 20", l, &base);

  // The answer must be the ceiling's: the same count, the same 20 values.
  auto first = index.run(q);
  {
    std::vector<double> expect;
    for (double v : vib_values)
      if (v > 4.5)
        expect.push_back(v);
    std::sort(expect.begin(), expect.end());
    bool same = first && first->total == expect.size()
             && first->hits.size() == std::min<size_t>(20, expect.size());
    for (size_t i = 0; same && i < first->hits.size(); ++i) {
      long pos = machine_position(first->hits[i].id, per_line, lines_per_plant);
      same = pos >= 0 && vib_values[static_cast<size_t>(pos)] == expect[i];
    }
    if (!same) {
      std::fprintf(stderr, "bench query: the index's answer differs from the ceiling's\n");
      return 1;
    }
  }
  if (!first->next_page_token.empty()) {
    auto q2 = q;
    q2.page_token = first->next_page_token;
    if (!measure(index, q2, opts.iterations, l))
      return 1;
    print_row("  the same, second page (page token)", l, &base);
  }
  auto qd = q;
  qd.descending = true;
  if (!measure(index, qd, opts.iterations, l))
    return 1;
  print_row("  the same, --desc", l, &base);

  runtime::query_request by_id;
  by_id.kind = "machine";
  by_id.where = "vibration_mm_s > 4.5";
  by_id.limit = 20;
  if (!measure(index, by_id, opts.iterations, l))
    return 1;
  print_row("--kind machine --where 'vibration_mm_s > 4.5' (id order)", l, &base);

  runtime::query_request sub = q;
  sub.subtree = "acme/plant-1";
  if (!measure(index, sub, opts.iterations, l))
    return 1;
  print_row("  the first, within --subtree acme/plant-1", l, &base);

  runtime::query_request health;
  health.health = {twins::health_status::alarm};
  health.limit = 20;
  if (!measure(index, health, opts.iterations, l))
    return 1;
  print_row("--health alarm (any kind, id order)", l, &base);
  return 0;
}

} // namespace twinrt::app
