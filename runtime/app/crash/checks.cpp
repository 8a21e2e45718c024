#include "checks.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace twinrt::crash_loop {

namespace {

bool whole_units(const std::string& key) {
  return key.rfind("stock/", 0) == 0 || key.rfind("count/", 0) == 0;
}

// Stock and counts to the unit; sums of fractions (energy) to rounding.
bool same(const std::string& key, double a, double b) {
  if (whole_units(key))
    return a == b;
  return std::fabs(a - b) <= 1e-9 * std::max({1.0, std::fabs(a), std::fabs(b)});
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

} // namespace

void findings::note(uint64_t& counter, uint64_t n, std::string what) {
  counter += n;
  if (details.size() < 20)
    details.push_back(std::move(what));
}

// Every acknowledged sample is in its channel's history once, with its value,
// and nothing else is.
std::string check_history(node_client& node, const expectations& e, findings& f) {
  for (auto& [key, want] : e.history) {
    auto& [twin, channel] = key;
    auto got = node.history(twin, channel, 0);
    if (!got)
      return "Reader.history " + twin + " " + channel + ": " + got.message;
    std::map<int64_t, double> expected; // one sample per channel per batch, times rise
    for (auto& p : want)
      expected[p.ts_ms] = p.value;
    std::map<int64_t, int> seen;
    for (auto& p : *got) {
      auto i = expected.find(p.ts_ms);
      if (i == expected.end() || i->second != p.value) {
        f.note(f.unexpected, 1,
               twin + "." + channel + ": a point at " + std::to_string(p.ts_ms) + " = "
                 + num(p.value) + " that no acknowledged batch had");
        continue;
      }
      if (++seen[p.ts_ms] == 2)
        f.note(f.duplicated, 1,
               twin + "." + channel + ": the sample at " + std::to_string(p.ts_ms)
                 + " is stored twice");
    }
    uint64_t missing = 0;
    int64_t first_missing = 0;
    for (auto& [ts, v] : expected)
      if (!seen.count(ts) && missing++ == 0)
        first_missing = ts;
    if (missing > 0)
      f.note(f.lost, missing,
             twin + "." + channel + ": " + std::to_string(missing) + " of " + std::to_string(expected.size())
               + " acknowledged samples missing, the first at " + std::to_string(first_missing));
  }
  return "";
}

result<state_problems> check_state(node_client& node, const expectations& e, const tree_facts& t) {
  state_problems out;
  auto& problems = out.settled;
  std::map<std::string, twin_snapshot> snaps;
  for (auto& [id, want] : e.twins) {
    auto s = node.get(id);
    if (!s)
      return result<state_problems>::fail("Reader.get " + id + ": " + s.message);
    if (s->parent != want.parent)
      problems.push_back({&findings::lost_ops, id + " is under " + s->parent + ", the log says " + want.parent});
    snaps.emplace(id, std::move(*s));
  }
  auto models = node.models();
  if (!models)
    return result<state_problems>::fail("Reader.models: " + models.message);
  for (auto& [kind, version] : e.model_versions)
    if ((*models)[kind] != version)
      problems.push_back({&findings::lost_ops, kind + " v" + std::to_string((*models)[kind])
                                         + " in force, the log says v" + std::to_string(version)});

  // Leaves: stock from receipts and picks; latest values of machines.
  std::map<std::string, std::map<std::string, int64_t>> stock;
  std::map<std::string, int64_t> total;
  for (auto& [key, points] : e.history) {
    auto& [twin, channel] = key;
    auto slash = channel.find('/');
    if (slash == std::string::npos) {
      auto& got = snaps.at(twin).channels;
      auto i = got.find(channel);
      auto& last = points.back();
      if (i == got.end() || i->second.ts_ms != last.ts_ms || i->second.value != last.value)
        problems.push_back({&findings::rollup, twin + "." + channel + " latest is "
                                         + (i == got.end() ? std::string("missing")
                                                           : num(i->second.value) + " at "
                                                               + std::to_string(i->second.ts_ms))
                                         + ", the last acknowledged sample " + num(last.value)
                                         + " at " + std::to_string(last.ts_ms)});
      continue;
    }
    auto effect = t.movement_sign.find(channel.substr(0, slash));
    if (effect == t.movement_sign.end())
      continue; // not a movement: nothing the checks follow
    int64_t sign = effect->second;
    auto sku = channel.substr(slash + 1);
    for (auto& p : points) {
      stock[twin][sku] += sign * static_cast<int64_t>(p.value);
      total[sku] += sign * static_cast<int64_t>(p.value);
    }
  }
  for (auto& [id, s] : snaps) {
    if (s.kind != t.stock_kind)
      continue;
    auto& want = stock[id];
    std::set<std::string> keys;
    for (auto& [k, v] : want)
      keys.insert(k);
    for (auto& [k, v] : s.stock)
      keys.insert(k);
    for (auto& k : keys) {
      int64_t w = want.count(k) ? want.at(k) : 0;
      int64_t g = s.stock.count(k) ? s.stock.at(k) : 0;
      if (w != g)
        problems.push_back({&findings::rollup, id + " stock " + k + " is " + std::to_string(g)
                                         + ", acknowledged receipts minus picks give "
                                         + std::to_string(w)});
    }
  }
  for (auto& [sku, units] : total) {
    auto& sums = snaps.at(t.root).sums;
    auto i = sums.find("stock/" + sku);
    double got = i == sums.end() ? 0 : i->second;
    if (got != static_cast<double>(units))
      problems.push_back({&findings::rollup, t.root + " stock/" + sku + " is " + num(got)
                                       + ", acknowledged receipts minus picks give "
                                       + std::to_string(units)});
  }

  // Parents: the fold of their children as the node reports them now.
  std::map<std::string, std::vector<const twin_snapshot*>> children;
  for (auto& [id, s] : snaps)
    if (!s.parent.empty())
      children[s.parent].push_back(&s);
  for (auto& [id, s] : snaps) {
    if (!t.folding_kinds.count(s.kind))
      continue;
    auto& kids = children[id]; // in id order
    std::map<std::string, double> sums;
    std::array<int64_t, 4> counts{};
    double score_sum = 0;
    std::string worst_id;
    int worst = 0;
    for (auto* k : kids) {
      for (auto& [key, v] : k->sums) {
        auto& slot = sums[key];
        slot += v;
        if (slot == 0)
          sums.erase(key);
      }
      int64_t n = 0;
      for (size_t i = 0; i < 4; ++i) {
        counts[i] += k->counts[i];
        n += k->counts[i];
      }
      score_sum += k->score * static_cast<double>(n);
      if (!k->worst_id.empty()
          && (worst_id.empty() || k->worst_health > worst
              || (k->worst_health == worst && k->worst_id < worst_id))) {
        worst_id = k->worst_id;
        worst = k->worst_health;
      }
    }
    std::string diff;
    if (s.children != kids.size())
      diff += " " + std::to_string(s.children) + " children, " + std::to_string(kids.size())
              + " name it as parent;";
    for (auto& [key, v] : sums) {
      auto i = s.sums.find(key);
      if (i == s.sums.end())
        diff += " missing " + key + " = " + num(v) + ";";
      else if (!same(key, i->second, v))
        diff += " " + key + " is " + num(i->second) + ", children give " + num(v) + ";";
    }
    for (auto& [key, v] : s.sums)
      if (!sums.count(key))
        diff += " " + key + " = " + num(v) + " that no child has;";
    if (s.counts != counts)
      diff += " health counts " + std::to_string(s.counts[0]) + "/" + std::to_string(s.counts[1])
              + "/" + std::to_string(s.counts[2]) + "/" + std::to_string(s.counts[3])
              + ", children give " + std::to_string(counts[0]) + "/" + std::to_string(counts[1])
              + "/" + std::to_string(counts[2]) + "/" + std::to_string(counts[3]) + ";";
    int64_t n = counts[0] + counts[1] + counts[2] + counts[3];
    if (n > 0 && !same("score", s.score, score_sum / static_cast<double>(n)))
      diff += " score " + num(s.score) + ", children give " + num(score_sum / static_cast<double>(n)) + ";";
    if (s.worst_id != worst_id || (!worst_id.empty() && s.worst_health != worst))
      diff += " worst " + s.worst_id + ", children give " + worst_id + ";";
    if (!diff.empty())
      out.folds.push_back({&findings::rollup, id + ":" + diff});
  }
  return {std::move(out), ""};
}

} // namespace twinrt::crash_loop
