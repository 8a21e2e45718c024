#include "twinrt/adapters/sparkplug_session.hpp"

#include <fnmatch.h>

#include <limits>

namespace twinrt::adapters::sparkplug {

namespace {

// Metrics of the protocol itself, not of the machine.
bool is_protocol_metric(const std::string& name) {
  return name == "bdSeq" || name.rfind("Node Control/", 0) == 0;
}

int64_t time_of(const metric& m, const payload& p, int64_t now_ms) {
  auto ts = m.timestamp ? m.timestamp : p.timestamp;
  if (!ts)
    return now_ms;
  return *ts > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
           ? std::numeric_limits<int64_t>::max()
           : static_cast<int64_t>(*ts);
}

std::optional<uint64_t> bd_seq_of(const payload& p) {
  for (auto& m : p.metrics) {
    if (!m.name || *m.name != "bdSeq")
      continue;
    if (auto u = std::get_if<uint64_t>(&m.value))
      return *u;
    if (auto u = std::get_if<uint32_t>(&m.value))
      return *u;
  }
  return std::nullopt;
}

std::string metric_label(const metric& m) {
  if (m.name)
    return "'" + *m.name + "'";
  if (m.alias)
    return "alias " + std::to_string(*m.alias);
  return "(no name, no alias)";
}

} // namespace

edge_node_session::edge_node_session(std::string group, std::string edge_node,
                                     int64_t rebirth_interval_ms)
  : group_(std::move(group)),
    edge_node_(std::move(edge_node)),
    rebirth_interval_ms_(rebirth_interval_ms) {
}

bool edge_node_session::device_born(const std::string& device) const {
  return devices_.count(device) > 0;
}

std::vector<std::string> edge_node_session::devices() const {
  std::vector<std::string> out;
  for (auto& [id, d] : devices_)
    out.push_back(id);
  return out;
}

std::string edge_node_session::describe(const std::string& device) const {
  return "edge node " + group_ + "/" + edge_node_ + (device.empty() ? "" : " device " + device);
}

void edge_node_session::ask_rebirth(int64_t now_ms, outcome& out) {
  if (last_rebirth_ms_ && now_ms - *last_rebirth_ms_ < rebirth_interval_ms_)
    return;
  last_rebirth_ms_ = now_ms;
  out.rebirth = true;
}

bool edge_node_session::check_seq(message_type type, const std::string& device,
                                  const payload& p, int64_t now_ms, outcome& out) {
  auto what = std::string(to_string(type)) + " from " + describe(device);
  if (!born_) {
    out.refused.push_back({reason::before_birth, what + ": no NBIRTH seen (rebirth requested)"});
    ask_rebirth(now_ms, out);
    return false;
  }
  if (!p.seq) {
    out.refused.push_back({reason::missing_seq, what + ": no seq"});
    return false;
  }
  auto expected = static_cast<uint8_t>(seq_ + 1);
  if (*p.seq != expected) {
    out.refused.push_back({reason::sequence_gap, what + ": seq " + std::to_string(*p.seq)
                                                   + ", expected " + std::to_string(expected)
                                                   + " (rebirth requested)"});
    born_ = false; // whatever came in between (a DBIRTH, new aliases) is lost
    devices_.clear();
    ask_rebirth(now_ms, out);
    return false;
  }
  seq_ = expected;
  return true;
}

void edge_node_session::declare(declarations& into, const std::string& device,
                                const payload& p, int64_t now_ms, outcome& out) {
  into = {};
  for (auto& m : p.metrics) {
    if (!m.name || m.name->empty() || !m.datatype) {
      out.refused.push_back({reason::bad_birth, "birth of " + describe(device) + ": metric "
                                                  + metric_label(m)
                                                  + " needs a name and a datatype"});
      continue;
    }
    if (m.alias) {
      auto [at, fresh] = into.by_alias.try_emplace(*m.alias, declaration{*m.name, *m.datatype});
      if (!fresh && at->second.name != *m.name) {
        out.refused.push_back({reason::bad_birth, "birth of " + describe(device) + ": alias "
                                                    + std::to_string(*m.alias) + " of '" + *m.name
                                                    + "' is already '" + at->second.name + "'"});
        continue;
      }
    }
    into.by_name[*m.name] = *m.datatype;
  }
  report(into, device, p, now_ms, out, true);
}

void edge_node_session::report(const declarations& from, const std::string& device,
                               const payload& p, int64_t now_ms, outcome& out, bool birth) {
  for (auto& m : p.metrics) {
    if (birth && (!m.name || from.by_name.count(*m.name) == 0))
      continue; // refused by declare()
    const std::string* name = nullptr;
    uint32_t datatype = 0;
    if (m.alias && !m.name) {
      auto d = from.by_alias.find(*m.alias);
      if (d == from.by_alias.end()) {
        out.refused.push_back({reason::unknown_alias, "metric alias " + std::to_string(*m.alias)
                                                        + " from " + describe(device)
                                                        + " was not declared in its birth"});
        continue;
      }
      name = &d->second.name;
      datatype = d->second.datatype;
    } else if (m.name) {
      auto d = from.by_name.find(*m.name);
      if (d == from.by_name.end()) {
        out.refused.push_back({reason::unknown_metric, "metric '" + *m.name + "' from "
                                                         + describe(device)
                                                         + " was not declared in its birth"});
        continue;
      }
      name = &d->first;
      datatype = d->second;
    } else {
      out.refused.push_back({reason::unknown_metric,
                             "metric without name or alias from " + describe(device)});
      continue;
    }
    auto label = "'" + *name + "' of " + describe(device);
    if (m.datatype && *m.datatype != datatype) {
      out.refused.push_back({reason::wrong_type, "metric " + label + ": datatype "
                                                   + datatype_name(*m.datatype)
                                                   + " differs from its birth's "
                                                   + datatype_name(datatype)});
      continue;
    }
    if (is_protocol_metric(*name) || m.is_null || !is_numeric(datatype)
        || std::holds_alternative<std::monostate>(m.value)) {
      ++out.ignored;
      continue;
    }
    auto v = to_number(m.value, datatype, label);
    if (!v) {
      out.refused.push_back({reason::wrong_type, message_of(v.error())});
      continue;
    }
    out.updates.push_back({device, *name, *v, time_of(m, p, now_ms)});
  }
}

outcome edge_node_session::handle(message_type type, const std::string& device,
                                  const payload& p, int64_t now_ms) {
  outcome out;
  switch (type) {
    case message_type::nbirth:
      if (!p.seq) {
        out.refused.push_back({reason::missing_seq, "NBIRTH from " + describe("") + ": no seq"});
        return out;
      }
      born_ = true;
      seq_ = static_cast<uint8_t>(*p.seq);
      bd_seq_ = bd_seq_of(p);
      devices_.clear();
      out.born.push_back("");
      declare(node_, "", p, now_ms, out);
      return out;
    case message_type::ndeath: {
      auto bd = bd_seq_of(p);
      if (born_ && bd && bd_seq_ && *bd != *bd_seq_) {
        ++out.ignored; // the will of an earlier session
        return out;
      }
      out.died.push_back("");
      out.died.insert(out.died.end(), alive_.begin(), alive_.end());
      born_ = false;
      devices_.clear();
      alive_.clear();
      return out;
    }
    case message_type::dbirth:
      if (!check_seq(type, device, p, now_ms, out))
        return out;
      out.born.push_back(device);
      alive_.insert(device);
      declare(devices_[device], device, p, now_ms, out);
      return out;
    case message_type::ddeath:
      if (!check_seq(type, device, p, now_ms, out))
        return out;
      devices_.erase(device);
      if (alive_.erase(device) > 0)
        out.died.push_back(device);
      return out;
    case message_type::ndata:
      if (check_seq(type, device, p, now_ms, out))
        report(node_, "", p, now_ms, out, false);
      return out;
    case message_type::ddata: {
      if (!check_seq(type, device, p, now_ms, out))
        return out;
      auto d = devices_.find(device);
      if (d == devices_.end()) {
        out.refused.push_back({reason::before_birth, "DDATA from " + describe(device)
                                                       + ": no DBIRTH seen (rebirth requested)"});
        ask_rebirth(now_ms, out);
        return out;
      }
      report(d->second, device, p, now_ms, out, false);
      return out;
    }
    case message_type::ncmd:
    case message_type::dcmd:
    case message_type::state:
      return out;
  }
  return out;
}

// -- mapping -------------------------------------------------------------------

namespace {

bool glob(const std::string& pattern, const std::string& value) {
  return fnmatch(pattern.c_str(), value.c_str(), 0) == 0;
}

std::string expand(std::string pattern, const std::string& group, const std::string& node,
                   const std::string& device) {
  const std::pair<const char*, const std::string*> vars[] = {
    {"{group}", &group}, {"{node}", &node}, {"{device}", &device}};
  for (auto& [name, value] : vars) {
    std::string key(name);
    for (auto i = pattern.find(key); i != std::string::npos; i = pattern.find(key, i + value->size()))
      pattern.replace(i, key.size(), *value);
  }
  return pattern;
}

} // namespace

mapping::mapping(std::vector<runtime::node_config::sparkplug_rule> rules)
  : rules_(std::move(rules)) {
}

std::optional<twin_target> mapping::find(const std::string& group, const std::string& edge_node,
                                         const std::string& device) const {
  for (auto& r : rules_) {
    if (!glob(r.group, group) || !glob(r.node, edge_node))
      continue;
    if (r.device.empty() != device.empty() || (!device.empty() && !glob(r.device, device)))
      continue;
    return twin_target{expand(r.twin, group, edge_node, device), r.kind,
                       expand(r.parent, group, edge_node, device), &r};
  }
  return std::nullopt;
}

std::string mapping::channel(const twin_target& t, const std::string& metric) {
  if (t.rule)
    for (auto& [from, to] : t.rule->channels)
      if (from == metric)
        return to;
  return metric;
}

} // namespace twinrt::adapters::sparkplug
