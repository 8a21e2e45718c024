// twinctl: the operator's command line for a twinrt node, over Cap'n Proto
// RPC (schemas/rpc.capnp).

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <kj/debug.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <nlohmann/json.hpp>

#include "rpc.capnp.h"
#include "rpc_client.hpp"
#include "twinrt/adapters/sample_file.hpp"
#include "twinrt/twins/clock.hpp"

namespace {

using nlohmann::json;

struct options {
  std::string address = "127.0.0.1:7800";
  std::string token;
  bool as_json = false;
  bool tls = false;
  std::string ca_file;
  std::string tls_name;
};

struct user_error {
  std::string what;
};

using twinrt::twins::wall_ms;

const char* health_name(twinrt::rpc::Health h) {
  switch (h) {
    case twinrt::rpc::Health::OK:
      return "ok";
    case twinrt::rpc::Health::WARNING:
      return "warning";
    case twinrt::rpc::Health::ALARM:
      return "alarm";
    case twinrt::rpc::Health::STALE:
      return "stale";
  }
  return "?";
}

std::optional<twinrt::rpc::Health> health_of(const std::string& s) {
  if (s == "ok")
    return twinrt::rpc::Health::OK;
  if (s == "warning")
    return twinrt::rpc::Health::WARNING;
  if (s == "alarm")
    return twinrt::rpc::Health::ALARM;
  if (s == "stale")
    return twinrt::rpc::Health::STALE;
  return std::nullopt;
}

// "90s", "15m", "2h", "7d" -> milliseconds.
int64_t duration_ms(const std::string& s) {
  if (s.empty())
    throw user_error{"empty duration"};
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit(end);
  double scale = unit == "ms" ? 1 : unit == "s" || unit.empty() ? 1e3 : unit == "m" ? 60e3
               : unit == "h"  ? 3600e3 : unit == "d" ? 86400e3 : -1;
  if (end == s.c_str() || scale < 0 || v < 0)
    throw user_error{"bad duration '" + s + "': use e.g. 90s, 15m, 2h, 7d"};
  return static_cast<int64_t>(v * scale);
}

std::string age(int64_t ts_ms) {
  auto d = (wall_ms() - ts_ms) / 1000;
  if (ts_ms <= 0)
    return "-";
  if (d < 120)
    return std::to_string(d) + "s";
  if (d < 7200)
    return std::to_string(d / 60) + "m";
  return std::to_string(d / 3600) + "h";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string iso_time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

json alert_json(twinrt::rpc::Alert::Reader a) {
  using twinrt::rpc::AlertState;
  using twinrt::rpc::Severity;
  auto state = a.getState() == AlertState::ACKNOWLEDGED ? "acknowledged"
               : a.getState() == AlertState::CLEARED    ? "cleared"
                                                        : "raised";
  auto sev = a.getSeverity() == Severity::CRITICAL ? "critical"
             : a.getSeverity() == Severity::INFO   ? "info"
                                                   : "warning";
  json j{{"id", a.getId()},         {"twin", a.getTwin().cStr()},   {"kind", a.getKind().cStr()},
         {"rule", a.getRule().cStr()}, {"value", a.getValue().cStr()}, {"severity", sev},
         {"state", state},          {"event", a.getEvent().cStr()}, {"message", a.getMessage().cStr()},
         {"raised_ms", a.getRaisedMs()}, {"raised_value", a.getRaisedValue()}};
  if (a.getAckedMs() != 0) {
    j["acked_ms"] = a.getAckedMs();
    j["acked_by"] = a.getAckedBy().cStr();
  }
  if (a.getAckedMs() != 0 || a.getNote().size() > 0)
    j["note"] = a.getNote().cStr();
  if (a.getClearedMs() != 0) {
    j["cleared_ms"] = a.getClearedMs();
    j["cleared_value"] = a.getClearedValue();
  }
  return j;
}

// A plain aligned table.
void print_table(const std::vector<std::string>& head,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i)
    w[i] = head[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i)
      w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size())
        out += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(head);
  for (auto& r : rows)
    line(r);
}

json twin_json(twinrt::rpc::Twin::Reader t) {
  json j;
  j["id"] = t.getId().cStr();
  j["kind"] = t.getKind().cStr();
  j["parent"] = t.getParent().cStr();
  j["children"] = t.getChildren();
  j["model_version"] = t.getModelVersion();
  j["version"] = t.getVersion();
  j["health"] = health_name(t.getHealth());
  j["score"] = t.getScore();
  j["last_data_ms"] = t.getLastDataMs();
  j["channels"] = json::object();
  for (auto c : t.getChannels())
    j["channels"][c.getName().cStr()] = {{"value", c.getValue()},
                                         {"unit", c.getUnit().cStr()},
                                         {"timestamp_ms", c.getTimestampMs()}};
  auto r = t.getRollup();
  json sums = json::object();
  for (auto s : r.getSums())
    sums[s.getKey().cStr()] = s.getValue();
  j["rollup"] = {{"sums", sums},
                 {"ok", r.getOk()},
                 {"warning", r.getWarning()},
                 {"alarm", r.getAlarm()},
                 {"stale", r.getStale()},
                 {"score", r.getScore()},
                 {"worst_id", r.getWorstId().cStr()},
                 {"worst_health", health_name(r.getWorstHealth())}};
  json stock = json::object();
  for (auto s : t.getStock())
    stock[s.getKey().cStr()] = s.getValue();
  if (!stock.empty())
    j["stock"] = stock;
  j["energy_kwh"] = t.getEnergyKwh();
  j["energy_today_kwh"] = t.getEnergyTodayKwh();
  json derived = json::object();
  for (auto d : t.getDerived())
    derived[d.getKey().cStr()] = d.getValue();
  j["derived"] = derived;
  json warnings = json::array();
  for (auto w : t.getWarnings())
    warnings.push_back(w.cStr());
  j["warnings"] = warnings;
  return j;
}

// A twin's value called `name` as the query sees it: a channel, a rollup
// sum or a derived value; "-" when it has none.
std::string value_text(twinrt::rpc::Twin::Reader t, const std::string& name) {
  if (name == "score")
    return num(t.getScore());
  for (auto d : t.getDerived())
    if (name == d.getKey().cStr())
      return num(d.getValue());
  for (auto ch : t.getChannels())
    if (name == ch.getName().cStr())
      return num(ch.getValue());
  for (auto s : t.getRollup().getSums())
    if (name == s.getKey().cStr())
      return num(s.getValue());
  return "-";
}

// The names a --where text compares ("a > 1 and b < 2": a, b), so that a
// query shows the numbers it selected on.
std::vector<std::string> names_in(const std::string& where) {
  std::vector<std::string> out;
  size_t i = 0;
  auto is_name = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/' || c == '-' || c == '.';
  };
  bool expect_name = true;
  while (i < where.size()) {
    if (std::isspace(static_cast<unsigned char>(where[i]))) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < where.size() && !std::isspace(static_cast<unsigned char>(where[i])) && is_name(where[i]))
      ++i;
    if (i == start) {
      ++i; // an operator
      expect_name = false;
      continue;
    }
    auto word = where.substr(start, i - start);
    if (word == "and" || word == "AND") {
      expect_name = true;
    } else if (expect_name) {
      if (std::find(out.begin(), out.end(), word) == out.end())
        out.push_back(word);
      expect_name = false;
    }
  }
  return out;
}

void print_twin(twinrt::rpc::Twin::Reader t) {
  auto r = t.getRollup();
  std::printf("%s  (%s, model v%u)\n", t.getId().cStr(), t.getKind().cStr(), t.getModelVersion());
  std::printf("  parent    %s\n", t.getParent().size() ? t.getParent().cStr() : "-");
  std::printf("  children  %u\n", t.getChildren());
  std::printf("  health    %s, score %.0f\n", health_name(t.getHealth()), t.getScore());
  if (t.getChannels().size() > 0) {
    std::printf("\n");
    std::vector<std::vector<std::string>> rows;
    for (auto c : t.getChannels())
      rows.push_back({c.getName().cStr(), num(c.getValue()), c.getUnit().cStr(), age(c.getTimestampMs())});
    print_table({"CHANNEL", "VALUE", "UNIT", "AGE"}, rows);
  }
  std::printf("\nrollup: ok %lld, warning %lld, alarm %lld, stale %lld; score %.1f",
              static_cast<long long>(r.getOk()), static_cast<long long>(r.getWarning()),
              static_cast<long long>(r.getAlarm()), static_cast<long long>(r.getStale()),
              r.getScore());
  if (r.getWorstId().size() > 0)
    std::printf("; worst %s (%s)", r.getWorstId().cStr(), health_name(r.getWorstHealth()));
  std::printf("\n");
  if (r.getSums().size() > 0) {
    std::vector<std::vector<std::string>> rows;
    for (auto s : r.getSums())
      rows.push_back({s.getKey().cStr(), num(s.getValue())});
    print_table({"SUM", "VALUE"}, rows);
  }
  if (t.getDerived().size() > 0) {
    std::printf("\n");
    std::vector<std::vector<std::string>> rows;
    for (auto d : t.getDerived())
      rows.push_back({d.getKey().cStr(), num(d.getValue())});
    print_table({"DERIVED", "VALUE"}, rows);
  }
  for (auto w : t.getWarnings())
    std::printf("warning: %s\n", w.cStr());
}

// One connection, logged in.
struct connection {
  twinrt::app::rpc_client client;
  twinrt::rpc::Session::Reader session;
  kj::Own<capnp::Response<twinrt::rpc::Gateway::LoginResults>> login;

  connection(const options& o) : client({o.address, o.tls, o.ca_file, o.tls_name, 7800}) {
    auto gw = client.getMain<twinrt::rpc::Gateway>();
    auto req = gw.loginRequest();
    req.setToken(o.token);
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
                  login = kj::heap(req.send().wait(client.getWaitScope()));
                })) {
      if (e->getType() == kj::Exception::Type::DISCONNECTED && !o.tls)
        throw KJ_EXCEPTION(DISCONNECTED,
                           kj::str("the node at ", o.address.c_str(),
                                   " closed the connection before login: if it serves TLS, "
                                   "connect with --tls --ca FILE (", e->getDescription(), ")"));
      throw kj::mv(*e);
    }
    session = login->getSession();
  }
  kj::WaitScope& ws() { return client.getWaitScope(); }
};

// Prints changes as they come; stops after `limit` changes if set.
class printing_watcher final : public twinrt::rpc::Watcher::Server {
public:
  printing_watcher(bool as_json, uint64_t limit, kj::Own<kj::PromiseFulfiller<void>> finished)
    : as_json_(as_json), limit_(limit), finished_(kj::mv(finished)) {}

  kj::Promise<void> update(UpdateContext ctx) override {
    auto p = ctx.getParams();
    if (limit_ > 0 && seen_ >= limit_)
      return kj::READY_NOW; // --count reached: print nothing more
    if (p.getCoalesced() > 0 && !as_json_)
      std::printf("# %llu updates coalesced\n", static_cast<unsigned long long>(p.getCoalesced()));
    for (auto c : p.getChanges()) {
      if (limit_ > 0 && seen_ >= limit_)
        break;
      auto t = c.getTwin();
      if (as_json_) {
        json j = twin_json(t);
        j["coalesced"] = p.getCoalesced();
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::string vals;
        for (auto ch : t.getChannels())
          vals += " " + std::string(ch.getName().cStr()) + "=" + num(ch.getValue());
        for (auto s : t.getRollup().getSums())
          if (t.getChildren() > 0)
            vals += " " + std::string(s.getKey().cStr()) + "=" + num(s.getValue());
        std::printf("%s %s %s %.0f%s\n", iso_time(wall_ms()).c_str(), t.getId().cStr(),
                    health_name(t.getHealth()), t.getScore(), vals.c_str());
      }
      if (limit_ > 0 && ++seen_ >= limit_ && finished_->isWaiting())
        finished_->fulfill();
    }
    std::fflush(stdout);
    return kj::READY_NOW;
  }

  kj::Promise<void> done(DoneContext ctx) override {
    std::fprintf(stderr, "twinctl: watch ended by the node: %s\n", ctx.getParams().getReason().cStr());
    if (finished_->isWaiting())
      finished_->reject(KJ_EXCEPTION(DISCONNECTED, "watch cut off"));
    return kj::READY_NOW;
  }

private:
  bool as_json_;
  uint64_t limit_;
  uint64_t seen_ = 0;
  kj::Own<kj::PromiseFulfiller<void>> finished_;
};



std::string clean(kj::StringPtr description) {
  std::string d = description.cStr();
  for (const char* prefix : {"remote exception: ", "std::exception: "})
    if (d.rfind(prefix, 0) == 0)
      d = d.substr(std::strlen(prefix));
  return d;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App cli{"twinctl: query, watch and feed the twins of a twinrt node"};
  cli.require_subcommand(1);
  options o;
  if (auto a = std::getenv("TWINRT_ADDRESS"))
    o.address = a;
  if (auto t = std::getenv("TWINRT_TOKEN"))
    o.token = t;
  cli.add_option("--address", o.address, "node RPC address HOST:PORT (env TWINRT_ADDRESS; default 127.0.0.1:7800)");
  cli.add_option("--token", o.token, "access token (env TWINRT_TOKEN)");
  cli.add_flag("--json", o.as_json, "print JSON instead of tables");
  if (auto ca = std::getenv("TWINRT_CA"))
    o.ca_file = ca;
  cli.add_flag("--tls", o.tls, "connect over TLS, checking the node's certificate for HOST");
  cli.add_option("--ca", o.ca_file,
                 "PEM file of the CA(s) that signed the node's certificate (env TWINRT_CA; "
                 "default: the system's trust store); implies --tls");
  cli.add_option("--tls-name", o.tls_name,
                 "with --tls: the name the node's certificate must carry (default: HOST of "
                 "--address)");

  std::string id;
  auto get_cmd = cli.add_subcommand("get", "show one twin: channels, health, rollups");
  get_cmd->add_option("id", id, "twin id")->required();

  std::string subtree, kind, where, sort_by, page;
  std::vector<std::string> health;
  bool desc = false;
  uint32_t limit = 0;
  auto add_query = [&](CLI::App* c) {
    c->add_option("subtree", subtree, "subtree to list (default: the token's scope)");
    c->add_option("--kind", kind, "only twins of this kind");
    c->add_option("--health", health, "only twins in this health (ok, warning, alarm, stale); repeatable");
    c->add_option("--where", where, "predicate, e.g. 'vibration_mm_s > 4.5 and score < 80'");
    c->add_option("--sort", sort_by, "sort by id (default), score, a channel, a rollup sum or a derived value");
    c->add_flag("--desc", desc, "sort descending");
    c->add_option("--limit", limit, "page size (default 100, at most 1000)");
    c->add_option("--page", page, "page token printed by the previous page");
  };
  auto ls_cmd = cli.add_subcommand("ls", "list twins under a subtree");
  add_query(ls_cmd);
  auto query_cmd = cli.add_subcommand("query", "list twins matching filters (same as ls)");
  add_query(query_cmd);

  std::string channel, since = "1h", until, step;
  uint32_t hist_limit = 0;
  auto hist_cmd = cli.add_subcommand("history", "stored samples of one channel, raw or downsampled");
  hist_cmd->add_option("id", id, "twin id")->required();
  hist_cmd->add_option("channel", channel, "channel name")->required();
  hist_cmd->add_option("--since", since, "how far back, e.g. 2h (default 1h)");
  hist_cmd->add_option("--until", until, "end, as an age like --since (default now)");
  hist_cmd->add_option("--step", step, "downsample to one point per step (min, max, mean, last)");
  hist_cmd->add_option("--limit", hist_limit, "at most this many points (default 10000)");

  uint64_t watch_count = 0;
  double watch_seconds = 0;
  auto watch_cmd = cli.add_subcommand("watch", "stream changes below a subtree until Ctrl-C");
  watch_cmd->add_option("subtree", subtree, "subtree (default: the token's scope)");
  watch_cmd->add_option("--count", watch_count, "stop after this many changes");
  watch_cmd->add_option("--seconds", watch_seconds, "stop after this many seconds");

  std::string file;
  auto ingest_cmd = cli.add_subcommand("ingest", "send samples from a file (JSON lines or CSV)");
  ingest_cmd->add_option("file", file, "twin,channel,ts,value[,source,seq] per line, or JSON objects")->required();

  auto twin_cmd = cli.add_subcommand("twin", "create, delete or move twins");
  twin_cmd->require_subcommand(1);
  std::string parent;
  auto create_cmd = twin_cmd->add_subcommand("create", "create a twin");
  create_cmd->add_option("id", id, "twin id")->required();
  create_cmd->add_option("--kind", kind, "model kind")->required();
  create_cmd->add_option("--parent", parent, "rollup parent");
  auto delete_cmd = twin_cmd->add_subcommand("delete", "delete a twin without children");
  delete_cmd->add_option("id", id, "twin id")->required();
  auto reparent_cmd = twin_cmd->add_subcommand("reparent", "move a twin under another parent");
  reparent_cmd->add_option("id", id, "twin id")->required();
  reparent_cmd->add_option("parent", parent, "new parent")->required();

  auto models_cmd = cli.add_subcommand("models", "list the models in force and their versions");
  auto status_cmd = cli.add_subcommand(
    "status", "the node's counters: twins, samples, and its adapters' (MQTT sequence gaps ...)");

  std::string audit_since = "24h", audit_token;
  uint32_t audit_limit = 0;
  auto audit_cmd = cli.add_subcommand(
    "audit", "who changed what, when and from where: the node's audit trail (needs an admin token)");
  audit_cmd->add_option("--since", audit_since, "how far back, e.g. 2h (default 24h)");
  audit_cmd->add_option("--token", audit_token,
                        "only the calls of this token NAME (give the credential itself before "
                        "'audit', or in TWINRT_TOKEN)");
  audit_cmd->add_option("--limit", audit_limit, "the newest this many (default 1000)");
  audit_cmd->fallthrough();

  std::vector<std::string> alert_states;
  bool all_alerts = false;
  uint64_t alert_id = 0;
  std::string note;
  auto alerts_cmd = cli.add_subcommand("alerts", "list alerts, newest first; 'alerts ack ID' acknowledges one");
  alerts_cmd->add_option("subtree", subtree, "subtree (default: the token's scope)");
  alerts_cmd->add_option("--state", alert_states,
                         "raised, acknowledged or cleared; repeatable (default: the open ones, "
                         "raised and acknowledged)");
  alerts_cmd->add_flag("--all", all_alerts, "every state, cleared alerts too");
  alerts_cmd->add_option("--limit", limit, "at most this many (default 1000)");
  auto ack_cmd = alerts_cmd->add_subcommand("ack", "acknowledge an open alert (needs a write token)");
  ack_cmd->add_option("id", alert_id, "alert id")->required();
  ack_cmd->add_option("--note", note, "why, or what is being done");
  alerts_cmd->fallthrough(); // --json after the subcommand too
  ack_cmd->fallthrough();

  CLI11_PARSE(cli, argc, argv);
  if (cli.count("--ca") > 0)
    o.tls = true;

  try {
    connection c(o);
    auto reader = c.session.getReader();
    auto& ws = c.ws();
    if (*get_cmd) {
      auto req = reader.getRequest();
      req.setId(id);
      auto res = req.send().wait(ws);
      if (o.as_json)
        std::printf("%s\n", twin_json(res.getTwin()).dump(2).c_str());
      else
        print_twin(res.getTwin());
    } else if (*ls_cmd || *query_cmd) {
      auto req = reader.queryRequest();
      auto q = req.initQuery();
      q.setSubtree(subtree);
      q.setKind(kind);
      auto hl = q.initHealth(static_cast<unsigned>(health.size()));
      for (unsigned i = 0; i < health.size(); ++i) {
        auto h = health_of(health[i]);
        if (!h)
          throw user_error{"unknown health '" + health[i] + "': use ok, warning, alarm or stale"};
        hl.set(i, *h);
      }
      q.setWhere(where);
      q.setSortBy(sort_by);
      q.setDescending(desc);
      q.setLimit(limit);
      q.setPageToken(page);
      auto res = req.send().wait(ws);
      if (o.as_json) {
        json j;
        j["twins"] = json::array();
        for (auto t : res.getTwins())
          j["twins"].push_back(twin_json(t));
        j["total"] = res.getTotal();
        j["next_page"] = res.getNextPageToken().cStr();
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::vector<std::vector<std::string>> rows;
        // Extra columns: the sort key and every value the predicate names.
        std::vector<std::string> extra;
        if (!sort_by.empty() && sort_by != "id" && sort_by != "score")
          extra.push_back(sort_by);
        for (auto& name : names_in(where))
          if (name != "score" && std::find(extra.begin(), extra.end(), name) == extra.end())
            extra.push_back(name);
        for (auto t : res.getTwins()) {
          std::vector<std::string> row{t.getId().cStr(), t.getKind().cStr(),
                                       health_name(t.getHealth()), num(t.getScore())};
          for (auto& name : extra)
            row.push_back(value_text(t, name));
          rows.push_back(row);
        }
        std::vector<std::string> head{"ID", "KIND", "HEALTH", "SCORE"};
        head.insert(head.end(), extra.begin(), extra.end());
        print_table(head, rows);
        std::printf("(%zu of %u)", rows.size(), res.getTotal());
        if (res.getNextPageToken().size() > 0)
          std::printf(" next page: --page %s", res.getNextPageToken().cStr());
        std::printf("\n");
      }
    } else if (*hist_cmd) {
      auto now = wall_ms();
      auto req = reader.historyRequest();
      req.setId(id);
      req.setChannel(channel);
      req.setFromMs(now - duration_ms(since));
      req.setToMs(until.empty() ? now + 1 : now - duration_ms(until));
      req.setStepMs(step.empty() ? 0 : duration_ms(step));
      req.setLimit(hist_limit);
      auto res = req.send().wait(ws);
      if (o.as_json) {
        json j = json::array();
        for (auto p : res.getPoints())
          j.push_back({{"timestamp_ms", p.getTimestampMs()}, {"value", p.getValue()},
                       {"min", p.getMin()}, {"max", p.getMax()}, {"last", p.getLast()},
                       {"count", p.getCount()}, {"model_version", p.getModelVersion()}});
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::vector<std::vector<std::string>> rows;
        for (auto p : res.getPoints()) {
          if (step.empty())
            rows.push_back({iso_time(p.getTimestampMs()), num(p.getValue())});
          else
            rows.push_back({iso_time(p.getTimestampMs()), num(p.getMin()), num(p.getMax()),
                            num(p.getValue()), num(p.getLast()), std::to_string(p.getCount())});
        }
        if (step.empty())
          print_table({"TIME", "VALUE"}, rows);
        else
          print_table({"TIME", "MIN", "MAX", "MEAN", "LAST", "N"}, rows);
      }
    } else if (*watch_cmd) {
      auto paf = kj::newPromiseAndFulfiller<void>();
      auto req = reader.watchRequest();
      req.setSubtree(subtree);
      req.setWatcher(kj::heap<printing_watcher>(o.as_json, watch_count, kj::mv(paf.fulfiller)));
      auto res = req.send().wait(ws);
      auto sub = res.getSubscription();
      if (!o.as_json)
        std::fprintf(stderr, "twinctl: watching %s (Ctrl-C stops)\n",
                     subtree.empty() ? c.session.getScope().cStr() : subtree.c_str());
      // The node says why it ended the watch through the subscription (not
      // queued behind updates still in flight to us).
      kj::Promise<void> finished =
        paf.promise.exclusiveJoin(sub.endedRequest().send().then(
          [](capnp::Response<twinrt::rpc::Subscription::EndedResults>&& r) -> kj::Promise<void> {
            std::fprintf(stderr, "twinctl: watch ended by the node: %s\n", r.getReason().cStr());
            return KJ_EXCEPTION(DISCONNECTED, "watch ended by the node");
          }));
      if (watch_seconds > 0) {
        auto& timer = c.client.getIoProvider().getTimer();
        finished = finished.exclusiveJoin(
          timer.afterDelay(static_cast<int64_t>(watch_seconds * 1000) * kj::MILLISECONDS));
      }
      finished.wait(ws);
      auto stats = sub.statsRequest().send().wait(ws);
      std::fprintf(stderr, "twinctl: %llu changes delivered, %llu coalesced\n",
                   static_cast<unsigned long long>(stats.getDelivered()),
                   static_cast<unsigned long long>(stats.getCoalesced()));
    } else if (*ingest_cmd) {
      auto read = twinrt::adapters::read_sample_file(file, wall_ms());
      if (!read.errors.empty())
        throw user_error{read.errors.front()};
      auto& samples = read.samples;
      auto writer = c.session.getWriter();
      uint64_t accepted = 0;
      size_t rejected = 0;
      constexpr size_t batch = 10'000;
      json rejections = json::array();
      for (size_t start = 0; start < samples.size(); start += batch) {
        auto n = std::min(batch, samples.size() - start);
        auto req = writer.ingestRequest();
        auto list = req.initSamples(static_cast<unsigned>(n));
        for (size_t i = 0; i < n; ++i) {
          auto& s = samples[start + i];
          list[static_cast<unsigned>(i)].setTwin(s.twin);
          list[static_cast<unsigned>(i)].setChannel(s.channel);
          list[static_cast<unsigned>(i)].setTimestampMs(s.ts_ms);
          list[static_cast<unsigned>(i)].setValue(s.value);
          list[static_cast<unsigned>(i)].setSource(s.source);
          list[static_cast<unsigned>(i)].setSeq(s.seq);
        }
        auto res = req.send().wait(ws);
        accepted += res.getAccepted();
        for (auto r : res.getRejected()) {
          ++rejected;
          // Positions in the file, not in the batch.
          auto line = start + r.getIndex();
          rejections.push_back({{"sample", line}, {"reason", r.getReason().cStr()},
                                {"message", r.getMessage().cStr()}});
          if (!o.as_json)
            std::fprintf(stderr, "rejected (%s): %s\n", r.getReason().cStr(), r.getMessage().cStr());
        }
      }
      if (o.as_json)
        std::printf("%s\n", json{{"accepted", accepted}, {"rejected", rejections}}.dump(2).c_str());
      else
        std::printf("%llu accepted, %zu rejected\n", static_cast<unsigned long long>(accepted), rejected);
      return rejected == 0 ? 0 : 1;
    } else if (*create_cmd) {
      auto req = c.session.getWriter().createTwinRequest();
      req.setId(id);
      req.setKind(kind);
      req.setParent(parent);
      req.send().wait(ws);
      std::printf("created %s\n", id.c_str());
    } else if (*delete_cmd) {
      auto req = c.session.getWriter().deleteTwinRequest();
      req.setId(id);
      req.send().wait(ws);
      std::printf("deleted %s\n", id.c_str());
    } else if (*reparent_cmd) {
      auto req = c.session.getWriter().reparentRequest();
      req.setId(id);
      req.setParent(parent);
      req.send().wait(ws);
      std::printf("moved %s under %s\n", id.c_str(), parent.c_str());
    } else if (*ack_cmd) {
      auto req = c.session.getWriter().ackAlertRequest();
      req.setId(alert_id);
      req.setNote(note);
      auto res = req.send().wait(ws);
      if (o.as_json)
        std::printf("%s\n", alert_json(res.getAlert()).dump(2).c_str());
      else
        std::printf("acknowledged alert %llu on %s (%s) as %s\n",
                    static_cast<unsigned long long>(alert_id), res.getAlert().getTwin().cStr(),
                    res.getAlert().getRule().cStr(), res.getAlert().getAckedBy().cStr());
    } else if (*alerts_cmd) {
      auto req = reader.alertsRequest();
      req.setSubtree(subtree);
      if (alert_states.empty() && !all_alerts)
        alert_states = {"raised", "acknowledged"}; // what needs someone's attention
      auto states = req.initStates(static_cast<unsigned>(alert_states.size()));
      for (unsigned i = 0; i < alert_states.size(); ++i) {
        auto& st = alert_states[i];
        if (st == "raised")
          states.set(i, twinrt::rpc::AlertState::RAISED);
        else if (st == "acknowledged")
          states.set(i, twinrt::rpc::AlertState::ACKNOWLEDGED);
        else if (st == "cleared")
          states.set(i, twinrt::rpc::AlertState::CLEARED);
        else
          throw user_error{"unknown alert state '" + st
                           + "': use raised, acknowledged or cleared"};
      }
      req.setLimit(limit);
      auto res = req.send().wait(ws);
      if (o.as_json) {
        json j = json::array();
        for (auto a : res.getAlerts())
          j.push_back(alert_json(a));
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::vector<std::vector<std::string>> rows;
        for (auto a : res.getAlerts()) {
          auto j = alert_json(a);
          rows.push_back({std::to_string(a.getId()), j["state"], j["severity"], a.getTwin().cStr(),
                          a.getRule().cStr(), a.getValue().cStr(), num(a.getRaisedValue()),
                          age(a.getRaisedMs()), a.getAckedBy().cStr()});
        }
        print_table({"ID", "STATE", "SEVERITY", "TWIN", "RULE", "VALUE", "OBSERVED", "AGE", "ACKED BY"},
                    rows);
      }
    } else if (*status_cmd) {
      auto res = reader.statusRequest().send().wait(ws);
      auto st = res.getStatus();
      // Adapter series as on /metrics: family{label="value",...}, sorted.
      std::vector<std::pair<std::string, int64_t>> series;
      json adapters = json::array();
      for (auto c2 : st.getAdapters()) {
        std::string name = c2.getName().cStr();
        json labels = json::object();
        std::string shown;
        for (auto l : c2.getLabels()) {
          labels[l.getName().cStr()] = l.getValue().cStr();
          shown += (shown.empty() ? "" : ",") + std::string(l.getName().cStr()) + "=\""
                   + l.getValue().cStr() + "\"";
        }
        series.emplace_back(shown.empty() ? name : name + "{" + shown + "}", c2.getValue());
        adapters.push_back({{"name", name}, {"labels", labels}, {"value", c2.getValue()}});
      }
      if (o.as_json) {
        std::printf("%s\n", json{{"twins", st.getTwins()},
                                 {"active_twins", st.getActiveTwins()},
                                 {"samples_ingested", st.getSamplesIngested()},
                                 {"samples_rejected", st.getSamplesRejected()},
                                 {"storage", st.getStorageFailure().size() == 0
                                               ? std::string("ok")
                                               : std::string(st.getStorageFailure().cStr())},
                                 {"adapters", adapters}}
                                .dump(2)
                                .c_str());
      } else {
        std::sort(series.begin(), series.end());
        std::vector<std::vector<std::string>> rows{
          {"twins", std::to_string(st.getTwins())},
          {"twins active", std::to_string(st.getActiveTwins())},
          {"samples ingested", std::to_string(st.getSamplesIngested())},
          {"samples rejected", std::to_string(st.getSamplesRejected())},
          {"storage", st.getStorageFailure().size() == 0 ? std::string("ok")
                                                         : std::string(st.getStorageFailure().cStr())}};
        for (auto& [name, value] : series)
          rows.push_back({name, std::to_string(value)});
        print_table({"COUNTER", "VALUE"}, rows);
      }
    } else if (*audit_cmd) {
      auto req = c.session.getAdmin().auditRequest();
      req.setSinceMs(wall_ms() - duration_ms(audit_since));
      req.setToken(audit_token);
      req.setLimit(audit_limit);
      auto res = req.send().wait(ws);
      if (o.as_json) {
        json j = json::array();
        for (auto e : res.getEntries())
          j.push_back({{"seq", e.getSeq()}, {"time_ms", e.getTimeMs()}, {"time", iso_time(e.getTimeMs())},
                       {"token", e.getToken().cStr()}, {"peer", e.getPeer().cStr()},
                       {"action", e.getAction().cStr()}, {"target", e.getTarget().cStr()},
                       {"detail", e.getDetail().cStr()}, {"outcome", e.getOutcome().cStr()}});
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::vector<std::vector<std::string>> rows;
        for (auto e : res.getEntries())
          rows.push_back({iso_time(e.getTimeMs()), e.getToken().cStr(), e.getPeer().cStr(),
                          e.getAction().cStr(), e.getTarget().cStr(), e.getDetail().cStr(),
                          e.getOutcome().cStr()});
        print_table({"TIME", "TOKEN", "FROM", "ACTION", "TARGET", "DETAIL", "OUTCOME"}, rows);
      }
    } else if (*models_cmd) {
      auto res = reader.modelsRequest().send().wait(ws);
      if (o.as_json) {
        json j = json::array();
        for (auto m : res.getModels()) {
          json ch = json::array();
          for (auto c2 : m.getChannels())
            ch.push_back(c2.cStr());
          j.push_back({{"kind", m.getKind().cStr()}, {"version", m.getVersion()},
                       {"description", m.getDescription().cStr()}, {"channels", ch}});
        }
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::vector<std::vector<std::string>> rows;
        for (auto m : res.getModels()) {
          std::string ch;
          for (auto c2 : m.getChannels())
            ch += (ch.empty() ? "" : ",") + std::string(c2.cStr());
          rows.push_back({m.getKind().cStr(), std::to_string(m.getVersion()), ch});
        }
        print_table({"KIND", "VERSION", "CHANNELS"}, rows);
      }
    }
  } catch (const user_error& e) {
    std::fprintf(stderr, "twinctl: %s\n", e.what.c_str());
    return 2;
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "twinctl: %s\n", clean(e.getDescription()).c_str());
    return 1;
  }
  return 0;
}
