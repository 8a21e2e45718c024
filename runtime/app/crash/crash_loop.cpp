#include "crash_loop.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "ack_log.hpp"
#include "checks.hpp"
#include "node_client.hpp"
#include "node_process.hpp"

#include "twinrt/twins/clock.hpp"

namespace twinrt::crash_loop {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr const char* source_name = "crash-loop";
// The node's settings that make its phases come often: idle leaf twins leave
// memory 300 ms after their last sample, checked every 100 ms.
constexpr int64_t passivate_after_ms = 300;
constexpr int64_t sweep_interval_ms = 100;
// Deadlines of the waits for a condition: only a broken node reaches them.
constexpr auto patience = std::chrono::seconds(300);
constexpr auto call_timeout = milliseconds(120'000);

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

using twins::wall_ms;

// -- the checker's own tree and models ------------------------------------------

constexpr int plants = 2;
constexpr int lines_per_plant = 2;
constexpr int machines_per_line = 4;
constexpr int warehouses = 3;
constexpr int skus = 3;
const std::string root = "crash";

std::string region_id(int r) {
  return root + "/region-" + std::to_string(r + 1);
}
std::string plant_id(int p) {
  return root + "/plant-" + std::to_string(p + 1);
}
std::string line_id(int p, int l) {
  return plant_id(p) + "/line-" + std::to_string(l + 1);
}
std::string machine_id(int p, int l, int m) {
  return line_id(p, l) + "/machine-" + std::to_string(m + 1);
}
std::string warehouse_id(int w) {
  return root + "/warehouse-" + std::to_string(w + 1);
}
std::string sku_name(int s) {
  return "SKU-" + std::to_string(s + 1);
}

struct twin_def {
  std::string id, kind, parent;
};

/// The whole tree, parents first: an enterprise with two regions (the
/// warehouses move between them) and two plants of lines of machines.
std::vector<twin_def> tree() {
  std::vector<twin_def> out{{root, "enterprise", ""}};
  for (int r = 0; r < 2; ++r)
    out.push_back({region_id(r), "region", root});
  for (int p = 0; p < plants; ++p) {
    out.push_back({plant_id(p), "plant", root});
    for (int l = 0; l < lines_per_plant; ++l) {
      out.push_back({line_id(p, l), "line", plant_id(p)});
      for (int m = 0; m < machines_per_line; ++m)
        out.push_back({machine_id(p, l, m), "machine", line_id(p, l)});
    }
  }
  for (int w = 0; w < warehouses; ++w)
    out.push_back({warehouse_id(w), "warehouse", region_id(w * 2 / warehouses)});
  return out;
}

const std::vector<std::string> model_kinds{"enterprise", "region", "plant",
                                           "line",       "machine", "warehouse"};
const std::vector<std::string> reloaded_kinds{"machine", "warehouse"};

tree_facts facts() {
  // Kinds without channels: their rollup is the fold of their children alone.
  return {root, {"enterprise", "region", "plant", "line"}, "warehouse", {{"receipt", 1}, {"pick", -1}}};
}

/// The model of `kind` at `version`. Every version declares the same
/// channels and rules: a reload changes what is in force, not what the
/// samples mean, so the checks stay the same across versions.
std::string model_text(const std::string& kind, uint32_t version) {
  std::string head = "kind = \"" + kind + "\"\nversion = " + std::to_string(version)
                     + "\ndescription = \"crash loop " + kind + ", version "
                     + std::to_string(version) + "\"\nstale_after_s = 0\n";
  if (kind == "enterprise")
    return head + "parents = []\n";
  if (kind == "region" || kind == "plant")
    return head + "parents = [\"enterprise\"]\n";
  if (kind == "line")
    return head + "parents = [\"plant\"]\n";
  if (kind == "machine")
    return head + R"(parents = ["line"]

[channels.power_kw]
unit = "kW"
type = "gauge"
min = 0.0
max = 1000.0

[channels.vibration_mm_s]
unit = "mm/s"
type = "gauge"
min = 0.0
max = 100.0

[channels.state]
unit = "state"
type = "state"
min = 0
max = 3

[[health]]
channel = "vibration_mm_s"
warning_above = 4.5
alarm_above = 7.1

[energy]
power_channel = "power_kw"

[[counts]]
name = "running"
channel = "state"
equals = 1

[analytics]
degradation_channels = ["vibration_mm_s"]

[[alerts]]
name = "vibration_high"
value = "vibration_mm_s"
above = 7.1
clear_at = 4.5
severity = "critical"
message = "vibration above 7.1 mm/s"
)";
  // warehouse
  return head + R"(parents = ["region"]

[channels.receipt]
unit = "units"
type = "movement"
effect = "in"
min = 0
max = 1000000

[channels.pick]
unit = "units"
type = "movement"
effect = "out"
min = 0
max = 1000000

[low_stock]
SKU-1 = 20

[[alerts]]
name = "low_stock"
value = "low_stock_skus"
above = 0
event = "prediction"
message = "SKUs under their minimum stock"
)";
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string random_secret() {
  std::random_device rd;
  char buf[33];
  for (int i = 0; i < 32; i += 8)
    std::snprintf(buf + i, 9, "%08x", rd());
  return buf;
}

std::string this_executable() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

class crash_loop;

/// A moment of the node's life at which a round kills it. `drive` runs the
/// node into the moment, puts what the round line says about it in `said`,
/// and returns "" (or why it could not); the kill follows at once. A moment
/// `at_startup` is driven right after the process started, before it
/// answers; the others once the checks of the restart passed and the
/// workload ran. Moments with a null `drive` are phases the node does not
/// have yet: listed, never chosen. A new moment is a method and a row of
/// `moments`.
struct moment {
  const char* name;
  int weight;
  std::string (crash_loop::*drive)(std::string& said);
  bool at_startup;
  const char* missing;
};

class crash_loop {
public:
  explicit crash_loop(options o)
    : o_(std::move(o)), rng_(o_.seed), client_(io_, call_timeout) {}

  int run();

  // The moments (public for the table `moments`).
  std::string drive_ingest(std::string& said);
  std::string drive_reparent(std::string& said);
  std::string drive_model_load(std::string& said);
  std::string drive_passivation(std::string& said);
  std::string drive_startup(std::string& said);

private:
  // Set-up and the node's life.
  std::string prepare();
  std::string start_node();
  std::optional<double> wait_ready(std::string& error);
  std::string kill_node();

  // Work the node acknowledges.
  batch next_batch();
  std::string ingest_acked(const batch& b);
  std::string reparent_acked();
  std::string load_model_acked();
  std::string create_tree();
  std::string wait_passivation(int64_t& before, int64_t& after);
  std::string workload(std::string& summary);
  std::pair<std::string, std::string> next_move();
  std::pair<std::string, uint32_t> next_model();
  answer<ingest_answer> ingest_retrying(const batch& b);

  // Checks after a restart.
  std::string resolve_in_flight(findings& f, std::string& summary);
  std::string resend_last_acked(findings& f);
  std::string verify(findings& f, std::string& summary);
  std::string check_restart(findings& f, std::string& said);

  std::string fail_with_log(const std::string& why);
  int summary(int code);

  options o_;
  std::mt19937_64 rng_;
  kj::AsyncIoContext io_ = kj::setupAsyncIo();
  node_client client_;
  fs::path dir_;
  bool made_dir_ = false;
  std::string config_path_, node_log_, address_, write_token_, admin_token_;
  std::unique_ptr<ack_log> log_;
  std::optional<node_process> node_;

  // The workload as the checker knows it.
  bool tree_created_ = false;
  uint64_t next_seq_ = 1;
  int64_t last_ts_ = 0;
  std::map<std::string, std::string> parent_; // warehouse -> parent, as acknowledged
  std::map<std::string, uint32_t> version_;   // kind -> version, as acknowledged
  uint64_t model_loads_ = 0;

  // Sent, not acknowledged when the node died: at most one of each.
  std::optional<batch> in_flight_batch_;
  std::optional<std::pair<std::string, std::string>> in_flight_move_;
  std::optional<std::pair<std::string, uint32_t>> in_flight_model_;

  // Tallies for the summary.
  int round_ = 0;
  int rounds_done_ = 0;
  findings total_;
  std::vector<double> restart_ms_;
  std::map<std::string, int> kills_;
  int batch_stored_ = 0, batch_partly_ = 0, batch_not_stored_ = 0;
  int op_stored_ = 0, op_not_stored_ = 0;
  uint64_t acked_batches_ = 0, acked_samples_ = 0;
  clock_type::time_point began_ = clock_type::now();
};

const moment moments[] = {
  {"ingest", 35, &crash_loop::drive_ingest, false, ""},
  {"reparent", 15, &crash_loop::drive_reparent, false, ""},
  {"model_load", 15, &crash_loop::drive_model_load, false, ""},
  {"passivation", 25, &crash_loop::drive_passivation, false, ""},
  {"startup", 10, &crash_loop::drive_startup, true, ""},
  {"sealing", 0, nullptr, false, "the node does not seal history chunks yet"},
  {"checkpoint", 0, nullptr, false,
   "the node writes a twin's state with every batch and at passivation; no separate checkpoints yet"},
};

// -- set-up --------------------------------------------------------------------

std::string crash_loop::prepare() {
  if (o_.dir.empty()) {
    dir_ = fs::temp_directory_path() / ("twinrt-crash-loop-" + std::to_string(::getpid()));
    made_dir_ = true;
  } else {
    dir_ = o_.dir;
  }
  std::error_code ec;
  if (fs::exists(dir_, ec) && !fs::is_empty(dir_, ec))
    return "work directory " + dir_.string() + " is not empty: give a new one";
  fs::create_directories(dir_ / "models", ec);
  if (ec)
    return "cannot create " + (dir_ / "models").string() + ": " + ec.message();
  for (auto& kind : model_kinds) {
    std::ofstream f(dir_ / "models" / (kind + ".toml"));
    f << model_text(kind, 1);
    if (!f)
      return "cannot write the model files in " + (dir_ / "models").string();
  }
  auto port = free_loopback_port();
  if (port == 0)
    return "no free TCP port on 127.0.0.1";
  address_ = "127.0.0.1:" + std::to_string(port);
  write_token_ = random_secret();
  admin_token_ = random_secret();
  config_path_ = (dir_ / "node.toml").string();
  std::ofstream cfg(config_path_);
  cfg << "# Written by twinrt bench crash.\n[node]\ndata_dir = " << toml_string((dir_ / "data").string())
      << "\nmodels_dir = " << toml_string((dir_ / "models").string())
      << "\nthreads = 2\nshards = 3\n\n[twins]\npassivate_after_ms = " << passivate_after_ms
      << "\nrollup_delay_ms = 20\nsweep_interval_ms = " << sweep_interval_ms
      << "\n\n[storage]\nsync_wal = " << (o_.sync_wal ? "true" : "false")
      << "\nwrite_buffer_mb = 8\nblock_cache_mb = 16\n\n[rpc]\naddress = " << toml_string(address_)
      << "\n\n[[rpc.tokens]]\nname = \"crash-writer\"\nsecret = " << toml_string(write_token_)
      << "\nrole = \"write\"\n\n[[rpc.tokens]]\nname = \"crash-admin\"\nsecret = "
      << toml_string(admin_token_) << "\nrole = \"admin\"\n";
  if (!cfg)
    return "cannot write " + config_path_;
  node_log_ = (dir_ / "node.log").string();
  auto log = ack_log::open((dir_ / "acks.log").string());
  if (!log)
    return log.error;
  log_ = std::move(*log);
  if (o_.node_exe.empty())
    o_.node_exe = this_executable();
  if (o_.node_exe.empty() || ::access(o_.node_exe.c_str(), X_OK) != 0)
    return "cannot run the node binary '" + o_.node_exe + "'";
  return "";
}

std::string crash_loop::fail_with_log(const std::string& why) {
  return why + "; the end of the node's log (" + node_log_ + "):\n" + tail_of(node_log_, 15);
}

std::string crash_loop::start_node() {
  client_.disconnect();
  auto p = node_process::start(o_.node_exe, config_path_, node_log_);
  if (!p)
    return p.error;
  node_ = std::move(*p);
  return "";
}

// Process start -> the first answer of Reader.status, in milliseconds.
std::optional<double> crash_loop::wait_ready(std::string& error) {
  auto deadline = node_->started() + patience;
  std::string last;
  for (;;) {
    if (node_->exited()) {
      error = fail_with_log("the node " + node_->status() + " before it answered");
      return std::nullopt;
    }
    auto c = client_.connect(address_, write_token_, admin_token_);
    if (c) {
      auto s = client_.status();
      if (s)
        return ms_since(node_->started());
      last = s.message;
    } else {
      last = c.message;
      if (c.message.find("permission denied") != std::string::npos) {
        error = "the node refused the login: " + c.message;
        return std::nullopt;
      }
    }
    if (clock_type::now() > deadline) {
      error = fail_with_log("the node did not answer on " + address_ + " within "
                            + std::to_string(patience.count()) + " s (last: " + last + ")");
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

std::string crash_loop::kill_node() {
  client_.disconnect();
  if (node_->exited())
    return fail_with_log("the node " + node_->status() + " by itself before the kill");
  node_->kill();
  if (!node_->killed_by_sigkill())
    return fail_with_log("the node " + node_->status() + ", not by the kill");
  return "";
}

// -- the workload ----------------------------------------------------------------

batch crash_loop::next_batch() {
  batch b;
  int64_t ts = std::max(last_ts_ + 1, wall_ms());
  last_ts_ = ts;
  auto add = [&](const std::string& twin, const std::string& channel, double value) {
    b.push_back({twin, channel, ts, value, source_name, next_seq_++});
  };
  std::uniform_int_distribution<int> percent(0, 99);
  for (int p = 0; p < plants; ++p)
    for (int l = 0; l < lines_per_plant; ++l)
      for (int m = 0; m < machines_per_line; ++m) {
        if (percent(rng_) >= 40)
          continue; // the others go idle, and passivate
        auto id = machine_id(p, l, m);
        // Binary fractions: sums do not depend on the order of additions.
        add(id, "power_kw", 0.5 * std::uniform_int_distribution<int>(0, 200)(rng_));
        int v = percent(rng_);
        add(id, "vibration_mm_s",
            v < 4    ? 8.0   // alarm
            : v < 10 ? 5.0   // warning
                     : 0.25 * std::uniform_int_distribution<int>(4, 16)(rng_));
        add(id, "state", std::uniform_int_distribution<int>(0, 2)(rng_));
      }
  for (int w = 0; w < warehouses; ++w) {
    if (percent(rng_) >= 50)
      continue;
    for (int s = 0; s < skus; ++s) {
      if (percent(rng_) < 60)
        add(warehouse_id(w), "receipt/" + sku_name(s), std::uniform_int_distribution<int>(1, 9)(rng_));
      if (percent(rng_) < 50)
        add(warehouse_id(w), "pick/" + sku_name(s), std::uniform_int_distribution<int>(1, 4)(rng_));
    }
  }
  if (b.empty())
    add(machine_id(0, 0, 0), "power_kw", 1.5);
  return b;
}

answer<ingest_answer> crash_loop::ingest_retrying(const batch& b) {
  for (;;) {
    auto a = client_.ingest(b);
    if (a || a.why != failure::overloaded)
      return a;
    client_.pump(milliseconds(20)); // refused whole: nothing applied; back off
  }
}

std::string crash_loop::ingest_acked(const batch& b) {
  auto a = ingest_retrying(b);
  if (!a)
    return fail_with_log("a batch of " + std::to_string(b.size()) + " samples failed: " + a.message);
  if (a->accepted != b.size() || !a->refused.empty())
    return "the node took " + std::to_string(a->accepted) + " of " + std::to_string(b.size())
           + " samples of a new batch"
           + (a->refused.empty() ? "" : "; first refusal: " + a->refused.front().message);
  if (auto err = log_->append_batch(b); !err.empty())
    return err;
  ++acked_batches_;
  acked_samples_ += b.size();
  return "";
}

std::pair<std::string, std::string> crash_loop::next_move() {
  auto w = warehouse_id(std::uniform_int_distribution<int>(0, warehouses - 1)(rng_));
  auto to = parent_[w] == region_id(0) ? region_id(1) : region_id(0);
  return {w, to};
}

std::pair<std::string, uint32_t> crash_loop::next_model() {
  auto& kind = reloaded_kinds[model_loads_++ % reloaded_kinds.size()];
  return {kind, version_[kind] + 1};
}

std::string crash_loop::reparent_acked() {
  auto [w, to] = next_move();
  auto a = client_.reparent(w, to);
  if (!a)
    return fail_with_log("reparent " + w + " to " + to + " failed: " + a.message);
  if (auto err = log_->append_reparent(w, to); !err.empty())
    return err;
  parent_[w] = to;
  return "";
}

std::string crash_loop::load_model_acked() {
  auto [kind, version] = next_model();
  auto a = client_.load_models({{kind + ".toml", model_text(kind, version)}});
  if (!a)
    return fail_with_log("loading " + kind + " v" + std::to_string(version) + " failed: " + a.message);
  if (!a->empty())
    return "the node refused " + kind + " v" + std::to_string(version) + ": " + a->front();
  if (auto err = log_->append_model(kind, version); !err.empty())
    return err;
  version_[kind] = version;
  return "";
}

std::string crash_loop::create_tree() {
  for (auto& t : tree()) {
    auto a = client_.create(t.id, t.kind, t.parent);
    if (!a)
      return "creating " + t.id + " (" + t.kind + "): " + a.message;
    if (auto err = log_->append_twin(t.id, t.kind, t.parent); !err.empty())
      return err;
    if (t.kind == "warehouse")
      parent_[t.id] = t.parent;
  }
  auto m = client_.models();
  if (!m)
    return "Reader.models: " + m.message;
  for (auto& kind : model_kinds) {
    auto v = m->find(kind);
    if (v == m->end())
      return "the node does not list the model " + kind + " of " + (dir_ / "models").string();
    version_[kind] = v->second;
    if (auto err = log_->append_model(kind, v->second); !err.empty())
      return err;
  }
  tree_created_ = true;
  return "";
}

// Sends one acknowledged batch, then waits, with ingest stopped, until the
// node has fewer twins in memory than right after it: idle leaves are
// passivating. The batch makes sure there are leaves to passivate; should they
// all have gone before the first look (a stalled machine), another batch
// follows after a while, until `patience` runs out.
std::string crash_loop::wait_passivation(int64_t& before, int64_t& after) {
  auto deadline = clock_type::now() + patience;
  auto again_after = milliseconds(20 * (passivate_after_ms + sweep_interval_ms));
  for (;;) {
    if (auto err = ingest_acked(next_batch()); !err.empty())
      return err;
    auto s = client_.status();
    if (!s)
      return fail_with_log("Reader.status: " + s.message);
    before = s->active_twins;
    auto again = clock_type::now() + again_after;
    while (clock_type::now() < again) {
      client_.pump(milliseconds(5));
      s = client_.status();
      if (!s)
        return fail_with_log("Reader.status: " + s.message);
      after = s->active_twins;
      if (after < before)
        return "";
      before = std::max(before, after);
    }
    if (clock_type::now() > deadline)
      return "no twin passivated within " + std::to_string(patience.count()) + " s of idleness ("
             + std::to_string(after) + " active)";
  }
}

// Acknowledged batches, now and then a reparent, a model load or a pause
// until twins passivate, in an order the seed decides.
std::string crash_loop::workload(std::string& summary) {
  int batches = std::uniform_int_distribution<int>(1, std::max(1, o_.max_batches))(rng_);
  int moves = 0, loads = 0, pauses = 0;
  std::uniform_int_distribution<int> percent(0, 99);
  for (int i = 0; i < batches; ++i) {
    if (o_.stop && o_.stop())
      return "";
    int r = percent(rng_);
    if (r < 8) {
      if (auto err = reparent_acked(); !err.empty())
        return err;
      ++moves;
    } else if (r < 12) {
      if (auto err = load_model_acked(); !err.empty())
        return err;
      ++loads;
    } else if (r < 16) {
      int64_t before = 0, after = 0;
      if (auto err = wait_passivation(before, after); !err.empty())
        return err;
      ++pauses;
    }
    if (auto err = ingest_acked(next_batch()); !err.empty())
      return err;
  }
  if (round_ == o_.phantom_round) {
    // Tests the checker: the log says the node acknowledged this batch, the
    // node never saw it. The next check must find every sample of it lost.
    if (auto err = log_->append_batch(next_batch()); !err.empty())
      return err;
  }
  summary = std::to_string(batches) + " batches";
  if (moves > 0)
    summary += ", " + std::to_string(moves) + " reparent" + (moves > 1 ? "s" : "");
  if (loads > 0)
    summary += ", " + std::to_string(loads) + " model load" + (loads > 1 ? "s" : "");
  if (pauses > 0)
    summary += ", " + std::to_string(pauses) + " passivation pause" + (pauses > 1 ? "s" : "");
  if (round_ == o_.phantom_round)
    summary += ", a phantom batch logged as acknowledged, never sent";
  return "";
}

// -- the moments -------------------------------------------------------------------

std::string crash_loop::drive_ingest(std::string& said) {
  auto b = next_batch();
  in_flight_batch_ = b;
  client_.send_ingest(b);
  auto jitter = microseconds(std::uniform_int_distribution<int>(0, 5000)(rng_));
  client_.pump(jitter);
  said = num(static_cast<double>(jitter.count()) / 1000.0) + " ms after sending a batch of "
         + std::to_string(b.size()) + " samples";
  return "";
}

std::string crash_loop::drive_reparent(std::string& said) {
  auto move = next_move();
  in_flight_move_ = move;
  client_.send_reparent(move.first, move.second);
  auto jitter = microseconds(std::uniform_int_distribution<int>(0, 3000)(rng_));
  client_.pump(jitter);
  said = num(static_cast<double>(jitter.count()) / 1000.0) + " ms after sending reparent "
         + move.first + " -> " + move.second;
  return "";
}

std::string crash_loop::drive_model_load(std::string& said) {
  auto m = next_model();
  in_flight_model_ = m;
  client_.send_load_models({{m.first + ".toml", model_text(m.first, m.second)}});
  auto jitter = microseconds(std::uniform_int_distribution<int>(0, 3000)(rng_));
  client_.pump(jitter);
  said = num(static_cast<double>(jitter.count()) / 1000.0) + " ms after sending " + m.first
         + " v" + std::to_string(m.second);
  return "";
}

std::string crash_loop::drive_passivation(std::string& said) {
  int64_t before = 0, after = 0;
  if (auto err = wait_passivation(before, after); !err.empty())
    return err;
  // Shards sweep at their own times: a kill up to a sweep later lands
  // between them, or inside one.
  auto jitter = microseconds(std::uniform_int_distribution<int>(0, sweep_interval_ms * 1000)(rng_));
  client_.pump(jitter);
  said = "active twins " + std::to_string(before) + " -> " + std::to_string(after) + ", killed "
         + num(static_cast<double>(jitter.count()) / 1000.0) + " ms later";
  return "";
}

std::string crash_loop::drive_startup(std::string& said) {
  // Anywhere from the process start to a little past a typical restart.
  double typical = restart_ms_.empty() ? 500.0 : percentile(restart_ms_, 50);
  auto delay = microseconds(
    std::uniform_int_distribution<int64_t>(0, static_cast<int64_t>(typical * 1200))(rng_));
  std::this_thread::sleep_for(delay);
  said = num(static_cast<double>(delay.count()) / 1000.0) + " ms after the process started";
  return "";
}

// -- the checks ------------------------------------------------------------------

// After a restart: what became of the work sent but not acknowledged.
std::string crash_loop::resolve_in_flight(findings& f, std::string& summary) {
  std::vector<std::string> said;
  if (in_flight_model_) {
    auto [kind, version] = *in_flight_model_;
    in_flight_model_.reset();
    auto m = client_.models();
    if (!m)
      return fail_with_log("Reader.models: " + m.message);
    auto in_force = (*m)[kind];
    if (in_force == version) {
      if (auto err = log_->append_model(kind, version); !err.empty())
        return err;
      version_[kind] = version;
      ++op_stored_;
      said.push_back(kind + " v" + std::to_string(version) + " in force");
    } else if (in_force == version_[kind]) {
      ++op_not_stored_;
      said.push_back(kind + " v" + std::to_string(version) + " not taken");
    } else {
      f.note(f.lost_ops, 1,
             kind + " v" + std::to_string(in_force) + " in force after the restart; acknowledged v"
               + std::to_string(version_[kind]) + ", in flight v" + std::to_string(version));
    }
  }
  if (in_flight_move_) {
    auto [w, to] = *in_flight_move_;
    in_flight_move_.reset();
    auto t = client_.get(w);
    if (!t)
      return fail_with_log("Reader.get " + w + ": " + t.message);
    if (t->parent == to) {
      if (auto err = log_->append_reparent(w, to); !err.empty())
        return err;
      parent_[w] = to;
      ++op_stored_;
      said.push_back("reparent stored");
    } else if (t->parent == parent_[w]) {
      ++op_not_stored_;
      said.push_back("reparent not stored");
    } else {
      f.note(f.lost_ops, 1,
             w + " is under " + t->parent + " after the restart; acknowledged under " + parent_[w]
               + ", in flight to " + to);
    }
  }
  // The batch that may have been in flight: what was stored before the kill
  // comes back as a duplicate, the rest is applied now. Either way every
  // sample of it is applied once from here on.
  if (in_flight_batch_) {
    auto b = std::move(*in_flight_batch_);
    in_flight_batch_.reset();
    auto a = ingest_retrying(b);
    if (!a)
      return fail_with_log("sending the batch in flight again: " + a.message);
    for (auto& r : a->refused)
      if (r.reason != "duplicate_sequence")
        return "the batch in flight sent again: refused as " + r.reason + ": " + r.message;
    if (a->accepted + a->refused.size() != b.size())
      return "the batch in flight sent again: " + std::to_string(a->accepted) + " accepted and "
             + std::to_string(a->refused.size()) + " refused of " + std::to_string(b.size());
    if (auto err = log_->append_batch(b); !err.empty())
      return err;
    ++acked_batches_;
    acked_samples_ += b.size();
    auto dup = a->refused.size();
    if (dup == b.size()) {
      ++batch_stored_;
      said.push_back("batch in flight stored");
    } else if (dup == 0) {
      ++batch_not_stored_;
      said.push_back("batch in flight not stored");
    } else {
      ++batch_partly_;
      said.push_back("batch in flight stored in part (" + std::to_string(dup) + " of "
                     + std::to_string(b.size()) + ")");
    }
  }
  for (auto& s : said)
    summary += (summary.empty() ? "" : ", ") + s;
  return "";
}

// The node keeps, per source and channel, the highest sequence applied: the
// last acknowledged batch sent again must be refused sample by sample. Runs
// after the history check, which a resend of a lost batch would blind.
std::string crash_loop::resend_last_acked(findings& f) {
  auto e = ack_log::read(log_->path());
  if (!e)
    return e.error;
  if (e->last_batch.empty())
    return "";
  auto a = ingest_retrying(e->last_batch);
  if (!a)
    return fail_with_log("sending the last acknowledged batch again: " + a.message);
  if (a->accepted > 0)
    f.note(f.duplicated, a->accepted,
           "the last acknowledged batch sent again: " + std::to_string(a->accepted) + " of "
             + std::to_string(e->last_batch.size())
             + " samples applied a second time (the sequence of source " + source_name
             + " went back)");
  for (auto& r : a->refused)
    if (r.reason != "duplicate_sequence")
      return "the last acknowledged batch sent again: refused as " + r.reason + ": " + r.message;
  return "";
}

std::string crash_loop::verify(findings& f, std::string& summary) {
  auto e = ack_log::read(log_->path());
  if (!e)
    return e.error;
  if (auto err = check_history(client_, *e, f); !err.empty())
    return fail_with_log(err);
  // Parents converge once ingest stops: wait for them to be the fold of their
  // children, up to a deadline that only a broken node reaches. What leaves
  // hold is settled once the node acknowledged it.
  auto begin = clock_type::now();
  std::optional<state_problems> found;
  for (;;) {
    auto p = check_state(client_, *e, facts());
    if (!p)
      return fail_with_log(p.error);
    found = std::move(*p);
    if (found->folds.empty() || clock_type::now() - begin > patience)
      break;
    client_.pump(milliseconds(50));
  }
  for (auto* list : {&found->settled, &found->folds})
    for (auto& p : *list)
      f.note(f.*p.counter, 1, p.text);
  summary = std::to_string(e->samples) + " acknowledged samples in history"
            + (f.lost + f.duplicated + f.unexpected == 0 ? " exactly once" : ": PROBLEMS")
            + ", leaves " + (found->settled.empty() ? "exact" : "NOT exact") + ", rollups "
            + (found->folds.empty() ? "exact" : "NOT exact") + " after "
            + num(std::round(ms_since(begin))) + " ms";
  return "";
}

// What a restart must show: the tree on the first start; then what became of
// the work in flight, the log against the node, and the last acknowledged
// batch refused whole when sent again.
std::string crash_loop::check_restart(findings& f, std::string& said) {
  if (!tree_created_) {
    if (auto err = create_tree(); !err.empty())
      return err;
    said = "tree of " + std::to_string(tree().size()) + " twins created";
    return "";
  }
  std::string resolved, verified;
  if (auto err = resolve_in_flight(f, resolved); !err.empty())
    return err;
  if (auto err = verify(f, verified); !err.empty())
    return err;
  if (f.clean())
    if (auto err = resend_last_acked(f); !err.empty())
      return err;
  said = (resolved.empty() ? "" : resolved + "; ") + verified;
  return "";
}

// -- the loop ------------------------------------------------------------------

int crash_loop::summary(int code) {
  // Kept after a problem, for a look; removed after a clean run or a stop.
  bool remove = (code == 0 || code == 130) && made_dir_ && !o_.keep;
  auto& t = total_;
  std::printf("\ntwinrt bench crash: summary\n");
  std::printf("  rounds (kills)                          %d of %d, in %.0f s\n", rounds_done_,
              o_.rounds, ms_since(began_) / 1000.0);
  std::printf("  acknowledged batches                    %llu (%llu samples)\n",
              static_cast<unsigned long long>(acked_batches_),
              static_cast<unsigned long long>(acked_samples_));
  std::printf("  acknowledged samples lost               %llu   (goal 0)\n",
              static_cast<unsigned long long>(t.lost));
  std::printf("  samples stored or applied twice         %llu   (goal 0)\n",
              static_cast<unsigned long long>(t.duplicated));
  std::printf("  history points never sent               %llu   (goal 0)\n",
              static_cast<unsigned long long>(t.unexpected));
  std::printf("  rollup mismatches                       %llu   (goal 0)\n",
              static_cast<unsigned long long>(t.rollup));
  std::printf("  acknowledged reparents/loads lost       %llu   (goal 0)\n",
              static_cast<unsigned long long>(t.lost_ops));
  std::printf("  restart, process start -> first answer  p50 %.0f ms, p99 %.0f ms, max %.0f ms (%zu restarts)\n",
              percentile(restart_ms_, 50), percentile(restart_ms_, 99), percentile(restart_ms_, 100),
              restart_ms_.size());
  std::string by_kind;
  for (auto& m : moments)
    if (m.drive)
      by_kind += std::string(by_kind.empty() ? "" : ", ") + m.name + " " + std::to_string(kills_[m.name]);
  std::printf("  kills by moment                         %s\n", by_kind.c_str());
  std::printf("  batch in flight at the kill             stored %d, in part %d, not stored %d\n",
              batch_stored_, batch_partly_, batch_not_stored_);
  std::printf("  reparent/model load in flight           stored %d, not stored %d\n", op_stored_,
              op_not_stored_);
  for (auto& m : moments)
    if (!m.drive)
      std::printf("  not covered yet: %-22s %s\n", m.name, m.missing);
  std::printf("  work directory                          %s%s\n", dir_.string().c_str(),
              remove ? " (removed)" : " (kept)");
  std::fflush(stdout);
  client_.disconnect();
  if (node_)
    node_->stop(milliseconds(10'000));
  node_.reset();
  log_.reset();
  if (remove) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  return code;
}

int crash_loop::run() {
  if (auto err = prepare(); !err.empty()) {
    std::fprintf(stderr, "twinrt bench crash: %s\n", err.c_str());
    return 2;
  }
  std::printf("twinrt bench crash: %d rounds, seed %llu (--seed repeats the choices), node %s, "
              "work directory %s\n",
              o_.rounds, static_cast<unsigned long long>(o_.seed), o_.node_exe.c_str(),
              dir_.string().c_str());
  std::fflush(stdout);
  int weights = 0;
  for (auto& m : moments)
    weights += m.weight;
  auto fatal = [&](const std::string& why) {
    std::printf("round %d: %s\n", round_, why.c_str());
    return summary(2);
  };

  for (round_ = 1; round_ <= o_.rounds + 1; ++round_) {
    if (o_.stop && o_.stop()) {
      std::printf("stopped\n");
      return summary(130);
    }
    bool last = round_ > o_.rounds; // start once more and check, without a kill
    const moment* m = nullptr;
    // The phantom round needs a workload to log its phantom batch in: a
    // kill at startup runs none, so that round draws again.
    while (!last && (m == nullptr || (round_ == o_.phantom_round && m->at_startup))) {
      int pick = std::uniform_int_distribution<int>(0, weights - 1)(rng_);
      for (auto& c : moments) {
        if (pick < c.weight) {
          m = &c;
          break;
        }
        pick -= c.weight;
      }
    }
    if (auto err = start_node(); !err.empty())
      return fatal(err);
    std::string line = last ? "final check" : "round " + std::to_string(round_) + "/" + std::to_string(o_.rounds);
    if (m && m->at_startup) {
      std::string said;
      if (auto err = (this->*m->drive)(said); !err.empty())
        return fatal(err);
      if (auto err = kill_node(); !err.empty())
        return fatal(err);
      ++kills_[m->name];
      ++rounds_done_;
      std::printf("%s | kill at startup: %s\n", line.c_str(), said.c_str());
      std::fflush(stdout);
      continue;
    }
    std::string error;
    auto ready = wait_ready(error);
    if (!ready)
      return fatal(error);
    restart_ms_.push_back(*ready);
    line += "  restart " + num(std::round(*ready)) + " ms";

    findings f;
    std::string checked;
    if (auto err = check_restart(f, checked); !err.empty())
      return fatal(err);
    line += " | " + checked;
    total_.lost += f.lost;
    total_.duplicated += f.duplicated;
    total_.unexpected += f.unexpected;
    total_.rollup += f.rollup;
    total_.lost_ops += f.lost_ops;
    if (!f.clean()) {
      std::printf("%s\n", line.c_str());
      for (auto& d : f.details)
        std::printf("    %s\n", d.c_str());
      std::printf("  (stopped at the first round with a problem: what the log expects from "
                  "here on would be off)\n");
      return summary(1);
    }
    if (last) {
      std::printf("%s\n", line.c_str());
      break;
    }

    std::string work;
    if (auto err = workload(work); !err.empty())
      return fatal(err);
    if (o_.stop && o_.stop())
      continue; // stops at the top, with the node killed by summary()
    std::string said;
    if (auto err = (this->*m->drive)(said); !err.empty())
      return fatal(err);
    if (auto err = kill_node(); !err.empty())
      return fatal(err);
    ++kills_[m->name];
    ++rounds_done_;
    std::printf("%s | %s | kill at %s: %s\n", line.c_str(), work.c_str(), m->name, said.c_str());
    std::fflush(stdout);
  }
  bool clean = total_.clean();
  return summary(clean ? 0 : 1);
}

} // namespace

int run(const options& given) {
  auto o = given;
  if (o.seed == 0)
    o.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  ::signal(SIGPIPE, SIG_IGN); // a write to a killed node's socket is an error, not a signal
  crash_loop loop(o);
  return loop.run();
}

} // namespace twinrt::crash_loop
