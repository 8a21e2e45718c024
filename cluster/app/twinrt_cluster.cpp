// twinrt-cluster: the cluster's coordination in etcd, from the command line.
//   member   join as a node (and run for placer), until SIGTERM/SIGINT
//   status   members, placer and shard map as etcd holds them
//   drain    ask the placer to move every shard away from a node (--undo: stop)
//   bench-cas  compare-and-swap round trips per second against etcd

#include <algorithm>
#include <chrono>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <pthread.h>
#include <unistd.h>

#include "twinrt/cluster/errc.hpp"
#include "twinrt/cluster/membership.hpp"
#include "twinrt/cluster/placer.hpp"
#include "twinrt/cluster/shard_table.hpp"

using namespace twinrt::cluster;

namespace {

int fail(const caf::error& e) {
  std::cerr << "twinrt-cluster: " << describe(e) << "\n";
  return 2;
}

int run_member(const membership::options& mo, bool with_placer, const placer::options& po) {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr); // before any thread starts
  auto m = membership::join(mo);
  if (!m)
    return fail(m.error());
  std::cout << "member " << mo.node << " joined cluster " << mo.cluster << " (lease "
            << (*m)->lease() << ")" << std::endl;
  std::unique_ptr<placer> p;
  if (with_placer) {
    auto started = placer::start(po);
    if (!started)
      return fail(started.error());
    p = std::move(*started);
  }
  int64_t token = 0;
  std::string last;
  timespec tick{0, 100'000'000};
  while (sigtimedwait(&sigs, nullptr, &tick) < 0) {
    if (!(*m)->alive()) {
      std::cout << "member " << mo.node << " lost its lease" << std::endl;
      return 3;
    }
    if (p && p->token() != token) {
      token = p->token();
      std::cout << (token ? "placer elected: " : "placer stepped down: ") << mo.node
                << " (token " << token << ")" << std::endl;
    }
    if (p && p->last_round() != last) {
      last = p->last_round();
      std::cout << "placer round: " << last << std::endl;
    }
  }
  std::cout << "member " << mo.node << " leaves" << std::endl;
  return 0;
}

int run_status(const std::string& endpoint, const std::string& cluster) {
  auto keys = layout::make(cluster);
  if (!keys)
    return fail(keys.error());
  etcd::client etcd(endpoint);
  auto members = list_members(etcd, *keys);
  if (!members)
    return fail(members.error());
  auto held = etcd.get(keys->placer());
  if (!held)
    return fail(held.error());
  auto shards = load_shards(etcd, *keys);
  if (!shards)
    return fail(shards.error());
  auto drains = etcd.get_prefix(keys->drains());
  if (!drains)
    return fail(drains.error());
  std::set<std::string> draining;
  for (auto& kv : drains->kvs)
    draining.insert(kv.key.substr(keys->drains().size()));
  std::map<std::string, size_t> owned;
  int64_t lo = 0, hi = 0;
  for (auto& [s, e] : shards->entries) {
    ++owned[e.owner];
    lo = lo == 0 ? e.epoch : std::min(lo, e.epoch);
    hi = std::max(hi, e.epoch);
  }
  std::cout << "cluster " << cluster << " at revision " << shards->revision << "\n";
  std::cout << "placer: "
            << (held->kvs.empty() ? std::string{"none"}
                                  : held->kvs[0].value + " (token "
                                      + std::to_string(held->kvs[0].create_revision) + ")")
            << "\n";
  std::cout << "members: " << members->size() << "\n";
  for (auto& m : *members)
    std::cout << "  " << m.node << "  shards " << owned[m.node] << "  joined at revision "
              << m.joined_revision << (m.address.empty() ? "" : "  address " + m.address)
              << (draining.count(m.node) ? "  DRAINING" : "") << "\n";
  for (auto& [owner, n] : owned)
    if (std::none_of(members->begin(), members->end(), [&](auto& m) { return m.node == owner; }))
      std::cout << "  " << owner << "  shards " << n << "  NOT LIVE\n";
  std::cout << "shard map: " << shards->entries.size() << " entries, epochs " << lo << " .. " << hi
            << "\n";
  return 0;
}

// `clients` threads, each with its own connection and its own shard entry,
// each doing `count` compare-and-swaps one after another.
int run_drain(const std::string& endpoint, const std::string& cluster, const std::string& node,
              bool undo) {
  auto keys = layout::make(cluster);
  if (!keys)
    return fail(keys.error());
  etcd::client etcd(endpoint);
  if (auto ok = drain(etcd, *keys, node, !undo); !ok)
    return fail(ok.error());
  std::cout << (undo ? "node " + node + " no longer drains" : "node " + node + " drains: the placer moves its shards away")
            << "\n";
  return 0;
}

int run_bench(const std::string& endpoint, int count, int clients) {
  auto keys = layout::make("bench-" + std::to_string(::getpid()));
  if (!keys)
    return fail(keys.error());
  std::vector<std::vector<double>> ms(static_cast<size_t>(clients));
  std::vector<caf::error> errors(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      etcd::client etcd(endpoint);
      shard_entry e;
      e.owner = "bench";
      auto shard = static_cast<uint32_t>(c);
      auto epoch = cas_shard(etcd, *keys, shard, e, 0);
      for (int i = 0; epoch && i < count; ++i) {
        e.owner = "bench-" + std::to_string(i % 4);
        auto t0 = std::chrono::steady_clock::now();
        epoch = cas_shard(etcd, *keys, shard, e, *epoch);
        ms[c].push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      if (!epoch)
        errors[c] = epoch.error();
      else if (cas_shard(etcd, *keys, shard, e, *epoch - 1)) // a stale epoch must be refused
        errors[c] = make_error(errc::conflict, "a stale epoch was accepted");
    });
  for (auto& t : threads)
    t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  etcd::client cleanup(endpoint);
  cleanup.del_prefix(keys->root());
  for (auto& e : errors)
    if (e)
      return fail(e);
  std::vector<double> all;
  for (auto& m : ms)
    all.insert(all.end(), m.begin(), m.end());
  std::sort(all.begin(), all.end());
  std::printf("bench cas: %d clients x %d compare-and-swaps in %.2f s: %.0f/s, p50 %.2f ms, "
              "p99 %.2f ms (each client its own key; stale epochs refused)\n",
              clients, count, secs, all.size() / secs, all[all.size() / 2],
              all[all.size() * 99 / 100]);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App cli{"twinrt-cluster: the cluster's coordination in etcd"};
  cli.require_subcommand(1);
  std::string endpoint = "http://127.0.0.1:2379", cluster = "twinrt";
  membership::options mo;
  placer::options po;
  bool with_placer = false;
  int count = 2000, clients = 1;

  auto* member = cli.add_subcommand("member", "join as a node until SIGTERM/SIGINT");
  auto* status = cli.add_subcommand("status", "members, placer and shard map");
  auto* drainer = cli.add_subcommand("drain", "move every shard away from a node (--undo: stop)");
  auto* bench = cli.add_subcommand("bench-cas", "compare-and-swap round trips per second");
  for (auto* c : {member, status, drainer, bench})
    c->add_option("--etcd", endpoint, "etcd client URL")->capture_default_str();
  for (auto* c : {member, status, drainer})
    c->add_option("--cluster", cluster, "cluster name")->capture_default_str();
  for (auto* c : {member, drainer})
    c->add_option("--node", mo.node, "node id")->required();
  bool undo = false;
  drainer->add_flag("--undo", undo, "withdraw the drain");
  member->add_option("--address", mo.address, "where peers reach this node");
  member->add_option("--ttl", mo.ttl_s, "lease TTL in seconds")->capture_default_str()
    ->check(CLI::Range(1, 600));
  member->add_flag("--placer", with_placer, "run for placer");
  member->add_option("--shards", po.shard_count, "virtual shards")->capture_default_str()
    ->check(CLI::Range(1, 65536));
  member->add_option("--max-moves", po.max_moves, "shards moved per placement round")
    ->capture_default_str();
  bench->add_option("--count", count, "round trips per client")->capture_default_str()
    ->check(CLI::Range(1, 10'000'000));
  bench->add_option("--clients", clients, "clients in parallel")->capture_default_str()
    ->check(CLI::Range(1, 256));
  CLI11_PARSE(cli, argc, argv);

  if (member->parsed()) {
    mo.endpoint = po.endpoint = endpoint;
    mo.cluster = po.cluster = cluster;
    po.node = mo.node;
    po.ttl_s = mo.ttl_s;
    return run_member(mo, with_placer, po);
  }
  if (status->parsed())
    return run_status(endpoint, cluster);
  if (drainer->parsed())
    return run_drain(endpoint, cluster, mo.node, undo);
  return run_bench(endpoint, count, clients);
}
