// At least once, end to end: a `twinrt node` child process ingests a numbered QoS 1 stream
// from a real Mosquitto (persistence on), is killed with SIGKILL in the middle of it and
// started again. Every message the broker acknowledged to the publisher must be in the
// twin's history, and the stock the messages move must be exact: none applied twice.

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
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

// The port of the first "Prometheus metrics on http://127.0.0.1:PORT/metrics" in `log`, 0 if none.
uint16_t metrics_port(const std::string& log) {
  const std::string mark = "metrics on http://127.0.0.1:";
  auto text = read_file(log);
  auto at = text.find(mark);
  return at == std::string::npos ? 0 : static_cast<uint16_t>(std::atoi(text.c_str() + at + mark.size()));
}

// The value of `series` (written exactly as exposed) on 127.0.0.1:port/metrics; -1 if unknown.
int64_t scraped(uint16_t port, const std::string& series) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  const std::string get = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0
      && ::send(fd, get.data(), get.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(get.size())) {
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
      reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto at = reply.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::atoll(reply.c_str() + at + series.size() + 2);
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
    ASSERT_TRUE(session.wait_connected(patience_ms));
  }
  auto config = (dir.path() / "node.toml").string();
  {
    std::ofstream out(config);
    out << "[node]\ndata_dir = \"" << data_dir << "\"\nthreads = 2\nshards = 2\n"
        << "[storage]\nsync_wal = true\nwrite_buffer_mb = 8\nblock_cache_mb = 16\n"
        << "[metrics]\naddress = \"127.0.0.1:0\"\n"
        << "[mqtt]\nbroker = \"127.0.0.1:" << broker.port() << "\"\nclient_id = \"" << client_id
        << "\"\ndead_letter_topic = \"" << dead_letters << "\"\nbatch_messages = 200\n"
        << "[[mqtt.routes]]\ntopic = \"warehouses/{warehouse}/movements\"\ntwin = \"acme/{warehouse}\"\n";
  }
  auto log = (dir.path() / "node.log").string();
  collector dead(broker.port(), "at-least-once-dead-reader", dead_letters);
  ASSERT_TRUE(dead.client().wait_connected(patience_ms));

  pid_t first = spawn_node(config, log);
  ASSERT_GT(first, 0);
  ASSERT_TRUE(eventually([&] {
    return count_in_file(log, "twinrt mqtt: connected to") >= 1 && metrics_port(log) != 0;
  })) << read_file(log);
  const uint16_t first_metrics = metrics_port(log);

  // The stream: message i moves one unit in at ts = base + i (the timestamp is its identity).
  const int total = 4000, kill_at = 1500;
  const int64_t base = twinrt::twins::wall_ms() - 60'000;
  mqtt::client pub(collector::options(broker.port(), "at-least-once-publisher"));
  pub.start();
  ASSERT_TRUE(pub.wait_connected(patience_ms));
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
        std::this_thread::sleep_for(5ms); // a stream rather than one burst
    }
  };
  // The publisher streams on its own thread: the first part, then (once the node
  // is killed) the rest. The node is killed as soon as it has stored some of
  // the first part, while it works through what the broker queued for it.
  std::mutex gate_mtx;
  std::condition_variable gate;
  bool killed = false;
  std::thread streamer([&] {
    publish_range(0, kill_at);
    {
      std::unique_lock<std::mutex> g(gate_mtx);
      gate.wait(g, [&] { return killed; });
    }
    publish_range(kill_at, total);
  });
  const std::string accepted_series = "twinrt_mqtt_messages_total{result=\"accepted\"}";
  int64_t stored_at_kill = 0;
  bool stored_some = eventually([&] {
    return (stored_at_kill = scraped(first_metrics, accepted_series)) > 0;
  });
  ::kill(first, SIGKILL);
  std::cout << "killed the first node after it had stored " << stored_at_kill << " of "
            << kill_at << " messages published so far" << std::endl;
  int status = 0;
  ::waitpid(first, &status, 0);
  {
    std::lock_guard<std::mutex> g(gate_mtx);
    killed = true;
  }
  gate.notify_all();
  if (!stored_some) {
    streamer.join();
    FAIL() << "the first node stored no message of the stream:\n" << read_file(log);
  }
  ASSERT_TRUE(WIFSIGNALED(status));
  pid_t second = spawn_node(config, log); // the broker kept the rest for the node's session
  ASSERT_GT(second, 0);
  streamer.join();
  ASSERT_TRUE(eventually([&] { return acked_count() == total; })) << acked_count();

  // A malformed last message: when it comes back as a dead letter, the node has read
  // everything before it (one topic, in order).
  pub.publish(topic, "END", 1);
  ASSERT_TRUE(eventually([&] {
    for (auto& m : dead.messages())
      if (m.payload.find("\"payload\":\"END\"") != std::string::npos)
        return true;
    return false;
  })) << read_file(log);
  ::kill(second, SIGTERM); // stopping drains what the adapter queued
  ::waitpid(second, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  pub.stop();

  auto n = start_node(test_config(data_dir));
  ASSERT_TRUE(n);
  auto hist = n->history("acme/warehouse-1", "receipt/SKU-0001", 0, twinrt::twins::wall_ms() + 1);
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
