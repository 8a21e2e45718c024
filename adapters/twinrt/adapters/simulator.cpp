#include "twinrt/adapters/simulator.hpp"

#include <algorithm>
#include <chrono>
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
      // One machine in eight wears out: its vibration climbs towards alarm.
      m.wear_rate = u(rng_) < 0.125 ? 0.5 + u(rng_) : 0.0;
      machines_.push_back(std::move(m));
    } else if (t.kind == "vehicle") {
      vehicles_.push_back({t.id, 0, 50 + 50 * u(rng_)});
    } else if (t.kind == "warehouse") {
      warehouses_.push_back(t.id);
    }
  }
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  seq_ = static_cast<uint64_t>(now) * 1000; // rises across restarts
}

void simulator::seed_stock(const std::string& warehouse, const std::string& sku, int64_t units) {
  stock_[{warehouse, sku}] = units;
}

std::vector<twins::sample> simulator::tick(int64_t ts, int64_t dt_ms) {
  std::vector<twins::sample> out;
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 1);
  double hours = static_cast<double>(dt_ms) / 3'600'000.0;
  for (auto& m : machines_) {
    if (u(rng_) < 0.002)
      m.state = m.state == 1 ? 2 : 1; // running <-> idle
    m.wear += m.wear_rate * hours * 60; // demo time runs 60x for wear
    double running = m.state == 1 ? 1.0 : 0.0;
    double vib = std::clamp(1.5 + m.wear + 0.3 * noise(rng_) * running, 0.0, 100.0);
    double temp = std::clamp(45 + 20 * running + 2 * noise(rng_), -40.0, 400.0);
    double power = std::max(0.0, running * 30 + (1 - running) * 4 + noise(rng_));
    m.parts += running * static_cast<double>(dt_ms) / 1000.0 * 0.5;
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
    for (int k = 0; k < 3; ++k) {
      auto name = sku_name(sku(rng_));
      auto& held = stock_[{w, name}];
      double r = u(rng_);
      if (r < 0.4 || held < 20) {
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

} // namespace twinrt::adapters
