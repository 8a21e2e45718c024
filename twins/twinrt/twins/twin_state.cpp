#include "twinrt/twins/twin_state.hpp"

#include "twinrt/twins/names.hpp"

#include <cmath>
#include <sstream>

namespace twinrt::twins {

namespace {

// Integration stops over gaps longer than this: a twin that was silent for an
// hour did not draw its last reading for the whole hour.
constexpr int64_t max_integration_gap_ms = 5 * 60 * 1000;

std::string describe(std::string_view twin, const sample& s, uint32_t index) {
  std::ostringstream os;
  os << "sample " << index << " for " << printable(twin) << '.' << printable(s.channel) << ": ";
  return os.str();
}

std::string number(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "Inf" : "-Inf";
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

bool matches(const health_rule& r, double v, bool alarm) {
  if (alarm)
    return (r.alarm_above && v > *r.alarm_above) || (r.alarm_below && v < *r.alarm_below)
           || (r.alarm_equals && v == *r.alarm_equals);
  return (r.warning_above && v > *r.warning_above)
         || (r.warning_below && v < *r.warning_below)
         || (r.warning_equals && v == *r.warning_equals);
}

void roll_day(twin_state& st, int64_t ts_ms) {
  auto day = utc_day(ts_ms);
  if (day > st.energy_day) {
    st.energy_day = day;
    st.energy_today_kwh = 0;
  }
}

void add_energy(twin_state& st, int64_t ts_ms, double kwh) {
  st.energy_kwh += kwh;
  if (utc_day(ts_ms) == st.energy_day)
    st.energy_today_kwh += kwh;
}

} // namespace

const char* to_string(reject_reason reason) {
  switch (reason) {
    case reject_reason::unknown_twin:
      return "unknown_twin";
    case reject_reason::unknown_channel:
      return "unknown_channel";
    case reject_reason::not_finite:
      return "not_finite";
    case reject_reason::out_of_range:
      return "out_of_range";
    case reject_reason::future_timestamp:
      return "future_timestamp";
    case reject_reason::duplicate_sequence:
      return "duplicate_sequence";
    case reject_reason::not_whole_units:
      return "not_whole_units";
    case reject_reason::invalid_name:
      return "invalid_name";
    case reject_reason::bad_timestamp:
      return "bad_timestamp";
  }
  return "unknown";
}

bool twin_state::operator==(const twin_state& o) const {
  return version == o.version && model_version == o.model_version
         && channels == o.channels && sources == o.sources
         && energy_kwh == o.energy_kwh && energy_today_kwh == o.energy_today_kwh
         && energy_day == o.energy_day && last_power_kw == o.last_power_kw
         && last_power_ms == o.last_power_ms && last_counter_kwh == o.last_counter_kwh
         && stock == o.stock && status == o.status && score == o.score
         && offline == o.offline
         && last_data_ms == o.last_data_ms && created_ms == o.created_ms && own == o.own && alerts == o.alerts
         && analytics == o.analytics;
}

std::vector<std::string> values_outside(const twin_state& state, const model& m) {
  std::vector<std::string> out;
  for (auto& [channel, latest] : state.channels) {
    auto spec = m.find_channel(channel, nullptr);
    if (spec == nullptr || spec->type == channel_type::movement)
      continue;
    if (latest.value < spec->min || latest.value > spec->max)
      out.push_back(channel + " = " + number(latest.value) + ", outside [" + number(spec->min)
                    + ", " + number(spec->max) + "]" + (spec->unit.empty() ? "" : " ")
                    + spec->unit);
  }
  return out;
}

std::vector<rejection> apply_samples(twin_state& st, const model& m,
                                     std::string_view twin_id,
                                     const std::vector<sample>& batch,
                                     const std::vector<uint32_t>& indices,
                                     int64_t now_ms, const sample_limits& limits,
                                     std::vector<uint32_t>& applied) {
  std::vector<rejection> out;
  auto refuse = [&](uint32_t i, reject_reason r, std::string why) {
    out.push_back({i, r, describe(twin_id, batch[i], i) + why});
  };
  bool changed = false;
  // Data age is the age of the newest sample time, never later than a
  // timestamp may be: arriving now does not make an old sample fresh.
  auto note_data = [&](int64_t ts_ms) {
    st.last_data_ms = std::max(st.last_data_ms, std::min(ts_ms, now_ms + limits.future_skew_ms));
  };
  for (auto i : indices) {
    const sample& s = batch[i];
    if (auto why = channel_refusal(s.channel)) {
      refuse(i, reject_reason::invalid_name, std::move(*why));
      continue;
    }
    if (s.ts_ms <= 0) {
      refuse(i, reject_reason::bad_timestamp,
             "timestamp " + std::to_string(s.ts_ms)
               + " is not after 1970-01-01 (milliseconds since the Unix epoch)");
      continue;
    }
    if (s.channel == offline_channel) {
      if (s.value != 0 && s.value != 1) {
        refuse(i, reject_reason::out_of_range,
               "value " + number(s.value) + " is neither 1 (offline) nor 0 (online)");
        continue;
      }
      st.offline = s.value == 1;
      if (!st.offline) // back online is a sign of life, as of its own time
        note_data(s.ts_ms);
      applied.push_back(i);
      changed = true;
      continue;
    }
    std::string_view sku;
    auto spec = m.find_channel(s.channel, &sku);
    if (spec == nullptr) {
      refuse(i, reject_reason::unknown_channel,
             "unknown channel for kind " + m.kind + " (model version "
               + std::to_string(m.version) + ")");
      continue;
    }
    if (!std::isfinite(s.value)) {
      refuse(i, reject_reason::not_finite, "value " + number(s.value) + " is not a finite number");
      continue;
    }
    if (s.value < spec->min || s.value > spec->max) {
      refuse(i, reject_reason::out_of_range,
             "value " + number(s.value) + " is outside [" + number(spec->min) + ", "
               + number(spec->max) + "] " + spec->unit);
      continue;
    }
    if ((spec->type == channel_type::movement || spec->type == channel_type::state)
        && s.value != std::floor(s.value)) {
      refuse(i, reject_reason::not_whole_units,
             "value " + number(s.value) + " is not a whole number");
      continue;
    }
    if (s.ts_ms > now_ms + limits.future_skew_ms) {
      refuse(i, reject_reason::future_timestamp,
             "timestamp " + std::to_string(s.ts_ms) + " is "
               + std::to_string(s.ts_ms - now_ms) + " ms in the future (allowed: "
               + std::to_string(limits.future_skew_ms) + " ms)");
      continue;
    }
    if (!s.source.empty() && s.seq != 0) {
      auto& last = st.sources[{s.channel, s.source}];
      if (s.seq <= last) {
        refuse(i, reject_reason::duplicate_sequence,
               "sequence " + std::to_string(s.seq) + " from source " + s.source
                 + " was already applied (last " + std::to_string(last) + ")");
        continue;
      }
      last = s.seq;
    }
    applied.push_back(i);
    changed = true;
    note_data(s.ts_ms);
    if (spec->type == channel_type::movement) {
      auto units = static_cast<int64_t>(s.value);
      auto& stock = st.stock[std::string(sku)];
      if (spec->effect == movement_effect::in || spec->effect == movement_effect::adjust)
        stock += units;
      else
        stock -= units;
      if (stock == 0)
        st.stock.erase(std::string(sku));
      auto [latest, first] = st.channels.try_emplace(s.channel, channel_value{s.value, s.ts_ms});
      if (!first && s.ts_ms >= latest->second.ts_ms)
        latest->second = {s.value, s.ts_ms};
      continue;
    }
    // The first sample of a channel is its latest value, whatever its time.
    auto [latest, first] = st.channels.try_emplace(s.channel, channel_value{s.value, s.ts_ms});
    bool newer = first || s.ts_ms >= latest->second.ts_ms;
    if (!newer)
      continue; // out of order: kept in history, does not move the latest value
    latest->second = {s.value, s.ts_ms};
    observe_sample(st.analytics, m, spec->name, s.ts_ms, s.value);
    if (spec->name == m.power_channel) {
      roll_day(st, s.ts_ms);
      if (st.last_power_ms != 0) {
        auto gap = s.ts_ms - st.last_power_ms;
        if (gap > 0 && gap <= max_integration_gap_ms) {
          auto kwh = st.last_power_kw * static_cast<double>(gap) / 3'600'000.0;
          add_energy(st, s.ts_ms, kwh);
          observe_energy(st, m, kwh);
        }
      }
      st.last_power_kw = s.value;
      st.last_power_ms = s.ts_ms;
    } else if (spec->name == m.energy_channel) {
      roll_day(st, s.ts_ms);
      if (st.last_counter_kwh >= 0) {
        auto delta = s.value - st.last_counter_kwh;
        add_energy(st, s.ts_ms, delta >= 0 ? delta : s.value); // a drop is a reset
        observe_energy(st, m, delta >= 0 ? delta : s.value);
      }
      st.last_counter_kwh = s.value;
    }
  }
  if (changed) {
    st.model_version = m.version;
    refresh_analytics(st, m, nullptr);
    evaluate_health(st, m, now_ms);
    st.own = own_contribution(st, m, twin_id);
    ++st.version;
  }
  return out;
}

bool evaluate_health(twin_state& st, const model& m, int64_t now_ms) {
  auto before = st.status;
  health_status s = health_status::ok;
  for (auto& rule : m.health) {
    auto i = st.channels.find(rule.channel);
    if (i == st.channels.end())
      continue;
    if (matches(rule, i->second.value, true))
      s = std::max(s, health_status::alarm);
    else if (matches(rule, i->second.value, false))
      s = std::max(s, health_status::warning);
  }
  if (!st.analytics.warnings.empty())
    s = std::max(s, health_status::warning); // low stock, energy waste
  if (auto since = data_since_ms(st);
      m.stale_after_ms > 0 && !m.channels.empty() && since != 0 && now_ms - since > m.stale_after_ms)
    s = health_status::stale;
  if (st.offline)
    s = health_status::stale;
  st.status = s;
  st.score = status_score(s);
  return before != s;
}

contribution own_contribution(const twin_state& st, const model& m,
                              std::string_view twin_id) {
  contribution c;
  if (!m.power_channel.empty()) {
    auto p = st.channels.find(m.power_channel);
    if (p != st.channels.end() && p->second.value != 0)
      c.sums["power_kw"] = p->second.value;
  }
  if (!m.power_channel.empty() || !m.energy_channel.empty()) {
    if (st.energy_kwh != 0)
      c.sums["energy_kwh"] = st.energy_kwh;
    if (st.energy_today_kwh != 0)
      c.sums["energy_today_kwh"] = st.energy_today_kwh;
  }
  for (auto& [sku, units] : st.stock)
    c.sums["stock/" + sku] = static_cast<double>(units);
  for (auto& rule : m.counts) {
    auto i = st.channels.find(rule.channel);
    if (i != st.channels.end() && i->second.value == rule.equals)
      c.sums["count/" + rule.name] = 1;
  }
  if (!m.analytics.parts_channel.empty() && st.analytics.parts != 0)
    c.sums["parts"] = st.analytics.parts;
  if (!m.analytics.idle_channel.empty() && st.analytics.idle_energy_kwh != 0)
    c.sums["idle_energy_kwh"] = st.analytics.idle_energy_kwh;
  for (auto& [name, v] : st.channels)
    c.latest_ts_ms = std::max(c.latest_ts_ms, v.ts_ms);
  if (!m.channels.empty()) {
    c.counts[static_cast<size_t>(st.status)] = 1;
    c.score_sum = st.score;
    c.score_count = 1;
    c.worst_id = std::string(twin_id);
    c.worst_status = st.status;
  }
  return c;
}

} // namespace twinrt::twins

namespace twinrt::twins {

bool refold(twin_state& st, const model& m, std::string_view twin_id,
            const std::map<std::string, contribution>& children, int64_t now_ms) {
  auto before_status = st.status;
  auto before_score = st.score;
  evaluate_health(st, m, now_ms);
  auto fold = [&] {
    auto c = own_contribution(st, m, twin_id);
    for (auto& [id, child] : children)
      fold_into(c, child);
    return c;
  };
  auto c = fold();
  bool analytics_changed = refresh_analytics(st, m, &children);
  if (analytics_changed && evaluate_health(st, m, now_ms))
    c = fold(); // an analytics warning changed the twin's own status
  st.status = std::max(st.status, c.worst_status);
  st.score = c.score();
  if (c == st.own && st.status == before_status && st.score == before_score
      && !analytics_changed)
    return false;
  st.own = std::move(c);
  ++st.version;
  return true;
}

} // namespace twinrt::twins
