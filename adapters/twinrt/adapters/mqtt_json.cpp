#include "twinrt/adapters/mqtt_json.hpp"
#include "twinrt/adapters/strict_json.hpp"

#include <nlohmann/json.hpp>

namespace twinrt::adapters::mqtt {

namespace {

std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    auto slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool is_name(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      return false;
  return true;
}

constexpr int64_t max_ts_ms = 253'402'300'799'999; // 9999-12-31T23:59:59.999Z
constexpr uint64_t max_seq = uint64_t{1} << 53;

using json = nlohmann::ordered_json;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "discarded";
    default: return "a number";
  }
}

std::string shown(std::string_view s) {
  // Keys come from the sender: keep the message readable and bounded.
  std::string out = "'";
  for (char c : s.substr(0, 80))
    out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  if (s.size() > 80)
    out += "...";
  return out + "'";
}

} // namespace

bool valid_topic_name(std::string_view topic) {
  return !topic.empty() && topic.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos;
}

std::optional<std::string> route::compile(const std::string& topic_pattern,
                                          const std::string& twin_pattern, route& out) {
  auto where = "route '" + topic_pattern + "' -> '" + twin_pattern + "': ";
  if (topic_pattern.empty())
    return where + "the topic pattern is empty";
  if (twin_pattern.empty())
    return where + "the twin pattern is empty";
  route r;
  r.topic_pattern_ = topic_pattern;
  r.twin_pattern_ = twin_pattern;
  auto levels = split_levels(topic_pattern);
  for (size_t i = 0; i < levels.size(); ++i) {
    auto l = levels[i];
    topic_level tl;
    if (l == "#") {
      if (i + 1 != levels.size())
        return where + "'#' must be the last level";
      tl.kind = topic_level::rest;
    } else if (l == "+") {
      tl.kind = topic_level::single;
    } else if (l.size() >= 2 && l.front() == '{' && l.back() == '}') {
      auto name = l.substr(1, l.size() - 2);
      if (!is_name(name))
        return where + "'" + std::string(l) + "' is not a {name} (letters, digits, _ and -)";
      for (auto& prev : r.levels_)
        if (prev.kind == topic_level::capture && prev.text == name)
          return where + "{" + std::string(name) + "} appears twice";
      tl.kind = topic_level::capture;
      tl.text = std::string(name);
    } else {
      if (l.find_first_of("+#{}") != std::string_view::npos)
        return where + "level '" + std::string(l)
               + "' mixes text with a wildcard or brace (a level is text, +, #, or {name})";
      tl.text = std::string(l);
    }
    if (!r.filter_.empty() || i > 0)
      r.filter_ += '/';
    r.filter_ += tl.kind == topic_level::literal   ? tl.text
                 : tl.kind == topic_level::rest    ? std::string("#")
                                                   : std::string("+");
    r.levels_.push_back(std::move(tl));
  }
  // The twin pattern: text with {name} pieces.
  size_t pos = 0;
  while (pos < twin_pattern.size()) {
    auto open = twin_pattern.find('{', pos);
    auto close_stray = twin_pattern.find('}', pos);
    if (close_stray != std::string::npos && (open == std::string::npos || close_stray < open))
      return where + "'}' without '{' in the twin pattern";
    if (open == std::string::npos) {
      r.twin_parts_.emplace_back(twin_pattern.substr(pos), -1);
      break;
    }
    if (open > pos)
      r.twin_parts_.emplace_back(twin_pattern.substr(pos, open - pos), -1);
    auto close = twin_pattern.find('}', open);
    if (close == std::string::npos)
      return where + "'{' without '}' in the twin pattern";
    auto name = twin_pattern.substr(open + 1, close - open - 1);
    int index = -1;
    for (size_t i = 0; i < r.levels_.size(); ++i)
      if (r.levels_[i].kind == topic_level::capture && r.levels_[i].text == name)
        index = static_cast<int>(i);
    if (index < 0)
      return where + "{" + name + "} in the twin pattern is not captured by the topic pattern";
    r.twin_parts_.emplace_back(std::string(), index);
    pos = close + 1;
  }
  out = std::move(r);
  return std::nullopt;
}

std::optional<std::string> route::twin_for(std::string_view topic) const {
  auto levels = split_levels(topic);
  size_t i = 0;
  for (; i < levels_.size(); ++i) {
    auto& l = levels_[i];
    if (l.kind == topic_level::rest)
      break; // matches the rest, even nothing ("a/#" matches "a")
    if (i >= levels.size())
      return std::nullopt;
    if (l.kind == topic_level::literal && levels[i] != l.text)
      return std::nullopt;
    if (l.kind == topic_level::capture && levels[i].empty())
      return std::nullopt; // an empty level cannot name a twin
  }
  if (i == levels_.size() && levels.size() != levels_.size())
    return std::nullopt;
  // MQTT 4.7.2: wildcards at the first level do not match topics starting with '$'.
  if (!levels_.empty() && levels_[0].kind != topic_level::literal && !topic.empty()
      && topic[0] == '$')
    return std::nullopt;
  std::string id;
  for (auto& [text, index] : twin_parts_)
    id += index < 0 ? text : std::string(levels[static_cast<size_t>(index)]);
  return id;
}

std::optional<std::string> router::twin_for(std::string_view topic) const {
  for (auto& r : routes)
    if (auto id = r.twin_for(topic))
      return id;
  return std::nullopt;
}

const char* to_string(payload_error e) {
  switch (e) {
    case payload_error::invalid_json: return "invalid_json";
    case payload_error::wrong_type: return "wrong_type";
    case payload_error::bad_timestamp: return "bad_timestamp";
    case payload_error::bad_seq: return "bad_seq";
    case payload_error::empty: return "empty";
  }
  return "unknown";
}

std::optional<payload_refusal> parse_json_payload(std::string_view topic, std::string_view payload,
                                                  const std::string& twin, int64_t now_ms,
                                                  std::vector<twins::sample>& out) {
  auto refuse = [&](payload_error e, const std::string& what) {
    return payload_refusal{e, "topic " + std::string(topic) + ": " + what};
  };
  auto parsed = parse_strict_json<json>(payload);
  if (!parsed.refusal.empty())
    return refuse(payload_error::invalid_json, parsed.refusal);
  auto& doc = parsed.doc;
  std::vector<twins::sample> samples;
  auto one = [&](const json& obj, const std::string& at) -> std::optional<payload_refusal> {
    if (!obj.is_object())
      return refuse(payload_error::wrong_type,
                    at + "is " + type_name(obj) + ", expected an object of channel -> number");
    int64_t ts = now_ms;
    uint64_t seq = 0;
    for (auto& [key, v] : obj.items()) {
      if (key == "ts" || key == "timestamp") {
        if (!v.is_number_integer())
          return refuse(payload_error::wrong_type,
                        at + "'" + key + "' is " + (v.is_number() ? "a fraction" : type_name(v))
                          + ", expected whole milliseconds since 1970");
        if (v.is_number_unsigned() ? (v.get<uint64_t>() == 0
                                      || v.get<uint64_t>() > static_cast<uint64_t>(max_ts_ms))
                                   : (v.get<int64_t>() <= 0 || v.get<int64_t>() > max_ts_ms))
          return refuse(payload_error::bad_timestamp,
                        at + "'" + key + "' " + v.dump() + " is outside 1 .. " + std::to_string(max_ts_ms));
        ts = v.get<int64_t>();
      } else if (key == "seq") {
        if (!v.is_number_integer())
          return refuse(payload_error::wrong_type,
                        at + "'seq' is " + (v.is_number() ? "a fraction" : type_name(v))
                          + ", expected a positive integer");
        if (!v.is_number_unsigned() && v.get<int64_t>() <= 0)
          return refuse(payload_error::bad_seq, at + "'seq' " + v.dump() + " is not positive");
        if (v.get<uint64_t>() == 0 || v.get<uint64_t>() > max_seq)
          return refuse(payload_error::bad_seq,
                        at + "'seq' " + v.dump() + " is outside 1 .. 2^53");
        seq = v.get<uint64_t>();
      }
    }
    size_t before = samples.size();
    for (auto& [key, v] : obj.items()) {
      if (key == "ts" || key == "timestamp" || key == "seq")
        continue;
      if (key.empty())
        return refuse(payload_error::wrong_type, at + "a channel name is empty");
      double value;
      if (v.is_number())
        value = v.get<double>();
      else if (v.is_boolean())
        value = v.get<bool>() ? 1.0 : 0.0;
      else
        return refuse(payload_error::wrong_type, at + "channel " + shown(key) + " is "
                                                   + type_name(v) + ", expected a number");
      twins::sample s;
      s.twin = twin;
      s.channel = key;
      s.ts_ms = ts;
      s.value = value;
      s.source = std::string(topic);
      s.seq = seq > 0 ? seq : static_cast<uint64_t>(ts);
      samples.push_back(std::move(s));
    }
    if (samples.size() == before)
      return refuse(payload_error::empty, at + "no channel values");
    return std::nullopt;
  };
  if (doc.is_array()) {
    if (doc.empty())
      return refuse(payload_error::empty, "empty array");
    for (size_t i = 0; i < doc.size(); ++i)
      if (auto err = one(doc[i], "element " + std::to_string(i) + ": "))
        return err;
  } else if (auto err = one(doc, "")) {
    return err;
  }
  out.insert(out.end(), std::make_move_iterator(samples.begin()),
             std::make_move_iterator(samples.end()));
  return std::nullopt;
}

std::vector<sequence_watch::gap> sequence_watch::observe(const std::vector<twins::sample>& samples) {
  std::vector<gap> gaps;
  for (auto& s : samples) {
    if (s.seq == 0 || s.seq == static_cast<uint64_t>(s.ts_ms))
      continue; // no "seq" of its own
    auto [it, first] = highest_.try_emplace(s.source, s.seq);
    if (first || s.seq <= it->second)
      continue;
    if (s.seq > it->second + 1)
      gaps.push_back({s.source, it->second + 1, s.seq - 1, it->second});
    it->second = s.seq;
  }
  return gaps;
}

} // namespace twinrt::adapters::mqtt
