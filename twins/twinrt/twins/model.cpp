#include "twinrt/twins/model.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace twinrt::twins {

namespace {

// Thrown only inside this file, while walking one document, and turned into a
// model_error at parse_model's edge.
struct refusal {
  int64_t line;
  std::string reason;
};

int64_t line_of(const toml::node& n) {
  return static_cast<int64_t>(n.source().begin.line);
}

void refuse(const toml::node& at, std::string reason) {
  throw refusal{line_of(at), std::move(reason)};
}

void only_keys(const toml::table& t, std::initializer_list<std::string_view> keys,
               std::string_view where) {
  for (auto&& [k, v] : t) {
    if (std::find(keys.begin(), keys.end(), k.str()) == keys.end())
      refuse(v, "unknown key '" + std::string(k.str()) + "' in " + std::string(where));
  }
}

std::string need_string(const toml::table& t, std::string_view key,
                        const toml::node& owner) {
  auto n = t.get(key);
  if (!n)
    refuse(owner, "missing key '" + std::string(key) + "'");
  auto s = n->value<std::string>();
  if (!s)
    refuse(*n, "'" + std::string(key) + "' must be a string");
  return *s;
}

std::optional<double> opt_number(const toml::table& t, std::string_view key) {
  auto n = t.get(key);
  if (!n)
    return std::nullopt;
  auto d = n->value<double>();
  if (!d || !std::isfinite(*d))
    refuse(*n, "'" + std::string(key) + "' must be a finite number");
  return d;
}

bool valid_name(std::string_view s) {
  if (s.empty())
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

channel_spec parse_channel(std::string name, const toml::node& node) {
  auto t = node.as_table();
  if (!t)
    refuse(node, "channel '" + name + "' must be a table");
  only_keys(*t, {"unit", "type", "min", "max", "effect", "description"},
            "channel '" + name + "'");
  channel_spec c;
  c.name = name;
  if (!valid_name(name))
    refuse(node, "channel name '" + name + "' must be lower-case letters, digits and _");
  c.unit = t->get("unit") ? need_string(*t, "unit", node) : "";
  auto type = need_string(*t, "type", node);
  if (type == "gauge")
    c.type = channel_type::gauge;
  else if (type == "counter")
    c.type = channel_type::counter;
  else if (type == "state")
    c.type = channel_type::state;
  else if (type == "movement")
    c.type = channel_type::movement;
  else
    refuse(*t->get("type"), "channel '" + name + "': type '" + type
                              + "' is not gauge, counter, state or movement");
  auto mn = opt_number(*t, "min");
  auto mx = opt_number(*t, "max");
  if (!mn || !mx)
    refuse(node, "channel '" + name + "' needs a valid range: min and max");
  if (*mn > *mx)
    refuse(*t->get("min"), "channel '" + name + "': min is above max");
  c.min = *mn;
  c.max = *mx;
  if (c.type == channel_type::movement) {
    auto effect = need_string(*t, "effect", node);
    if (effect == "in")
      c.effect = movement_effect::in;
    else if (effect == "out")
      c.effect = movement_effect::out;
    else if (effect == "adjust")
      c.effect = movement_effect::adjust;
    else
      refuse(*t->get("effect"), "channel '" + name + "': effect '" + effect
                                  + "' is not in, out or adjust");
  } else if (t->get("effect")) {
    refuse(*t->get("effect"), "channel '" + name + "': only movement channels have an effect");
  }
  return c;
}

const channel_spec& need_channel(const model& m, const toml::table& t,
                                 std::string_view key, const toml::node& owner) {
  auto name = need_string(t, key, owner);
  auto i = m.channels.find(name);
  if (i == m.channels.end())
    refuse(*t.get(key), "'" + std::string(key) + "' names unknown channel '" + name + "'");
  return i->second;
}

// [[alerts]]: threshold rules on any named value, with hysteresis and a hold
// time; a kind that turns stale gets the built-in rule "stale" on data_age_s.
void parse_alerts(model& m, const toml::table& doc) {
  if (auto al = doc.get("alerts")) {
    auto arr = al->as_array();
    if (!arr)
      refuse(*al, "'alerts' must be an array of tables ([[alerts]])");
    for (auto&& e : *arr) {
      auto t = e.as_table();
      if (!t)
        refuse(e, "each [[alerts]] entry must be a table");
      only_keys(*t, {"name", "value", "above", "below", "clear_at", "for_s", "severity",
                     "event", "message"},
                "[[alerts]]");
      alert_rule r;
      r.name = need_string(*t, "name", e);
      if (!valid_name(r.name))
        refuse(e, "alert name '" + r.name + "' must be lower-case letters, digits and _");
      for (auto& other : m.alerts)
        if (other.name == r.name)
          refuse(e, "alert '" + r.name + "' is declared twice");
      r.value = need_string(*t, "value", e);
      if (r.value.empty() || r.value.find_first_of(" \t\n") != std::string::npos)
        refuse(*t->get("value"), "alert '" + r.name + "': 'value' must name a channel or derived value");
      r.above = opt_number(*t, "above");
      r.below = opt_number(*t, "below");
      if (r.above.has_value() == r.below.has_value())
        refuse(e, "alert '" + r.name + "' needs exactly one of 'above' and 'below'");
      double threshold = r.above ? *r.above : *r.below;
      r.clear_at = opt_number(*t, "clear_at").value_or(threshold);
      if (r.above && r.clear_at > threshold)
        refuse(*t->get("clear_at"), "alert '" + r.name + "': clear_at is above 'above'");
      if (r.below && r.clear_at < threshold)
        refuse(*t->get("clear_at"), "alert '" + r.name + "': clear_at is below 'below'");
      if (auto f = opt_number(*t, "for_s")) {
        if (*f < 0)
          refuse(*t->get("for_s"), "alert '" + r.name + "': 'for_s' must not be negative");
        r.hold_ms = static_cast<int64_t>(*f * 1000);
      }
      if (t->get("severity")) {
        auto sv = need_string(*t, "severity", e);
        auto parsed = parse_severity(sv);
        if (!parsed)
          refuse(*t->get("severity"), "alert '" + r.name + "': severity '" + sv
                                        + "' is not info, warning or critical");
        r.sev = *parsed;
      }
      if (t->get("event")) {
        r.event = need_string(*t, "event", e);
        if (r.event != "alert" && r.event != "prediction")
          refuse(*t->get("event"), "alert '" + r.name + "': event '" + r.event
                                     + "' is not alert or prediction");
      }
      if (t->get("message"))
        r.message = need_string(*t, "message", e);
      m.alerts.push_back(std::move(r));
    }
  }
  bool has_stale = std::any_of(m.alerts.begin(), m.alerts.end(),
                               [](const alert_rule& r) { return r.name == "stale"; });
  if (m.stale_after_ms > 0 && !has_stale) {
    alert_rule r;
    r.name = "stale";
    r.value = "data_age_s";
    r.above = static_cast<double>(m.stale_after_ms) / 1000.0;
    r.clear_at = *r.above;
    r.sev = severity::warning;
    r.message = "no data for longer than stale_after_s";
    r.built_in = true;
    m.alerts.push_back(std::move(r));
  }
}

double positive(const toml::table& t, std::string_view key, double fallback) {
  auto v = opt_number(t, key);
  if (!v)
    return fallback;
  if (*v <= 0)
    refuse(*t.get(key), "'" + std::string(key) + "' must be above 0");
  return *v;
}

// [analytics]: degradation channels (trended towards their [[health]] alarm
// threshold), the parts counter and idle state handed to the parent, and
// production baselines kept from the rollup; [low_stock]: SKU -> minimum.
void parse_analytics(model& m, const toml::table& doc) {
  auto& a = m.analytics;
  if (auto an = doc.get("analytics")) {
    auto t = an->as_table();
    if (!t)
      refuse(*an, "'analytics' must be a table");
    only_keys(*t, {"degradation_channels", "trend_half_life_h", "min_history_h",
                   "min_confidence", "max_rul_h", "parts_channel", "idle_channel", "idle_equals",
                   "baseline", "window_s", "energy_waste_warning_pct"},
              "[analytics]");
    if (auto d = t->get("degradation_channels")) {
      auto arr = d->as_array();
      if (!arr)
        refuse(*d, "'degradation_channels' must be an array of channel names");
      for (auto&& e : *arr) {
        auto name = e.value<std::string>();
        if (!name)
          refuse(e, "'degradation_channels' must hold strings");
        auto c = m.channels.find(*name);
        if (c == m.channels.end() || c->second.type != channel_type::gauge)
          refuse(e, "degradation channel '" + *name + "' is not a gauge channel of this kind");
        bool has_alarm = std::any_of(m.health.begin(), m.health.end(), [&](const health_rule& r) {
          return r.channel == *name && (r.alarm_above || r.alarm_below);
        });
        if (!has_alarm)
          refuse(e, "degradation channel '" + *name
                      + "' needs a [[health]] rule with alarm_above or alarm_below");
        a.degradation_channels.push_back(*name);
      }
    }
    a.trend_half_life_h = positive(*t, "trend_half_life_h", a.trend_half_life_h);
    a.rul.min_history_h = positive(*t, "min_history_h", a.rul.min_history_h);
    a.rul.max_hours = positive(*t, "max_rul_h", a.rul.max_hours);
    if (auto c = opt_number(*t, "min_confidence")) {
      if (*c < 0 || *c > 1)
        refuse(*t->get("min_confidence"), "'min_confidence' must be from 0 to 1");
      a.rul.min_confidence = *c;
    }
    if (t->get("parts_channel")) {
      auto& c = need_channel(m, *t, "parts_channel", *an);
      if (c.type != channel_type::counter)
        refuse(*t->get("parts_channel"), "parts_channel '" + c.name + "' must be a counter");
      a.parts_channel = c.name;
    }
    if (t->get("idle_channel")) {
      auto& c = need_channel(m, *t, "idle_channel", *an);
      if (c.type != channel_type::state)
        refuse(*t->get("idle_channel"), "idle_channel '" + c.name + "' must be a state channel");
      auto eq = opt_number(*t, "idle_equals");
      if (!eq)
        refuse(*an, "[analytics] idle_channel needs idle_equals");
      a.idle_channel = c.name;
      a.idle_equals = *eq;
    }
    if (t->get("baseline")) {
      auto b = need_string(*t, "baseline", *an);
      auto p = parse_baseline_period(b);
      if (!p)
        refuse(*t->get("baseline"),
               "baseline '" + b + "' is not overall, hour_of_day or hour_of_week");
      a.baseline = *p;
      a.production = true;
    }
    if (t->get("window_s")) {
      if (!a.production)
        refuse(*t->get("window_s"), "'window_s' needs 'baseline'");
      a.window_ms = static_cast<int64_t>(positive(*t, "window_s", 900) * 1000);
    }
    if (t->get("energy_waste_warning_pct")) {
      if (!a.production)
        refuse(*t->get("energy_waste_warning_pct"), "'energy_waste_warning_pct' needs 'baseline'");
      a.energy_waste_warning_pct = positive(*t, "energy_waste_warning_pct", 0);
    }
  }
  if (auto ls = doc.get("low_stock")) {
    auto t = ls->as_table();
    if (!t)
      refuse(*ls, "'low_stock' must be a table of SKU = minimum units");
    bool movements = std::any_of(m.channels.begin(), m.channels.end(), [](auto& c) {
      return c.second.type == channel_type::movement;
    });
    if (!movements)
      refuse(*ls, "[low_stock] needs a movement channel (a kind that keeps stock)");
    for (auto&& [k, v] : *t) {
      auto units = v.value_exact<int64_t>();
      if (!units || *units < 0)
        refuse(v, "[low_stock] minimum for '" + std::string(k.str())
                    + "' must be a whole number of units, 0 or more");
      a.low_stock[std::string(k.str())] = *units;
    }
  }
}

model parse_document(const toml::table& doc) {
  only_keys(doc, {"kind", "version", "description", "parents", "stale_after_s",
                  "export_metrics", "channels", "health", "energy", "counts", "alerts",
                  "analytics", "low_stock"},
            "model");
  model m;
  m.kind = need_string(doc, "kind", doc);
  if (!valid_name(m.kind))
    refuse(*doc.get("kind"), "kind '" + m.kind + "' must be lower-case letters, digits and _");
  // value_exact: value<int64_t>() would also take `true` and `2.0`.
  auto version = doc.get("version");
  auto v = version ? version->value_exact<int64_t>() : std::nullopt;
  if (!v || *v < 1 || *v > std::numeric_limits<uint32_t>::max())
    refuse(version ? *version : static_cast<const toml::node&>(doc),
           "'version' must be a whole number from 1 to 4294967295");
  m.version = static_cast<uint32_t>(*v);
  if (doc.get("description"))
    m.description = need_string(doc, "description", doc);
  if (auto p = doc.get("parents")) {
    auto arr = p->as_array();
    if (!arr)
      refuse(*p, "'parents' must be an array of kinds");
    for (auto&& e : *arr) {
      auto s = e.value<std::string>();
      if (!s)
        refuse(e, "'parents' must hold strings");
      m.parents.push_back(*s);
    }
  }
  if (auto s = opt_number(doc, "stale_after_s")) {
    if (*s < 0)
      refuse(*doc.get("stale_after_s"), "'stale_after_s' must not be negative");
    m.stale_after_ms = static_cast<int64_t>(*s * 1000);
  }
  if (auto e = doc.get("export_metrics")) {
    auto b = e->value_exact<bool>(); // value<bool>() would also take 0 and 1
    if (!b)
      refuse(*e, "'export_metrics' must be true or false");
    m.export_metrics = *b;
  }
  if (auto ch = doc.get("channels")) {
    auto t = ch->as_table();
    if (!t)
      refuse(*ch, "'channels' must be a table of channel tables");
    for (auto&& [k, v] : *t)
      m.channels.emplace(std::string(k.str()), parse_channel(std::string(k.str()), v));
  }
  if (auto h = doc.get("health")) {
    auto arr = h->as_array();
    if (!arr)
      refuse(*h, "'health' must be an array of tables ([[health]])");
    for (auto&& e : *arr) {
      auto t = e.as_table();
      if (!t)
        refuse(e, "each [[health]] entry must be a table");
      only_keys(*t, {"channel", "warning_above", "alarm_above", "warning_below",
                     "alarm_below", "warning_equals", "alarm_equals"},
                "[[health]]");
      health_rule r;
      r.channel = need_channel(m, *t, "channel", e).name;
      r.warning_above = opt_number(*t, "warning_above");
      r.alarm_above = opt_number(*t, "alarm_above");
      r.warning_below = opt_number(*t, "warning_below");
      r.alarm_below = opt_number(*t, "alarm_below");
      r.warning_equals = opt_number(*t, "warning_equals");
      r.alarm_equals = opt_number(*t, "alarm_equals");
      if (!r.warning_above && !r.alarm_above && !r.warning_below && !r.alarm_below
          && !r.warning_equals && !r.alarm_equals)
        refuse(e, "[[health]] rule on '" + r.channel + "' sets no threshold");
      if (r.warning_above && r.alarm_above && *r.warning_above > *r.alarm_above)
        refuse(e, "[[health]] rule on '" + r.channel + "': warning_above is above alarm_above");
      if (r.warning_below && r.alarm_below && *r.warning_below < *r.alarm_below)
        refuse(e, "[[health]] rule on '" + r.channel + "': warning_below is below alarm_below");
      m.health.push_back(std::move(r));
    }
  }
  if (auto en = doc.get("energy")) {
    auto t = en->as_table();
    if (!t)
      refuse(*en, "'energy' must be a table");
    only_keys(*t, {"power_channel", "energy_channel"}, "[energy]");
    if (t->get("power_channel")) {
      auto& c = need_channel(m, *t, "power_channel", *en);
      if (c.type != channel_type::gauge)
        refuse(*t->get("power_channel"), "power_channel '" + c.name + "' must be a gauge");
      m.power_channel = c.name;
    }
    if (t->get("energy_channel")) {
      auto& c = need_channel(m, *t, "energy_channel", *en);
      if (c.type != channel_type::counter)
        refuse(*t->get("energy_channel"), "energy_channel '" + c.name + "' must be a counter");
      m.energy_channel = c.name;
    }
    if (!m.power_channel.empty() && !m.energy_channel.empty())
      refuse(*en, "[energy] takes power_channel or energy_channel, not both");
    if (m.power_channel.empty() && m.energy_channel.empty())
      refuse(*en, "[energy] needs power_channel or energy_channel");
  }
  if (auto cn = doc.get("counts")) {
    auto arr = cn->as_array();
    if (!arr)
      refuse(*cn, "'counts' must be an array of tables ([[counts]])");
    for (auto&& e : *arr) {
      auto t = e.as_table();
      if (!t)
        refuse(e, "each [[counts]] entry must be a table");
      only_keys(*t, {"name", "channel", "equals"}, "[[counts]]");
      count_rule r;
      r.name = need_string(*t, "name", e);
      if (!valid_name(r.name))
        refuse(e, "count name '" + r.name + "' must be lower-case letters, digits and _");
      r.channel = need_channel(m, *t, "channel", e).name;
      auto eq = opt_number(*t, "equals");
      if (!eq)
        refuse(e, "[[counts]] '" + r.name + "' needs 'equals'");
      r.equals = *eq;
      m.counts.push_back(std::move(r));
    }
  }
  parse_alerts(m, doc);
  parse_analytics(m, doc);
  return m;
}

} // namespace

const channel_spec* model::find_channel(std::string_view sample_channel,
                                        std::string_view* item) const {
  auto slash = sample_channel.find('/');
  auto base = sample_channel.substr(0, slash);
  auto i = channels.find(base);
  if (i == channels.end())
    return nullptr;
  bool movement = i->second.type == channel_type::movement;
  if (movement != (slash != std::string_view::npos))
    return nullptr; // movement channels need a SKU, others must not have one
  if (movement) {
    auto sku = sample_channel.substr(slash + 1);
    if (sku.empty() || sku.find('/') != std::string_view::npos)
      return nullptr;
    if (item)
      *item = sku;
  }
  return &i->second;
}

std::string model_error::to_string() const {
  std::ostringstream os;
  os << file << ':' << line << ": " << reason;
  return os.str();
}

std::variant<model, model_error> parse_model(std::string_view text,
                                             std::string file_name) {
  try {
    auto doc = toml::parse(text, file_name);
    auto m = parse_document(doc);
    m.file_name = file_name;
    m.text = std::string(text);
    return m;
  } catch (const toml::parse_error& e) {
    return model_error{file_name, static_cast<int64_t>(e.source().begin.line),
                       std::string(e.description())};
  } catch (const refusal& r) {
    return model_error{file_name, r.line, r.reason};
  }
}

std::optional<std::string> model_set::put(model m) {
  auto i = by_kind_.find(m.kind);
  if (i != by_kind_.end()) {
    if (m.version < i->second->version)
      return "model " + m.kind + " version " + std::to_string(m.version)
             + " is older than version " + std::to_string(i->second->version)
             + " in force";
    if (m.version == i->second->version) {
      if (m.text == i->second->text)
        return std::nullopt;
      return "model " + m.kind + " version " + std::to_string(m.version)
             + " changed without a new version number";
    }
  }
  auto kind = m.kind;
  by_kind_[kind] = std::make_shared<const model>(std::move(m));
  return std::nullopt;
}

model_set::model_ptr model_set::find(std::string_view kind) const {
  auto i = by_kind_.find(kind);
  return i == by_kind_.end() ? nullptr : i->second;
}

model_files
load_model_texts(const std::vector<std::pair<std::string, std::string>>& files) {
  model_files out;
  std::set<std::string> kinds;
  for (auto& [name, text] : files) {
    auto r = parse_model(text, name);
    if (auto e = std::get_if<model_error>(&r)) {
      out.errors.push_back(std::move(*e));
      continue;
    }
    auto& m = std::get<model>(r);
    if (!kinds.insert(m.kind).second) {
      out.errors.push_back({name, 1, "kind '" + m.kind + "' is defined by two files"});
      continue;
    }
    out.models.push_back(std::move(m));
  }
  return out;
}

model_files load_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> files;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    model_files out;
    out.errors.push_back({dir, 0, "cannot read model directory: " + ec.message()});
    return out;
  }
  for (auto& entry : it) {
    if (entry.path().extension() != ".toml")
      continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    files.emplace_back(entry.path().string(), ss.str());
  }
  std::sort(files.begin(), files.end());
  return load_model_texts(files);
}

} // namespace twinrt::twins
