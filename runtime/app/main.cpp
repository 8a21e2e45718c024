// twinrt: one binary for a node, the demo and the benchmarks.

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "crash/crash_loop.hpp"
#include "twinrt/runtime/rpc_security.hpp"

using namespace twinrt;

namespace {

// Flags shared by the commands that run a node. A flag given on the command
// line wins over the config file.
struct node_flags {
  std::string config;
  std::string data_dir, models_dir, metrics_address, rpc_address;
  uint32_t threads = 0, shards = 0;

  void add(CLI::App* cmd, bool with_config) {
    if (with_config)
      cmd->add_option("--config", config, "config file (TOML); see the README");
    cmd->add_option("--data-dir", data_dir, "directory of the node's RocksDB data");
    cmd->add_option("--models-dir", models_dir,
                    "directory of model files (*.toml); default: the built-in models");
    cmd->add_option("--threads", threads, "actor scheduler threads (default 2)");
    cmd->add_option("--shards", shards, "twin shards on this node (default 4)");
    cmd->add_option("--metrics-address", metrics_address,
                    "HOST:PORT to serve Prometheus /metrics on");
    cmd->add_option("--rpc-address", rpc_address,
                    "HOST:PORT to serve the operator API (twinctl) on; port 0 picks one");
  }

  // Returns false (after printing why) when the config file is refused.
  bool apply(runtime::node_config& cfg) const {
    if (!config.empty()) {
      if (auto err = runtime::load_config_file(config, cfg)) {
        std::cerr << "twinrt: " << *err << "\n";
        return false;
      }
    }
    if (!data_dir.empty())
      cfg.data_dir = data_dir;
    if (!models_dir.empty())
      cfg.models_dir = models_dir;
    if (!metrics_address.empty())
      cfg.metrics_address = metrics_address;
    if (!rpc_address.empty())
      cfg.rpc_address = rpc_address;
    if (threads > 0)
      cfg.threads = threads;
    if (shards > 0)
      cfg.shards = shards;
    return true;
  }
};

} // namespace

int main(int argc, char** argv) {
  CLI::App cli{"twinrt: an actor-based digital-twin runtime"};
  cli.require_subcommand(1);

  app::demo_options demo;
  demo.node.data_dir = "twinrt-demo-data";
  demo.node.rpc_address = "127.0.0.1:7800";
  node_flags demo_flags;
  auto demo_cmd = cli.add_subcommand(
    "demo", "run one node with a simulated enterprise and print a live summary");
  demo_flags.add(demo_cmd, true);
  demo_cmd->add_option("--duration", demo.duration_s, "stop after this many seconds (default: Ctrl-C)");
  demo_cmd->add_option("--tick-ms", demo.tick_ms, "simulator tick in milliseconds (default 200)");
  demo_cmd->add_option("--history-hours", demo.history_h,
                       "on a new data directory, first simulate this many hours up to now at "
                       "high speed, so the analytics have history (default 12; 0: none)")
    ->check(CLI::Range(0, 24 * 7));
  demo_cmd->add_option("--seed", demo.seed,
                       "seed of the simulator's random numbers, for a repeatable history "
                       "(default: from the clock)");

  runtime::node_config node_cfg;
  node_flags node_fl;
  double node_duration = 0;
  auto node_cmd = cli.add_subcommand("node", "run a node from a config file");
  node_fl.add(node_cmd, true);
  node_cmd->add_option("--duration", node_duration, "stop after this many seconds (default: Ctrl-C)");

  auto bench_cmd = cli.add_subcommand("bench", "measure the node against raw ceilings");
  bench_cmd->require_subcommand(1);
  app::bench_options bench;
  bench.node.data_dir = "";
  node_flags bench_flags;
  auto ingest_cmd = bench_cmd->add_subcommand(
    "ingest", "ingest through shard -> twin actor -> RocksDB -> rollups, beside raw RocksDB");
  bench_flags.add(ingest_cmd, false);
  ingest_cmd->add_option("--twins", bench.twins, "leaf twins in the generated hierarchy (default 100000)");
  ingest_cmd->add_option("--seconds", bench.seconds, "how long to ingest (default 10)");
  ingest_cmd->add_option("--batch", bench.batch, "samples per batch (default 8000)");
  ingest_cmd->add_option("--producers", bench.producers, "threads sending batches (default 2)");
  ingest_cmd->add_flag("--keep", bench.keep, "keep the data directories afterwards");
  ingest_cmd->add_flag("--metrics", bench.compare_metrics,
                       "run with metrics off, then on (served on --metrics-address or a free "
                       "port, and scraped), and print both figures");
  ingest_cmd->add_option("--rounds", bench.rounds,
                         "with --metrics: off/on pairs to run; medians are reported (default 1)");
  ingest_cmd->add_option("--scrape-interval", bench.scrape_interval_s,
                         "seconds between scrapes of /metrics while metrics are on (default 1)");
  bool no_sync = false;
  ingest_cmd->add_flag("--no-sync", no_sync, "do not fsync the WAL per commit (both sides)");

  app::bench_rpc_options bench_rpc;
  node_flags bench_rpc_flags;
  auto rpc_cmd = bench_cmd->add_subcommand(
    "rpc", "get calls over loopback RPC with 1 and 64 in flight, beside an echo (the ceiling)");
  bench_rpc_flags.add(rpc_cmd, false);
  rpc_cmd->add_option("--seconds", bench_rpc.seconds, "how long each figure is measured (default 3)");

  app::bench_query_options bench_query;
  auto query_cmd = bench_cmd->add_subcommand(
    "query", "the query index on generated machine twins, beside a filter over a plain array (the ceiling)");
  query_cmd->add_option("--twins", bench_query.twins, "machine twins (default 1000000)");
  query_cmd->add_option("--iterations", bench_query.iterations, "runs of each query (default 50)");
  query_cmd->add_option("--seed", bench_query.seed, "the generator's seed (default 1)");

  app::bench_mqtt_options bench_mqtt;
  node_flags bench_mqtt_flags;
  auto mqtt_cmd = bench_cmd->add_subcommand(
    "mqtt", "MQTT JSON through a local Mosquitto, publisher to durable, beside mosquitto_sub alone");
  bench_mqtt_flags.add(mqtt_cmd, false);
  mqtt_cmd->add_option("--messages", bench_mqtt.messages, "messages published (default 100000)")
    ->check(CLI::Range(1, 10'000'000));
  mqtt_cmd->add_option("--machines", bench_mqtt.machines, "machine twins the messages go to (default 1000)")
    ->check(CLI::Range(1, 1'000'000));
  mqtt_cmd->add_option("--samples", bench_mqtt.samples_per_message, "samples per message (default 4)")
    ->check(CLI::Range(1, 64));
  mqtt_cmd->add_option("--inflight", bench_mqtt.inflight,
                       "broker max_inflight_messages per client (default 2000)")
    ->check(CLI::Range(1, 65'000));
  mqtt_cmd->add_option("--batch", bench_mqtt.batch_messages, "messages per node ingest at most (default 2000)")
    ->check(CLI::Range(1, 100'000));
  mqtt_cmd->add_flag("--keep", bench_mqtt.keep, "keep the data directories afterwards");

  app::bench_sparkplug_options bench_spb;
  node_flags bench_spb_flags;
  auto spb_cmd = bench_cmd->add_subcommand(
    "sparkplug", "Sparkplug B DDATA through a local Mosquitto, edge node to durable");
  bench_spb_flags.add(spb_cmd, false);
  spb_cmd->add_option("--messages", bench_spb.messages, "DDATA messages of 4 metrics (default 50000)")
    ->check(CLI::Range(1, 10'000'000));
  spb_cmd->add_option("--devices", bench_spb.devices, "device twins (default 100)")
    ->check(CLI::Range(1, 100'000));
  spb_cmd->add_flag("--keep", bench_spb.keep, "keep the data directories afterwards");

  app::bench_replay_options bench_replay;
  auto bench_replay_cmd = bench_cmd->add_subcommand(
    "replay", "twinrt replay of generated CSV and JSON files into a node of its own over loopback RPC");
  bench_replay_cmd->add_option("--threads", bench_replay.node.threads, "actor scheduler threads (default 2)");
  bench_replay_cmd->add_option("--shards", bench_replay.node.shards, "twin shards on this node (default 4)");
  bench_replay_cmd->add_option("--machines", bench_replay.machines, "machines in the files (default 100)")
    ->check(CLI::Range(1, 100'000));
  bench_replay_cmd->add_option("--samples", bench_replay.samples, "samples per file (default 1000000)")
    ->check(CLI::Range(uint64_t{1'000}, uint64_t{100'000'000}));

  app::bench_chunk_options bench_chunk;
  auto bench_chunk_cmd = bench_cmd->add_subcommand(
    "chunk", "the history chunk codec on demo-like data and counters: bytes per sample "
             "against today's layout, encode and decode rates");
  bench_chunk_cmd->add_option("--points", bench_chunk.points, "points per series at 1 Hz (default 3600)")
    ->check(CLI::Range(1, 10'000'000));
  bench_chunk_cmd->add_option("--chunk", bench_chunk.chunk, "points per sealed chunk (default 120)")
    ->check(CLI::Range(1, 1 << 20));
  bench_chunk_cmd->add_option("--seed", bench_chunk.seed, "seed of the simulated data (default 1)");

  crash_loop::options crash;
  auto crash_cmd = bench_cmd->add_subcommand(
    "crash", "kill -9 a `twinrt node` at random moments, ROUNDS times, and check over RPC, against "
             "a log of its own, that nothing acknowledged was lost or applied twice");
  crash_cmd->add_option("--rounds", crash.rounds, "kills (default 100)")->check(CLI::Range(1, 1'000'000));
  crash_cmd->add_option("--seed", crash.seed,
                        "seed of the random choices (kill moments, workload); default: random, printed");
  crash_cmd->add_option("--twinrt", crash.node_exe,
                        "the twinrt binary run as `twinrt node` (default: this one)");
  crash_cmd->add_option("--dir", crash.dir,
                        "work directory, new or empty: node data, config, models, the log "
                        "(default: a temporary one, removed after a clean run)");
  crash_cmd->add_flag("--keep", crash.keep, "keep the work directory after a clean run");
  crash_cmd->add_option("--max-batches", crash.max_batches,
                        "acknowledged batches per round before the kill, at most (default 40)")
    ->check(CLI::Range(1, 100'000));
  crash_cmd->add_option("--phantom-round", crash.phantom_round,
                        "to test the checker: in round N, log one batch as acknowledged without "
                        "sending it; the next check must report its samples lost (exit status 1)");
  bool crash_no_sync = false;
  crash_cmd->add_flag("--no-sync", crash_no_sync, "run the node with storage.sync_wal = false");

  adapters::replay_options replay;
  if (auto a = std::getenv("TWINRT_ADDRESS"))
    replay.address = a;
  if (auto t = std::getenv("TWINRT_TOKEN"))
    replay.token = t;
  auto replay_cmd = cli.add_subcommand(
    "replay", "backfill history from a sample file (JSON lines or CSV) into a running node");
  replay_cmd->add_option("file", replay.file, "twin,channel,ts,value[,source,seq] per line, or JSON objects")
    ->required();
  replay_cmd->add_option("--connect,--address", replay.address,
                         "node RPC address HOST:PORT (env TWINRT_ADDRESS; default 127.0.0.1:7800)");
  replay_cmd->add_option("--token", replay.token, "a write token of the node (env TWINRT_TOKEN)");
  if (auto ca = std::getenv("TWINRT_CA"))
    replay.transport.ca_file = ca;
  replay_cmd->add_flag("--tls", replay.transport.tls, "connect over TLS (see twinctl --tls)");
  replay_cmd->add_option("--ca", replay.transport.ca_file,
                         "PEM file of the CA(s) that signed the node's certificate (env TWINRT_CA); "
                         "implies --tls");
  replay_cmd->add_option("--tls-name", replay.transport.name,
                         "the name the node's certificate must carry (default: HOST)");
  replay_cmd->add_option("--speed", replay.speed,
                         "replay at this many times real time, spaced by the timestamps "
                         "(default: as fast as possible)")
    ->check(CLI::NonNegativeNumber);
  replay_cmd->add_option("--state", replay.state_path,
                         "progress file (default: FILE.replay-state next to the file)");
  replay_cmd->add_flag("--restart", replay.restart, "ignore the progress file and start at line 1");
  replay_cmd->add_option("--source", replay.source,
                         "source identity of the samples (default: replay:FILE-NAME)");
  replay_cmd->add_option("--batch", replay.batch, "samples per call (default 5000)")
    ->check(CLI::Range(1, 100'000));
  replay_cmd->add_option("--inflight", replay.inflight, "calls in flight (default 4)")
    ->check(CLI::Range(1, 64));

  std::string edge_config;
  double edge_duration = 0, edge_report = 5;
  auto edge_cmd = cli.add_subcommand(
    "edge", "near the machines: local broker -> deadband/downsampling -> durable buffer -> central node");
  edge_cmd->add_option("--config", edge_config, "config file with [mqtt] and [edge] (see the README)")
    ->required();
  edge_cmd->add_option("--duration", edge_duration, "stop after this many seconds (default: Ctrl-C)");
  edge_cmd->add_option("--report-every", edge_report, "seconds between counter lines (default 5)");

  auto token_cmd = cli.add_subcommand("token", "work with the operator API's tokens");
  token_cmd->require_subcommand(1);
  std::string token_secret;
  uint32_t hash_iterations = runtime::default_hash_iterations;
  auto hash_cmd = token_cmd->add_subcommand(
    "hash", "print a salted hash of a token's secret, for `secret_hash` in [[rpc.tokens]]");
  hash_cmd->add_option("--secret", token_secret,
                       "the secret (default: read from the first line of standard input; "
                       "a flag is visible to other users in the process list)");
  hash_cmd->add_option("--iterations", hash_iterations, "PBKDF2 iterations (default 100000)")
    ->check(CLI::Range(runtime::min_hash_iterations, runtime::max_hash_iterations));

  CLI11_PARSE(cli, argc, argv);

  if (*hash_cmd) {
    if (hash_cmd->count("--secret") == 0 && !std::getline(std::cin, token_secret)) {
      std::cerr << "twinrt token hash: no secret on standard input\n";
      return 2;
    }
    if (!token_secret.empty() && token_secret.back() == '\r')
      token_secret.pop_back();
    if (token_secret.empty()) {
      std::cerr << "twinrt token hash: the secret is empty\n";
      return 2;
    }
    auto h = runtime::hash_secret(token_secret, hash_iterations);
    if (h.empty()) {
      std::cerr << "twinrt token hash: no random salt from the system\n";
      return 1;
    }
    std::cout << h << "\n";
    return 0;
  }
  app::install_signal_handlers();
  if (*demo_cmd) {
    if (!demo_flags.apply(demo.node))
      return 2;
    return app::run_demo(demo);
  }
  if (*node_cmd) {
    if (node_fl.config.empty()) {
      std::cerr << "twinrt node: --config FILE is required\n";
      return 2;
    }
    if (!node_fl.apply(node_cfg))
      return 2;
    return app::run_node(node_cfg, node_duration);
  }
  if (*ingest_cmd) {
    if (!bench_flags.apply(bench.node))
      return 2;
    bench.node.sync_wal = !no_sync;
    return app::run_bench_ingest(bench);
  }
  if (*edge_cmd) {
    runtime::node_config cfg;
    if (auto err = runtime::load_config_file(edge_config, cfg)) {
      std::cerr << "twinrt edge: " << *err << "\n";
      return 2;
    }
    return app::run_edge(cfg, edge_duration, edge_report);
  }
  if (*bench_replay_cmd)
    return app::run_bench_replay(bench_replay);
  if (*bench_chunk_cmd)
    return app::run_bench_chunk(bench_chunk);
  if (*replay_cmd) {
    if (replay_cmd->count("--ca") > 0)
      replay.transport.tls = true;
    return app::run_replay(replay);
  }
  if (*mqtt_cmd) {
    if (!bench_mqtt_flags.apply(bench_mqtt.node))
      return 2;
    return app::run_bench_mqtt(bench_mqtt);
  }
  if (*spb_cmd) {
    if (!bench_spb_flags.apply(bench_spb.node))
      return 2;
    return app::run_bench_sparkplug(bench_spb);
  }
  if (*crash_cmd) {
    crash.sync_wal = !crash_no_sync;
    crash.stop = [] { return app::stop_requested(); };
    return crash_loop::run(crash);
  }
  if (*query_cmd)
    return app::run_bench_query(bench_query);
  if (*rpc_cmd) {
    if (!bench_rpc_flags.apply(bench_rpc.node))
      return 2;
    return app::run_bench_rpc(bench_rpc);
  }
  return 2;
}
