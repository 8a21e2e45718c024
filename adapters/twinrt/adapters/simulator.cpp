#include "twinrt/adapters/simulator.hpp"
#include "twinrt/twins/clock.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace twinrt::adapters {

namespace {

std::string numbered(const char* prefix, int i, int width) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%0*d", prefix, width, i);
  return buf;
}

} // namespace

std::string sku_name(int i) {
  return numbered("SKU", i, 4);
}

std::vector<runtime::twin_spec> enterprise_twins(const enterprise_layout& l) {
  std::vector<runtime::twin_spec> out;
  out.push_back({l.root, "enterprise", ""});
  for (int p = 1; p <= l.plants; ++p) {
    auto plant = l.root + "/" + numbered("plant", p, 1);
    out.push_back({plant, "plant", l.root});
    for (int li = 1; li <= l.lines_per_plant; ++li) {
      auto line = plant + "/" + numbered("line", li, 1);
      out.push_back({line, "line", plant});
      for (int m = 1; m <= l.machines_per_line; ++m)
        out.push_back({line + "/" + numbered("machine", m, 2), "machine", line});
    }
  }
  for (int w = 1; w <= l.warehouses; ++w)
    out.push_back({l.root + "/" + numbered("warehouse", w, 1), "warehouse", l.root});
  if (l.depots > 0) {
    auto fleet = l.root + "/fleet";
    out.push_back({fleet, "fleet", l.root});
    for (int d = 1; d <= l.depots; ++d)
      out.push_back({fleet + "/" + numbered("depot", d, 1), "depot", fleet});
    for (int v = 1; v <= l.vehicles; ++v)
      out.push_back({fleet + "/" + numbered("vehicle", v, 2), "vehicle",
                     fleet + "/" + numbered("depot", (v - 1) % l.depots + 1, 1)});
  }
  return out;
}

simulator::simulator(enterprise_layout layout, uint64_t seed)
  : layout_(std::move(layout)), rng_(seed) {
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& t : enterprise_twins(layout_)) {
    if (t.kind == "machine") {
      machine m;
      m.id = t.id;
      m.line = t.parent;
      machines_.push_back(std::move(m));
    } else if (t.kind == "vehicle") {
      vehicles_.push_back({t.id, 0, 50 + 50 * u(rng_)});
    } else if (t.kind == "warehouse") {
      warehouses_.push_back(t.id);
    }
  }
  auto now = twins::wall_ms();
  seq_ = static_cast<uint64_t>(now) * 1000; // rises across restarts
}

analytics_scenario demo_scenario(const enterprise_layout& l, int64_t start_ms,
                                 int64_t anomalies_from_ms) {
  analytics_scenario s;
  auto line = [&](int plant, int li) {
    return l.root + "/" + numbered("plant", std::min(plant, l.plants), 1) + "/"
           + numbered("line", std::min(li, l.lines_per_plant), 1);
  };
  auto machine = [&](int plant, int li, int m) {
    return line(plant, li) + "/" + numbered("machine", std::min(m, l.machines_per_line), 2);
  };
  // Alarm at 7.1 mm/s: about 30 h, 65 h and 160 h away at the end of a
  // 12-hour run; the fourth crosses 10.5 mm/s, is repaired and wears again.
  s.wearing = {{machine(1, 1, 3), 0.12, 2.0, start_ms},
               {machine(2, 2, 5), 0.06, 2.5, start_ms},
               {machine(1, 4, 8), 0.03, 2.0, start_ms},
               {machine(2, 4, 10), 0.8, 2.0, start_ms}};
  s.anomalies_from_ms = anomalies_from_ms;
  s.slow_line = line(2, 3);
  s.wasteful_line = line(1, 2);
  s.low_stock_warehouse = l.root + "/" + numbered("warehouse", std::min(2, l.warehouses), 1);
  s.low_stock_sku = sku_name(std::min(7, l.skus));
  return s;
}

void simulator::set_scenario(analytics_scenario s) {
  scenario_ = std::move(s);
  for (auto& m : machines_)
    for (auto& w : scenario_.wearing)
      if (w.id == m.id) {
        m.wear = w.vibration - 1.5;
        m.wear_rate = w.rate_per_h;
        m.wear_from_ms = w.from_ms;
      }
}

double simulator::vibration_level(const std::string& id) const {
  for (auto& m : machines_)
    if (m.id == id)
      return 1.5 + m.wear;
  return 0;
}

int64_t simulator::stock(const std::string& warehouse, const std::string& sku) const {
  auto i = stock_.find({warehouse, sku});
  return i == stock_.end() ? 0 : i->second;
}

void simulator::seed_stock(const std::string& warehouse, const std::string& sku, int64_t units) {
  stock_[{warehouse, sku}] = units;
}

std::vector<twins::sample> simulator::tick(int64_t ts, int64_t dt_ms) {
  std::vector<twins::sample> out;
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 1);
  double hours = static_cast<double>(dt_ms) / 3'600'000.0;
  bool anomalies = scenario_.anomalies_from_ms != 0 && ts >= scenario_.anomalies_from_ms;
  double minutes = static_cast<double>(dt_ms) / 60'000.0;
  for (auto& m : machines_) {
    // Runs about 4 minutes, idles about 1, whatever the tick length.
    double mean_minutes = m.state == 1 ? 4.0 : 1.0;
    if (u(rng_) < 1 - std::exp(-minutes / mean_minutes))
      m.state = m.state == 1 ? 2 : 1; // running <-> idle
    if (ts >= m.wear_from_ms)
      m.wear += m.wear_rate * hours;
    double running = m.state == 1 ? 1.0 : 0.0;
    double idle_kw = anomalies && m.line == scenario_.wasteful_line ? scenario_.wasteful_idle_kw : 4.0;
    double rate = anomalies && m.line == scenario_.slow_line ? 0.5 * scenario_.slow_factor : 0.5;
    double vib = std::clamp(1.5 + m.wear + 0.3 * noise(rng_) * running, 0.0, 100.0);
    double temp = std::clamp(45 + 20 * running + 2 * noise(rng_), -40.0, 400.0);
    // A slower cycle draws proportionally less power: the slow line makes
    // fewer parts without wasting energy on each.
    double power = std::max(0.0, running * 60 * rate + (1 - running) * idle_kw + noise(rng_));
    m.parts += running * static_cast<double>(dt_ms) / 1000.0 * rate;
    out.push_back({m.id, "vibration_mm_s", ts, vib, "", 0});
    out.push_back({m.id, "temperature_c", ts, temp, "", 0});
    out.push_back({m.id, "power_kw", ts, power, "", 0});
    out.push_back({m.id, "state", ts, static_cast<double>(m.state), "", 0});
    out.push_back({m.id, "parts_total", ts, std::floor(m.parts), "", 0});
    if (m.wear > 9) { // maintenance: replaced bearing
      m.wear = 0;
    }
  }
  for (auto& v : vehicles_) {
    double r = u(rng_);
    if (v.state == 0 && r < 0.01)
      v.state = 1;
    else if (v.state == 1 && (r < 0.005 || v.battery < 15))
      v.state = v.battery < 30 ? 2 : 0;
    else if (v.state == 2 && v.battery > 95)
      v.state = 0;
    double speed = v.state == 1 ? std::clamp(60 + 15 * noise(rng_), 0.0, 200.0) : 0.0;
    double power = v.state == 1 ? speed * 0.25 : v.state == 2 ? 50.0 : 0.0;
    v.battery = std::clamp(v.battery + (v.state == 2 ? 2.0 : v.state == 1 ? -0.05 : 0.0) * hours * 3600,
                           0.0, 100.0);
    out.push_back({v.id, "speed_kmh", ts, speed, "", 0});
    out.push_back({v.id, "battery_pct", ts, v.battery, "", 0});
    out.push_back({v.id, "power_kw", ts, power, "", 0});
    out.push_back({v.id, "state", ts, static_cast<double>(v.state), "", 0});
  }
  std::uniform_int_distribution<int> sku(1, layout_.skus);
  for (auto& w : warehouses_) {
    out.push_back({w, "power_kw", ts, 80 + 5 * noise(rng_), "", 0});
    bool running_low = anomalies && w == scenario_.low_stock_warehouse;
    if (running_low) { // picks of an eighth of the stock, no receipts, down to 3 units
      auto& held = stock_[{w, scenario_.low_stock_sku}];
      int64_t units = std::min<int64_t>(held - 3, std::max<int64_t>(1, held / 8));
      if (units > 0) {
        held -= units;
        out.push_back({w, "pick/" + scenario_.low_stock_sku, ts, static_cast<double>(units),
                       "simulator", ++seq_});
      }
    }
    for (int k = 0; k < 3; ++k) {
      auto name = sku_name(sku(rng_));
      if (running_low && name == scenario_.low_stock_sku)
        continue;
      auto& held = stock_[{w, name}];
      double r = u(rng_);
      if (r < 0.4 || held < 30) {
        int64_t units = 10 + static_cast<int64_t>(u(rng_) * 40);
        held += units;
        out.push_back({w, "receipt/" + name, ts, static_cast<double>(units), "simulator", ++seq_});
      } else {
        int64_t units = std::min<int64_t>(held, 1 + static_cast<int64_t>(u(rng_) * 15));
        held -= units;
        out.push_back({w, "pick/" + name, ts, static_cast<double>(units), "simulator", ++seq_});
      }
    }
  }
  return out;
}

caf::expected<uint64_t> replay_history(runtime::node& n, simulator& sim, int64_t from_ms,
                                       int64_t to_ms, int64_t step_ms,
                                       const std::function<void(int64_t)>& progress,
                                       const std::function<bool()>& stop) {
  uint64_t accepted = 0;
  int64_t next_report = from_ms + 3'600'000;
  for (int64_t ts = from_ms; ts < to_ms; ts += step_ms) {
    if (stop && stop())
      break;
    auto r = n.ingest_waiting(sim.tick(ts, step_ms));
    if (!r)
      return r.error();
    accepted += r->accepted;
    if (progress && ts >= next_report) {
      progress(ts);
      next_report += 3'600'000;
    }
  }
  return accepted;
}

} // namespace twinrt::adapters
