#include "twinrt/twins/analytics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "twinrt/twins/model.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt::twins {

namespace {

constexpr double ms_per_hour = 3'600'000.0;
// A sample this many residual deviations (and this fraction of the predicted
// value) away from the prediction is suspect.
constexpr double suspect_sigmas = 6;
constexpr double suspect_fraction = 0.25;
constexpr size_t suspects_for_reset = 3;
constexpr double min_points = 10; // effective samples before outliers are judged
// A contributor whose data is this many windows behind the newest counts as
// making nothing (generous: a clock replayed at high speed lets rollups lag).
constexpr int64_t silent_windows = 8;

bool same_side(double a, double b) {
  return (a > 0) == (b > 0);
}

} // namespace

bool degradation_trend::sums::operator==(const sums& o) const {
  return last_ms == o.last_ms && first_ms == o.first_ms && s0 == o.s0 && st == o.st
         && sy == o.sy && stt == o.stt && sty == o.sty && syy == o.syy && sww == o.sww
         && resets == o.resets && held == o.held;
}

degradation_trend::sums degradation_trend::save() const {
  return {last_ms_, first_ms_, s0_, st_, sy_, stt_, sty_, syy_, sww_, resets_, held_};
}

degradation_trend degradation_trend::restore(const sums& s) {
  degradation_trend t;
  t.last_ms_ = s.last_ms, t.first_ms_ = s.first_ms;
  t.s0_ = s.s0, t.st_ = s.st, t.sy_ = s.sy, t.stt_ = s.stt, t.sty_ = s.sty, t.syy_ = s.syy;
  t.sww_ = s.sww, t.resets_ = s.resets, t.held_ = s.held;
  return t;
}

void degradation_trend::restart() {
  s0_ = st_ = sy_ = stt_ = sty_ = syy_ = sww_ = 0;
  last_ms_ = first_ms_ = 0;
}

void degradation_trend::absorb(int64_t ts_ms, double y, double half_life_h) {
  bool faded = half_life_h > 0 && last_ms_ != 0
               && static_cast<double>(ts_ms - last_ms_) / ms_per_hour > 30 * half_life_h;
  if (s0_ == 0 || last_ms_ == 0 || faded) {
    restart();
    first_ms_ = ts_ms;
  } else {
    // Move the time origin to the new sample (t' = t - d), then fade the old
    // samples by the time that passed.
    double d = static_cast<double>(ts_ms - last_ms_) / ms_per_hour;
    stt_ = stt_ - 2 * d * st_ + d * d * s0_;
    st_ = st_ - d * s0_;
    sty_ = sty_ - d * sy_;
    double decay = half_life_h > 0 ? std::exp2(-d / half_life_h) : 1.0;
    s0_ *= decay, st_ *= decay, sy_ *= decay, stt_ *= decay, sty_ *= decay, syy_ *= decay;
    sww_ *= decay * decay;
  }
  s0_ += 1, sy_ += y, syy_ += y * y, sww_ += 1;
  last_ms_ = ts_ms;
}

void degradation_trend::add(int64_t ts_ms, double value, double half_life_h) {
  if (last_ms_ != 0 && ts_ms <= last_ms_)
    return;
  if (!held_.empty() && ts_ms <= held_.back().first)
    return;
  auto f = current();
  if (f && f->n_eff >= min_points) {
    double d = static_cast<double>(ts_ms - last_ms_) / ms_per_hour;
    double predicted = f->level + f->slope_per_h * d;
    double residual = value - predicted;
    double limit = std::max(suspect_sigmas * f->sigma, suspect_fraction * std::abs(predicted));
    if (std::abs(residual) > limit && limit > 0) {
      if (!held_.empty() && !same_side(held_.back().second - predicted, residual))
        held_.clear();
      held_.emplace_back(ts_ms, value);
      if (held_.size() < suspects_for_reset)
        return;
      // A new regime: start over from the samples that announced it.
      auto fresh = std::move(held_);
      held_.clear();
      restart();
      ++resets_;
      for (auto& [t, v] : fresh)
        absorb(t, v, half_life_h);
      return;
    }
  }
  held_.clear(); // the suspects were outliers: dropped
  absorb(ts_ms, value, half_life_h);
}

std::optional<degradation_trend::fit> degradation_trend::current() const {
  if (s0_ <= 0 || sww_ <= 0)
    return std::nullopt;
  double n_eff = s0_ * s0_ / sww_;
  if (n_eff < 3)
    return std::nullopt;
  double var_t = stt_ / s0_ - (st_ / s0_) * (st_ / s0_);
  if (!(var_t > 1e-12))
    return std::nullopt;
  double denom = s0_ * stt_ - st_ * st_;
  fit f;
  f.slope_per_h = (s0_ * sty_ - st_ * sy_) / denom;
  f.level = (sy_ - f.slope_per_h * st_) / s0_;
  double a = f.level, b = f.slope_per_h;
  double sse = syy_ - 2 * a * sy_ - 2 * b * sty_ + a * a * s0_ + 2 * a * b * st_ + b * b * stt_;
  double var = std::max(0.0, sse) / s0_ * n_eff / (n_eff - 2);
  f.sigma = std::sqrt(var);
  f.slope_se = std::sqrt(var / (n_eff * var_t));
  f.n_eff = n_eff;
  f.span_h = static_cast<double>(last_ms_ - first_ms_) / ms_per_hour;
  return f;
}

std::optional<rul_estimate> time_to_threshold(const degradation_trend::fit& f,
                                              double threshold, bool rising,
                                              const rul_settings& s) {
  if (f.span_h < s.min_history_h)
    return std::nullopt;
  double slope = rising ? f.slope_per_h : -f.slope_per_h;
  double gap = rising ? threshold - f.level : f.level - threshold;
  if (!(slope > 0))
    return std::nullopt;
  rul_estimate e;
  e.confidence = std::clamp(1.0 - f.slope_se / slope, 0.0, 1.0);
  if (e.confidence < s.min_confidence)
    return std::nullopt;
  e.hours = std::max(0.0, gap / slope);
  if (e.hours > s.max_hours)
    return std::nullopt;
  return e;
}

std::string_view to_string(baseline_period p) {
  switch (p) {
    case baseline_period::overall:
      return "overall";
    case baseline_period::hour_of_day:
      return "hour_of_day";
    case baseline_period::hour_of_week:
      return "hour_of_week";
  }
  return "overall";
}

std::optional<baseline_period> parse_baseline_period(std::string_view s) {
  for (auto p : {baseline_period::overall, baseline_period::hour_of_day,
                 baseline_period::hour_of_week})
    if (to_string(p) == s)
      return p;
  return std::nullopt;
}

namespace {

struct bucket_position {
  uint32_t bucket = 0;
  int64_t cycle = 0;
};

// The Unix epoch fell on a Thursday: 72 hours after a Monday 00:00.
bucket_position position(int64_t ts_ms, baseline_period period) {
  int64_t hour = ts_ms >= 0 ? ts_ms / 3'600'000 : (ts_ms - 3'599'999) / 3'600'000;
  int64_t length = period == baseline_period::hour_of_week ? 168 : 24;
  int64_t shifted = hour + (period == baseline_period::hour_of_week ? 72 : 0);
  int64_t cycle = shifted >= 0 ? shifted / length : (shifted - length + 1) / length;
  return {static_cast<uint32_t>(shifted - cycle * length), cycle};
}

void learn_into(seasonal_baseline::bucket& b, double v, int64_t cycle) {
  if (b.count == 0)
    b.first_cycle = cycle;
  b.count = std::min(b.count + 1, seasonal_baseline::memory);
  b.mean += (v - b.mean) / b.count;
}

} // namespace

std::optional<double> seasonal_baseline::expected(int64_t ts_ms, baseline_period period) const {
  if (period != baseline_period::overall) {
    auto p = position(ts_ms, period);
    auto i = buckets.find(p.bucket);
    if (i != buckets.end() && i->second.count > 0 && i->second.first_cycle < p.cycle)
      return i->second.mean;
  }
  if (overall.count >= min_overall)
    return overall.mean;
  return std::nullopt;
}

void seasonal_baseline::learn(int64_t ts_ms, double value, baseline_period period) {
  if (!std::isfinite(value))
    return;
  if (period != baseline_period::overall) {
    auto p = position(ts_ms, period);
    learn_into(buckets[p.bucket], value, p.cycle);
  }
  learn_into(overall, value, 0);
}

bool production_report::operator==(const production_report& o) const {
  return throughput_per_h == o.throughput_per_h
         && throughput_baseline_per_h == o.throughput_baseline_per_h
         && throughput_deviation_pct == o.throughput_deviation_pct
         && energy_per_unit_kwh == o.energy_per_unit_kwh
         && energy_per_unit_baseline_kwh == o.energy_per_unit_baseline_kwh
         && idle_energy_kwh_per_h == o.idle_energy_kwh_per_h
         && idle_energy_baseline_kwh_per_h == o.idle_energy_baseline_kwh_per_h
         && energy_waste_pct == o.energy_waste_pct;
}

std::optional<production_report>
production_tracker::observe(const std::map<std::string, production_totals>& now,
                            int64_t window_ms, baseline_period period) {
  constexpr double slack = 1e-9;
  int64_t latest = 0;
  for (auto i = contributors.begin(); i != contributors.end();)
    i = now.count(i->first) ? std::next(i) : contributors.erase(i); // moved away
  for (auto& [id, t] : now) {
    if (t.ts_ms == 0)
      continue; // nothing reported yet
    latest = std::max(latest, t.ts_ms);
    auto [c, fresh] = contributors.try_emplace(id);
    auto& a = c->second.anchor;
    if (fresh || t.parts < a.parts - slack || t.energy_kwh < a.energy_kwh - slack
        || t.idle_energy_kwh < a.idle_energy_kwh - slack) {
      a = t; // first seen, or totals went down (a reset): start over
      continue;
    }
    if (t.ts_ms - a.ts_ms < window_ms)
      continue;
    double hours = static_cast<double>(t.ts_ms - a.ts_ms) / ms_per_hour;
    double energy = t.energy_kwh - a.energy_kwh;
    c->second.has_rate = true;
    c->second.parts_per_h = (t.parts - a.parts) / hours;
    c->second.energy_kwh_per_h = energy / hours;
    c->second.idle_energy_kwh_per_h = std::min(energy, t.idle_energy_kwh - a.idle_energy_kwh) / hours;
    a = t;
  }
  if (latest == 0)
    return std::nullopt;
  if (window_start_ms == 0 || latest < window_start_ms) {
    window_start_ms = latest;
    return std::nullopt;
  }
  if (latest - window_start_ms < window_ms)
    return std::nullopt;
  double parts = 0, energy = 0, idle = 0;
  bool any = false;
  for (auto& [id, c] : contributors) {
    if (!c.has_rate || latest - c.anchor.ts_ms > silent_windows * window_ms)
      continue; // no rate yet, or silent: makes nothing
    any = true;
    parts += c.parts_per_h;
    energy += c.energy_kwh_per_h;
    idle += c.idle_energy_kwh_per_h;
  }
  int64_t mid = window_start_ms + (latest - window_start_ms) / 2;
  window_start_ms = latest;
  if (!any)
    return std::nullopt;

  // Rates are per hour: one hour's parts, energy and idle energy.
  production_report r;
  r.throughput_per_h = parts;
  r.throughput_baseline_per_h = throughput.expected(mid, period);
  if (r.throughput_baseline_per_h && *r.throughput_baseline_per_h > 0)
    r.throughput_deviation_pct =
      (r.throughput_per_h - *r.throughput_baseline_per_h) / *r.throughput_baseline_per_h * 100;
  r.idle_energy_kwh_per_h = idle;
  r.idle_energy_baseline_kwh_per_h = idle_energy.expected(mid, period);
  auto busy = busy_energy.expected(mid, period);
  if (parts > 0) {
    r.energy_per_unit_kwh = energy / parts;
    if (busy && r.idle_energy_baseline_kwh_per_h)
      r.energy_per_unit_baseline_kwh = (*busy * parts + *r.idle_energy_baseline_kwh_per_h) / parts;
  }
  if (busy && r.idle_energy_baseline_kwh_per_h) {
    double expected = *busy * parts + *r.idle_energy_baseline_kwh_per_h;
    if (expected > 0)
      r.energy_waste_pct = (energy - expected) / expected * 100;
  }
  throughput.learn(mid, r.throughput_per_h, period);
  idle_energy.learn(mid, r.idle_energy_kwh_per_h, period);
  if (parts > 0)
    busy_energy.learn(mid, (energy - idle) / parts, period);
  last = r;
  return r;
}

std::vector<low_stock> find_low_stock(const std::map<std::string, int64_t>& stock,
                                      const std::map<std::string, int64_t>& rules) {
  std::vector<low_stock> out;
  for (auto& [sku, minimum] : rules) {
    auto i = stock.find(sku);
    int64_t units = i == stock.end() ? 0 : i->second;
    if (units < minimum)
      out.push_back({sku, units, minimum});
  }
  return out;
}

bool analytics_state::operator==(const analytics_state& o) const {
  return trends == o.trends && production == o.production && parts == o.parts
         && last_parts_counter == o.last_parts_counter && idle_energy_kwh == o.idle_energy_kwh
         && derived == o.derived && warnings == o.warnings;
}

void observe_sample(analytics_state& a, const model& m, std::string_view channel,
                    int64_t ts_ms, double value) {
  auto& spec = m.analytics;
  if (channel == spec.parts_channel) {
    if (a.last_parts_counter >= 0) {
      double delta = value - a.last_parts_counter;
      a.parts += delta >= 0 ? delta : value; // a drop is a counter reset
    }
    a.last_parts_counter = value;
  }
  for (auto& c : spec.degradation_channels) {
    if (c == channel) {
      auto i = a.trends.try_emplace(c).first;
      i->second.add(ts_ms, value, spec.trend_half_life_h);
    }
  }
}

void observe_energy(twin_state& st, const model& m, double kwh) {
  auto& spec = m.analytics;
  if (spec.idle_channel.empty())
    return;
  auto i = st.channels.find(spec.idle_channel);
  if (i != st.channels.end() && i->second.value == spec.idle_equals)
    st.analytics.idle_energy_kwh += kwh;
}

namespace {

std::string format(const char* fmt, double a, double b = 0, double c = 0) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c);
  return buf;
}

double sum_of(const contribution& c, const std::string& key) {
  auto i = c.sums.find(key);
  return i == c.sums.end() ? 0.0 : i->second;
}

} // namespace

bool refresh_analytics(twin_state& st, const model& m,
                       const std::map<std::string, contribution>* children) {
  auto& a = st.analytics;
  auto& spec = m.analytics;
  auto before_derived = a.derived;
  auto before_warnings = a.warnings;
  auto before_production = a.production;
  a.derived.clear();
  a.warnings.clear();

  // Remaining useful life: the nearest crossing of an alarm threshold.
  std::optional<rul_estimate> nearest;
  for (auto& channel : spec.degradation_channels) {
    auto t = a.trends.find(channel);
    if (t == a.trends.end())
      continue;
    auto f = t->second.current();
    if (!f)
      continue;
    a.derived[channel + "_slope_per_h"] = f->slope_per_h;
    for (auto& rule : m.health) {
      if (rule.channel != channel)
        continue;
      std::optional<rul_estimate> e;
      if (rule.alarm_above)
        e = time_to_threshold(*f, *rule.alarm_above, true, spec.rul);
      else if (rule.alarm_below)
        e = time_to_threshold(*f, *rule.alarm_below, false, spec.rul);
      if (e && (!nearest || e->hours < nearest->hours))
        nearest = e;
    }
  }
  if (nearest) {
    a.derived["rul_hours"] = nearest->hours;
    a.derived["rul_confidence"] = nearest->confidence;
  }

  // Production baselines, from the rollup.
  if (spec.production && children) {
    std::map<std::string, production_totals> now;
    for (auto& [id, c] : *children)
      now[id] = {c.latest_ts_ms, sum_of(c, "parts"), sum_of(c, "energy_kwh"),
                 sum_of(c, "idle_energy_kwh")};
    a.production.observe(now, spec.window_ms, spec.baseline);
  }
  if (spec.production && a.production.last) {
    auto& r = *a.production.last;
    auto put = [&](const char* name, const std::optional<double>& v) {
      if (v)
        a.derived[name] = *v;
    };
    a.derived["throughput_per_h"] = r.throughput_per_h;
    put("throughput_baseline_per_h", r.throughput_baseline_per_h);
    put("throughput_deviation_pct", r.throughput_deviation_pct);
    put("energy_per_unit_kwh", r.energy_per_unit_kwh);
    put("energy_per_unit_baseline_kwh", r.energy_per_unit_baseline_kwh);
    a.derived["idle_energy_kwh_per_h"] = r.idle_energy_kwh_per_h;
    put("idle_energy_baseline_kwh_per_h", r.idle_energy_baseline_kwh_per_h);
    put("energy_waste_pct", r.energy_waste_pct);
    if (spec.energy_waste_warning_pct && r.energy_waste_pct
        && *r.energy_waste_pct > *spec.energy_waste_warning_pct)
      a.warnings.push_back(format(
        "energy waste %.1f%% above baseline (idle %.2f kWh/h, baseline %.2f kWh/h)",
        *r.energy_waste_pct, r.idle_energy_kwh_per_h,
        r.idle_energy_baseline_kwh_per_h.value_or(0)));
  }

  // Low stock.
  if (!spec.low_stock.empty()) {
    auto low = find_low_stock(st.stock, spec.low_stock);
    a.derived["low_stock_skus"] = static_cast<double>(low.size());
    for (auto& l : low)
      a.warnings.push_back("low stock: " + l.sku + " has " + std::to_string(l.units)
                           + " units, minimum " + std::to_string(l.minimum));
  }
  return a.derived != before_derived || a.warnings != before_warnings
         || !(a.production == before_production);
}

} // namespace twinrt::twins
