// Promises 1-3 of DESIGN.md under kill -9: a child process (crash_child)
// ingests deterministic batches and is killed with SIGKILL once it has
// acknowledged a random number of them, at a random moment within the next
// batch or so, 20 times in a row on one data directory. After each kill the test
// opens the data directory itself and checks that recovery left every stored
// rollup exact, that the last acknowledged batch sent again is refused whole,
// that the batch which may have been in flight is applied once when re-sent,
// that every sample of every applied batch is stored, and that every live
// rollup is the exact fold of its children with leaves matching the batches.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "crash_workload.hpp"
#include "support.hpp"
#include "twinrt/twins/rollup.hpp"
#include "twinrt/twins/twin_state.hpp"

extern char** environ;

namespace {

using namespace twinrt;
namespace wl = twinrt::crash_workload;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int rounds = 20;

/// What one run of the child printed before it died.
struct child_run {
  std::vector<uint64_t> acks;
  int wait_status = 0;
  std::string error; // set when the run could not be driven as planned
};

/// Starts crash_child on `dir` from batch `from`, waits until it has
/// acknowledged `acks` batches, kills it with SIGKILL `jitter` later, and
/// collects every ACK it printed.
child_run run_and_kill(const std::string& dir, uint64_t from, size_t acks, microseconds jitter) {
  child_run out;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    out.error = "pipe2 failed";
    return out;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  std::string path = TWINRT_CRASH_CHILD;
  std::string from_arg = std::to_string(from);
  char* argv[] = {path.data(), const_cast<char*>(dir.c_str()), from_arg.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    out.error = "cannot start " + path + ": " + std::strerror(rc);
    return out;
  }

  std::string pending;
  bool eof = false;
  // Reads ACK lines until `deadline`, EOF, or `enough` ACKs (0: no such limit).
  auto pump = [&](steady_clock::time_point deadline, size_t enough) {
    while (!eof) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0)
        return;
      pollfd p{fds[0], POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r <= 0)
        continue;
      char buf[4096];
      auto got = ::read(fds[0], buf, sizeof buf);
      if (got <= 0) {
        eof = true;
        return;
      }
      pending.append(buf, static_cast<size_t>(got));
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
        auto line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (line.rfind("ACK ", 0) == 0)
          out.acks.push_back(std::stoull(line.substr(4)));
        else
          out.error = "unexpected line from the child: " + line;
      }
      if (enough > 0 && out.acks.size() >= enough)
        return;
    }
  };
  // Node start-up, maybe the tree, then `acks` batches; the deadline is for a
  // broken build only.
  pump(steady_clock::now() + twinrt::testing::patience, acks);
  if (out.acks.size() < acks && out.error.empty())
    out.error = (eof ? "child ended after " : "no more than ") + std::to_string(out.acks.size())
                + " of " + std::to_string(acks) + " ACKs"
                + (eof ? "" : " within " + std::to_string(twinrt::testing::patience.count()) + " s");
  if (!eof && out.error.empty())
    std::this_thread::sleep_for(jitter); // where in the next batch the kill lands
  ::kill(pid, SIGKILL);
  while (!eof)
    pump(steady_clock::now() + std::chrono::seconds(5), 0); // drain to EOF
  ::close(fds[0]);
  ::waitpid(pid, &out.wait_status, 0);
  return out;
}

/// What the test knows was applied: a pure function of the batches applied.
struct tally {
  struct point {
    int64_t ts_ms;
    double value;
    uint64_t seq;
  };
  std::map<std::pair<std::string, std::string>, std::vector<point>> history;
  std::map<std::string, std::map<std::string, int64_t>> stock; // warehouse -> sku -> units
  std::map<std::string, double> energy_kwh;                     // machine -> kWh
  std::map<std::string, std::pair<double, int64_t>> last_power; // machine -> (kW, ts)
  uint64_t batches = 0; // batches 0 .. batches-1 are applied

  void apply(uint64_t n) {
    EXPECT_EQ(n, batches) << "batches must be applied in order";
    for (auto& s : wl::batch(n)) {
      history[{s.twin, s.channel}].push_back({s.ts_ms, s.value, s.seq});
      if (auto slash = s.channel.find('/'); slash != std::string::npos) {
        auto units = static_cast<int64_t>(s.value);
        auto& slot = stock[s.twin][s.channel.substr(slash + 1)];
        slot += s.channel.compare(0, slash, "receipt") == 0 ? units : -units;
      } else if (s.channel == "power_kw" && s.twin.find("/machine-") != std::string::npos) {
        // The same integration the twin does: previous reading times the gap.
        auto [it, first] = last_power.try_emplace(s.twin, s.value, s.ts_ms);
        if (!first) {
          energy_kwh[s.twin] +=
            it->second.first * static_cast<double>(s.ts_ms - it->second.second) / 3'600'000.0;
          it->second = {s.value, s.ts_ms};
        }
      }
    }
    ++batches;
  }
};

bool close_enough(const std::string& key, double a, double b) {
  if (key.rfind("stock/", 0) == 0 || key.rfind("count/", 0) == 0)
    return a == b; // whole units: exact
  return std::fabs(a - b) <= 1e-9 * std::max({1.0, std::fabs(a), std::fabs(b)});
}

/// Differences between `got` and `want`, empty when they match.
std::string compare(const twins::contribution& got, const twins::contribution& want) {
  std::ostringstream os;
  for (auto& [k, v] : want.sums) {
    auto i = got.sums.find(k);
    if (i == got.sums.end())
      os << " missing " << k << "=" << v << ";";
    else if (!close_enough(k, i->second, v))
      os << " " << k << " is " << i->second << ", fold says " << v << ";";
  }
  for (auto& [k, v] : got.sums)
    if (!want.sums.count(k))
      os << " extra " << k << "=" << v << ";";
  if (got.counts != want.counts)
    os << " health counts differ;";
  if (got.score_sum != want.score_sum || got.score_count != want.score_count)
    os << " score " << got.score_sum << "/" << got.score_count << ", fold says "
       << want.score_sum << "/" << want.score_count << ";";
  if (got.worst_id != want.worst_id || got.worst_status != want.worst_status)
    os << " worst " << got.worst_id << " (" << twins::to_string(got.worst_status)
       << "), fold says " << want.worst_id << " (" << twins::to_string(want.worst_status)
       << ");";
  return os.str();
}

/// Every stored sample of every applied batch, exactly: same timestamps,
/// values, source and sequence, nothing more.
void expect_history(runtime::node& node, const tally& t) {
  auto to = wl::sample_ts(t.batches, 0);
  for (auto& [key, want] : t.history) {
    auto got = node.history(key.first, key.second, wl::base_ts_ms, to, 10'000'000);
    ASSERT_TRUE(got) << key.first << "." << key.second << ": " << runtime::describe(got.error());
    ASSERT_EQ(got->size(), want.size())
      << key.first << "." << key.second << " after " << t.batches << " batches";
    for (size_t i = 0; i < want.size(); ++i) {
      auto& g = (*got)[i];
      auto& w = want[i];
      ASSERT_TRUE(g.ts_ms == w.ts_ms && g.value == w.value && g.seq == w.seq
                  && g.source == wl::source)
        << key.first << "." << key.second << " point " << i << ": stored (" << g.ts_ms << ", "
        << g.value << ", " << g.source << "#" << g.seq << "), sent (" << w.ts_ms << ", "
        << w.value << ", crash#" << w.seq << ")";
    }
  }
}

/// The shard log holds every sample of every applied batch exactly once and
/// nothing else, in records numbered 1, 2, ... without a gap in each shard:
/// a sample is in it exactly when its history point is (the same write).
void expect_log(runtime::node& node, const tally& t) {
  using point = std::tuple<int64_t, double, uint64_t>;
  std::map<std::pair<std::string, std::string>, std::vector<point>> want, got;
  for (auto& [key, points] : t.history)
    for (auto& p : points)
      want[key].emplace_back(p.ts_ms, p.value, p.seq);
  auto& db = node.store();
  for (uint32_t shard = 0; shard < db.virtual_shards(); ++shard) {
    uint64_t expected_seq = 1;
    for (uint64_t from = 0;;) {
      auto page = db.read_log(shard, from, 1 << 20);
      ASSERT_FALSE(page.error) << runtime::describe(page.error);
      for (auto& bytes : page.records) {
        auto r = runtime::storage::decode_log_record(bytes);
        ASSERT_TRUE(r) << runtime::describe(r.error());
        ASSERT_EQ(r->seq, expected_seq++) << "shard " << shard;
        for (auto& s : r->samples) {
          ASSERT_EQ(s.source, wl::source);
          got[{s.twin, s.channel}].emplace_back(s.ts_ms, s.value, s.seq);
        }
      }
      if (page.records.empty())
        break;
      from = page.next;
    }
    ASSERT_EQ(db.last_log_seq(shard), expected_seq - 1) << "shard " << shard;
  }
  for (auto* m : {&want, &got})
    for (auto& [key, points] : *m)
      std::sort(points.begin(), points.end());
  ASSERT_EQ(got.size(), want.size()) << "channels in the shard log";
  for (auto& [key, points] : want) {
    auto& g = got[key];
    ASSERT_EQ(g.size(), points.size()) << key.first << "." << key.second << " in the shard log";
    ASSERT_TRUE(g == points) << key.first << "." << key.second
                             << ": the shard log's samples differ from those sent";
  }
}

/// Parents whose stored contribution is not the fold of their children's
/// stored ones, read straight from storage: right after start-up, before any
/// twin is active, this is what the node's recovery left behind.
std::vector<std::string> stored_rollup_problems(runtime::node& node) {
  std::vector<std::string> problems;
  std::map<std::string, twins::model_set::model_ptr> models;
  for (auto& m : node.models())
    models[m->kind] = m;
  std::map<std::string, twins::twin_state> states;
  std::map<std::string, std::vector<std::string>> children;
  std::map<std::string, std::string> kinds;
  for (auto& m : node.twins()) {
    auto st = node.store().load_state(m);
    if (!st) {
      problems.push_back(m.id + ": no stored state");
      continue;
    }
    states.emplace(m.id, std::move(*st));
    kinds.emplace(m.id, m.kind);
    if (!m.parent.empty())
      children[m.parent].push_back(m.id);
  }
  if (!problems.empty())
    return problems;
  for (auto& [id, kids] : children) {
    auto& parent = states.at(id);
    auto want = twins::own_contribution(parent, *models.at(kinds.at(id)), id);
    std::sort(kids.begin(), kids.end());
    for (auto& kid : kids)
      twins::fold_into(want, states.at(kid).own);
    if (auto diff = compare(parent.own, want); !diff.empty())
      problems.push_back(id + " (stored v" + std::to_string(parent.version) + "):" + diff);
  }
  return problems;
}

/// Checks every rollup and every leaf against the tally once; returns the
/// problems found (empty: all exact).
std::vector<std::string> rollup_problems(runtime::node& node, const tally& t) {
  std::vector<std::string> problems;
  std::map<std::string, runtime::twin_view> views;
  std::map<std::string, std::vector<std::string>> children; // ordered by id
  for (auto& m : node.twins()) {
    auto v = node.get(m.id);
    if (!v) {
      problems.push_back(m.id + ": " + runtime::describe(v.error()));
      continue;
    }
    views.emplace(m.id, std::move(*v));
    if (!m.parent.empty())
      children[m.parent].push_back(m.id);
  }
  if (!problems.empty())
    return problems;
  std::map<std::string, twins::model_set::model_ptr> models;
  for (auto& m : node.models())
    models[m->kind] = m;
  for (auto& [id, kids] : children) {
    auto& parent = views.at(id);
    auto want = twins::own_contribution(parent.state, *models.at(parent.meta.kind), id);
    std::sort(kids.begin(), kids.end());
    for (auto& kid : kids)
      twins::fold_into(want, views.at(kid).state.own);
    if (auto diff = compare(parent.state.own, want); !diff.empty())
      problems.push_back(id + " (v" + std::to_string(parent.state.version) + "):" + diff);
  }
  // Leaves hold what the batches say, to the unit.
  std::map<std::string, int64_t> total_stock;
  for (auto& [wh, skus] : t.stock) {
    auto& st = views.at(wh).state;
    for (auto& [sku, units] : skus) {
      total_stock[sku] += units;
      auto i = st.stock.find(sku);
      int64_t got = i == st.stock.end() ? 0 : i->second;
      if (got != units)
        problems.push_back(wh + " stock " + sku + " is " + std::to_string(got) + ", sent "
                           + std::to_string(units));
    }
  }
  auto& root = views.at("acme").state.own.sums;
  for (auto& [sku, units] : total_stock) {
    auto i = root.find("stock/" + sku);
    double got = i == root.end() ? 0 : i->second;
    if (got != static_cast<double>(units))
      problems.push_back("acme stock/" + sku + " is " + std::to_string(got) + ", sent "
                         + std::to_string(units));
  }
  for (auto& [machine, kwh] : t.energy_kwh) {
    auto got = views.at(machine).state.energy_kwh;
    if (!close_enough("energy_kwh", got, kwh))
      problems.push_back(machine + " energy " + std::to_string(got) + " kWh, samples give "
                         + std::to_string(kwh));
  }
  for (auto& [key, points] : t.history) {
    auto& ch = views.at(key.first).state.channels;
    auto i = ch.find(key.second);
    if (i == ch.end() || i->second.value != points.back().value
        || i->second.ts_ms != points.back().ts_ms)
      problems.push_back(key.first + "." + key.second + " latest value is not the last sent");
  }
  return problems;
}

TEST(CrashSafety, AcknowledgedSamplesSurviveKillNineAndRollupsStayExact) {
  twinrt::testing::temp_dir dir("crash");
  uint64_t seed = std::random_device{}();
  if (auto env = std::getenv("TWINRT_CRASH_SEED"))
    seed = std::stoull(env);
  std::cout << "crash_safety: seed " << seed << " (set TWINRT_CRASH_SEED to repeat), data "
            << dir.str() << std::endl;
  std::mt19937_64 rng(seed);
  // Each round runs until the child has acknowledged this many batches, then
  // kills it up to a few milliseconds later: inside the next batch, between
  // batches, or a few batches on.
  std::uniform_int_distribution<size_t> acks_before_kill(3, 40);
  std::uniform_int_distribution<int64_t> jitter_us(0, 5000);

  tally t;
  uint64_t acked = 0, stored_unacked = 0, partial_batches = 0;
  for (int round = 0; round < rounds; ++round) {
    auto from = t.batches;
    auto acks = acks_before_kill(rng);
    auto jitter = microseconds(jitter_us(rng));
    auto run = run_and_kill(dir.str(), from, acks, jitter);
    ASSERT_TRUE(run.error.empty()) << "round " << round << ": " << run.error;
    ASSERT_TRUE(WIFSIGNALED(run.wait_status) && WTERMSIG(run.wait_status) == SIGKILL)
      << "round " << round << ": the child ended on its own (status " << run.wait_status
      << "); see its message above";
    ASSERT_GE(run.acks.size(), acks) << "round " << round;
    for (size_t i = 0; i < run.acks.size(); ++i)
      ASSERT_EQ(run.acks[i], from + i) << "round " << round << ": ACKs out of order";
    for (auto n : run.acks)
      t.apply(n);
    acked += run.acks.size();

    auto node = twinrt::testing::start_node(wl::node_settings(dir.str()));
    ASSERT_TRUE(node) << "round " << round;

    // Recovery made the stored rollups exact before anything else runs.
    auto stored = stored_rollup_problems(*node);
    for (auto& p : stored)
      ADD_FAILURE() << "round " << round << ", stored rollup after restart: " << p;

    // The last acknowledged batch, delivered again, is refused whole.
    auto again = node->ingest_waiting(wl::batch(run.acks.back()));
    ASSERT_TRUE(again) << runtime::describe(again.error());
    EXPECT_EQ(again->accepted, 0u) << "round " << round << ": batch " << run.acks.back()
                                   << " was applied twice";
    for (auto& rej : again->rejected)
      ASSERT_EQ(rej.reason, twins::reject_reason::duplicate_sequence) << rej.message;

    // (a) The batch that may have been in flight: what was stored before the
    // kill comes back as a duplicate, the rest applies now.
    auto in_flight = t.batches;
    auto resend = wl::batch(in_flight);
    auto size = resend.size();
    auto r = node->ingest_waiting(std::move(resend));
    ASSERT_TRUE(r) << runtime::describe(r.error());
    for (auto& rej : r->rejected)
      ASSERT_EQ(rej.reason, twins::reject_reason::duplicate_sequence) << rej.message;
    ASSERT_EQ(r->accepted + r->rejected.size(), size);
    if (!r->rejected.empty() && r->accepted != 0)
      ++partial_batches;
    else if (r->accepted == 0)
      ++stored_unacked;
    t.apply(in_flight);
    std::cout << "round " << round << ": killed " << jitter.count() << " us after ACK " << acks
              << ", " << run.acks.size() << " batches acked (" << from << ".." << run.acks.back()
              << "), in-flight batch " << in_flight << ": " << r->rejected.size()
              << " duplicates, " << r->accepted << " applied now" << std::endl;

    // (b) Every sample of every batch applied so far is stored.
    expect_history(*node, t);
    if (::testing::Test::HasFatalFailure())
      return;
    // ... and in the shard log, once.
    expect_log(*node, t);
    if (::testing::Test::HasFatalFailure())
      return;

    // (c) Rollups are the fold of their children; leaves match the tally.
    std::vector<std::string> problems;
    bool exact = twinrt::testing::eventually([&] {
      problems = rollup_problems(*node, t);
      return problems.empty();
    });
    if (!exact) {
      std::string all;
      for (auto& p : problems)
        all += "\n  " + p;
      FAIL() << "round " << round << ": rollups not exact after "
             << twinrt::testing::patience.count() << " s:" << all;
    }
    node.reset();
  }
  std::cout << "crash_safety: " << acked << " batches acked over " << rounds << " kills, "
            << stored_unacked << " in-flight batches were stored whole but not acked, "
            << partial_batches << " partly stored" << std::endl;
}

} // namespace
