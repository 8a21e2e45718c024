#pragma once

// For the cluster's tests: a real etcd on free loopback ports with a
// temporary data directory, and child processes (etcd, twinrt-cluster
// member) that die with the test: each child gets SIGKILL when the test
// process ends, however it ends (PR_SET_PDEATHSIG), and the destructor kills it.

#include <chrono>
#include <csignal>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support.hpp"
#include "twinrt/cluster/etcd_client.hpp"

namespace twinrt::cluster::testing {

using twinrt::testing::eventually;
using twinrt::testing::temp_dir;

/// A program running as a child of the test, its output in `log`.
class child_process {
public:
  child_process(std::vector<std::string> args, std::string log) : log_(std::move(log)) {
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) { // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~child_process() { kill(SIGKILL); }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  /// Sends `sig` and, for SIGKILL/SIGTERM, reaps the child.
  void kill(int sig) {
    if (pid_ <= 0)
      return;
    ::kill(pid_, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  /// Waits for the child to end; its exit code (128 + signal when killed).
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  /// What the child wrote so far.
  std::string output() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

private:
  std::string log_;
  pid_t pid_ = -1;
};

/// Two free loopback ports, found by binding port 0 (both held until chosen).
inline std::pair<uint16_t, uint16_t> free_ports() {
  int fds[2];
  uint16_t ports[2];
  for (int i = 0; i < 2; ++i) {
    fds[i] = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fds[i], reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fds[i], reinterpret_cast<sockaddr*>(&a), &len);
    ports[i] = ntohs(a.sin_port);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return {ports[0], ports[1]};
}

/// A TCP proxy on a free loopback port to `upstream_port`, which the test can
/// cut: cut() closes every open connection; while closed(true), it closes
/// each new one at once. What a network partition between one client and
/// etcd looks like to that client.
class tcp_proxy {
public:
  explicit tcp_proxy(uint16_t upstream_port) : upstream_(upstream_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(listener_, 16);
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~tcp_proxy() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    accepter_.join();
    cut();
    for (auto& t : pumps_)
      t.join();
    for (int fd : open_)
      ::close(fd);
    ::close(listener_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void closed(bool yes) { closed_ = yes; }
  void cut() {
    std::lock_guard<std::mutex> g(mtx_);
    for (int fd : open_)
      ::shutdown(fd, SHUT_RDWR);
  }

private:
  void accept_loop() {
    while (!stop_) {
      int in = ::accept(listener_, nullptr, nullptr);
      if (in < 0)
        return;
      if (closed_) {
        ::close(in);
        continue;
      }
      int out = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(upstream_);
      if (::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(in);
        ::close(out);
        continue;
      }
      std::lock_guard<std::mutex> g(mtx_);
      open_.push_back(in);
      open_.push_back(out);
      pumps_.emplace_back([in, out] { pump(in, out); });
    }
  }
  static void pump(int a, int b) { // both directions until either side ends
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    for (;;) {
      if (::poll(fds, 2, -1) < 0)
        break;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i)
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          auto n = ::read(fds[i].fd, buf, sizeof buf);
          done = n <= 0 || ::write(fds[1 - i].fd, buf, static_cast<size_t>(n)) != n;
        }
      if (done)
        break;
    }
    ::shutdown(a, SHUT_RDWR);
    ::shutdown(b, SHUT_RDWR);
  }

  uint16_t upstream_, port_ = 0;
  int listener_ = -1;
  std::atomic<bool> stop_{false}, closed_{false};
  std::mutex mtx_;
  std::vector<int> open_; // closed when the proxy ends
  std::vector<std::thread> pumps_;
  std::thread accepter_;
};

/// A single-member etcd on 127.0.0.1, answering when the constructor returns.
class etcd_process {
public:
  etcd_process() : dir_("etcd") {
    auto [client, peer] = free_ports();
    client_url_ = "http://127.0.0.1:" + std::to_string(client);
    peer_url_ = "http://127.0.0.1:" + std::to_string(peer);
    start();
  }

  const std::string& endpoint() const { return client_url_; }
  uint16_t client_port() const { return static_cast<uint16_t>(std::stoi(client_url_.substr(17))); }
  std::string log() const { return proc_ ? proc_->output() : std::string{}; }

  void start() {
    auto d = dir_.path().string();
    proc_ = std::make_unique<child_process>(
      std::vector<std::string>{TWINRT_ETCD, "--name", "test", "--data-dir", d + "/data",
                               "--listen-client-urls", client_url_, "--advertise-client-urls",
                               client_url_, "--listen-peer-urls", peer_url_,
                               "--initial-advertise-peer-urls", peer_url_, "--initial-cluster",
                               "test=" + peer_url_, "--log-level", "warn"},
      d + "/etcd.log");
    etcd::client c(client_url_, std::chrono::milliseconds{500});
    ASSERT_TRUE(eventually([&] { return c.get("ready?").engaged(); }))
      << "etcd did not answer on " << client_url_ << ":\n" << log();
  }
  /// kill -9, as a crash would.
  void stop() { proc_.reset(); }
  void restart() {
    stop();
    start();
  }

private:
  temp_dir dir_;
  std::string client_url_, peer_url_;
  std::unique_ptr<child_process> proc_;
};

/// A test suite sharing one etcd (started before its first test, killed
/// after its last) and a client of it.
class with_etcd : public ::testing::Test {
protected:
  static void SetUpTestSuite() { server = new etcd_process(); }
  static void TearDownTestSuite() {
    delete server;
    server = nullptr;
  }
  static inline etcd_process* server = nullptr;
  etcd::client etcd{server->endpoint()};
};

/// `twinrt-cluster member ...` as a child process.
inline std::unique_ptr<child_process> start_member(const std::string& endpoint,
                                                   const std::string& cluster,
                                                   const std::string& node,
                                                   std::vector<std::string> extra,
                                                   const std::string& log) {
  std::vector<std::string> args{TWINRT_CLUSTER_TOOL, "member", "--etcd", endpoint,
                                "--cluster", cluster, "--node", node};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<child_process>(args, log);
}

} // namespace twinrt::cluster::testing
