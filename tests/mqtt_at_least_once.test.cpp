// At least once, end to end: a `twinrt node` child process ingests a numbered QoS 1 stream
// from a real Mosquitto (persistence on), is killed with SIGKILL in the middle of it and
// started again. Every message the broker acknowledged to the publisher must be in the
// twin's history, and the stock the messages move must be exact: none applied twice.

#include <atomic>
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mqtt_support.hpp"

namespace mqtt = twinrt::adapters::mqtt;
using namespace twinrt::testing;
using namespace std::chrono_literals;

namespace {

const std::string topic = "warehouses/warehouse-1/movements";
const std::string client_id = "twinrt-at-least-once";
const std::string dead_letters = "twinrt/at-least-once/dead";

// `twinrt node --config FILE` with stdout and stderr appended to `log`.
pid_t spawn_node(const std::string& config, const std::string& log) {
  std::string exe = TWINRT_BIN, node = "node", flag = "--config", cfg = config;
  char* argv[] = {exe.data(), node.data(), flag.data(), cfg.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  if (::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ) != 0)
    pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

size_t count_in_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
    ++n;
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST(MqttAtLeastOnce, EveryAcknowledgedMessageSurvivesAKillAndNoneIsAppliedTwice) {
  temp_dir dir{"mqtt-alo"};
  auto broker_dir = dir.path() / "broker";
  auto data_dir = (dir.path() / "data").string();
  std::filesystem::create_directories(broker_dir);
  mqtt::broker_options bo;
  bo.dir = broker_dir.string();
  bo.persistence = true;
  bo.max_inflight_messages = 1000;
  bo.max_queued_messages = 100'000;
  mqtt::local_broker broker(bo);
  auto err = broker.start();
  ASSERT_TRUE(err.empty()) << err;

  {
    auto n = start_node(test_config(data_dir));
    ASSERT_TRUE(n);
    ASSERT_FALSE(n->create(mqtt_plant()));
  }
  {
    // The node's session exists at the broker before the stream starts, so that the broker
    // queues every message for it even while no node is connected.
    auto o = collector::options(broker.port(), client_id);
    o.clean_session = false;
    mqtt::client session(o);
    session.subscribe("warehouses/+/movements", 1);
    session.start();
    ASSERT_TRUE(session.wait_connected(10'000));
  }
  auto config = (dir.path() / "node.toml").string();
  {
    std::ofstream out(config);
    out << "[node]\ndata_dir = \"" << data_dir << "\"\nthreads = 2\nshards = 2\n"
        << "[storage]\nsync_wal = true\nwrite_buffer_mb = 8\nblock_cache_mb = 16\n"
        << "[mqtt]\nbroker = \"127.0.0.1:" << broker.port() << "\"\nclient_id = \"" << client_id
        << "\"\ndead_letter_topic = \"" << dead_letters << "\"\nbatch_messages = 200\n"
        << "[[mqtt.routes]]\ntopic = \"warehouses/{warehouse}/movements\"\ntwin = \"acme/{warehouse}\"\n";
  }
  auto log = (dir.path() / "node.log").string();
  collector dead(broker.port(), "at-least-once-dead-reader", dead_letters);
  ASSERT_TRUE(dead.client().wait_connected(10'000));

  pid_t first = spawn_node(config, log);
  ASSERT_GT(first, 0);
  ASSERT_TRUE(eventually([&] { return count_in_file(log, "twinrt mqtt: connected to") >= 1; }, 20s))
    << read_file(log);

  // The stream: message i moves one unit in at ts = base + i (the timestamp is its identity).
  const int total = 4000, kill_at = 1500;
  const int64_t base = now_ms() - 60'000;
  mqtt::client pub(collector::options(broker.port(), "at-least-once-publisher"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(10'000));
  std::mutex mtx;
  std::set<int> acked;
  auto acked_count = [&] {
    std::lock_guard<std::mutex> g(mtx);
    return static_cast<int>(acked.size());
  };
  auto publish_range = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      pub.publish(topic,
                  "{\"ts\": " + std::to_string(base + i) + ", \"receipt/SKU-0001\": 1}", 1, false,
                  [&, i](bool ok) {
                    if (ok) {
                      std::lock_guard<std::mutex> g(mtx);
                      acked.insert(i);
                    }
                  });
      if (i % 100 == 99)
        std::this_thread::sleep_for(5ms); // a stream (at least 0.2 s), about as fast as the node
    }
  };
  // The publisher streams on its own thread; the node is killed while messages flow.
  std::thread streamer([&] { publish_range(0, total); });
  ASSERT_TRUE(eventually([&] { return acked_count() >= kill_at; }, 20s));
  ::kill(first, SIGKILL);
  int status = 0;
  ::waitpid(first, &status, 0);
  int acked_at_kill = acked_count();
  ASSERT_TRUE(WIFSIGNALED(status));
  pid_t second = spawn_node(config, log); // the broker kept the rest for the node's session
  ASSERT_GT(second, 0);
  streamer.join();
  EXPECT_LT(acked_at_kill, total) << "the kill came after the stream";
  ASSERT_TRUE(eventually([&] { return acked_count() == total; }, 30s)) << acked_count();

  // A malformed last message: when it comes back as a dead letter, the node has read
  // everything before it (one topic, in order).
  pub.publish(topic, "END", 1);
  ASSERT_TRUE(eventually([&] {
    for (auto& m : dead.messages())
      if (m.payload.find("\"payload\":\"END\"") != std::string::npos)
        return true;
    return false;
  }, 60s)) << read_file(log);
  ::kill(second, SIGTERM); // stopping drains what the adapter queued
  ::waitpid(second, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  pub.stop();

  auto n = start_node(test_config(data_dir));
  ASSERT_TRUE(n);
  auto hist = n->history("acme/warehouse-1", "receipt/SKU-0001", 0, now_ms() + 1);
  ASSERT_TRUE(hist);
  std::set<int64_t> seen;
  for (auto& p : *hist)
    seen.insert(p.ts_ms - base);
  for (int i : acked)
    ASSERT_TRUE(seen.count(i)) << "acknowledged message " << i << " is missing";
  EXPECT_EQ(hist->size(), static_cast<size_t>(total));
  EXPECT_EQ(n->get("acme/warehouse-1")->state.stock.at("SKU-0001"), total)
    << "a redelivered message was applied twice";
  ASSERT_TRUE(eventually([&] {
    auto root = n->get("acme")->state.own;
    auto i = root.sums.find("stock/SKU-0001");
    return i != root.sums.end() && i->second == total;
  }));
  EXPECT_EQ(count_in_file(log, "twinrt mqtt: connected to"), 2u);
  // The kill came after the first node had stored part of the stream: the second one
  // stored the rest (and refused as duplicates what the first had stored but not yet
  // acknowledged).
  auto text = read_file(log);
  auto at = text.find("twinrt mqtt: stopped; messages accepted ");
  ASSERT_NE(at, std::string::npos) << text;
  long long second_accepted = std::stoll(text.substr(at + 40));
  EXPECT_GT(second_accepted, 0);
  EXPECT_LT(second_accepted, total) << "the first node stored nothing before the kill";
}
