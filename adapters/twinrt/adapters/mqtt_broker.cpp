#include "twinrt/adapters/mqtt_broker.hpp"

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace twinrt::adapters::mqtt {

uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0
      && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

namespace {

bool accepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

} // namespace

local_broker::local_broker(broker_options opts) : opts_(std::move(opts)) {}

local_broker::~local_broker() { stop(); }

std::string local_broker::log_path() const { return opts_.dir + "/mosquitto.log"; }

std::string local_broker::start() {
  if (pid_ > 0)
    return {};
  if (port_ == 0)
    port_ = free_loopback_port();
  auto conf = opts_.dir + "/mosquitto.conf";
  {
    std::ofstream out(conf);
    out << "listener " << port_ << " 127.0.0.1\n"
        << "allow_anonymous true\n"
        // Run as root, mosquitto would drop to its own user, which cannot write our dir.
        << (::geteuid() == 0 ? "user root\n" : "")
        << "log_dest file " << log_path() << "\n"
        << "max_inflight_messages " << opts_.max_inflight_messages << "\n"
        << "max_queued_messages " << opts_.max_queued_messages << "\n";
    if (opts_.message_size_limit > 0)
      out << "message_size_limit " << opts_.message_size_limit << "\n";
    if (opts_.persistence)
      out << "persistence true\npersistence_location " << opts_.dir << "/\nautosave_interval 1\n";
    if (!out)
      return "cannot write " + conf;
  }
  std::string exe = opts_.executable;
  std::string c = "-c";
  char* argv[] = {exe.data(), c.data(), conf.data(), nullptr};
  if (::posix_spawn(&pid_, exe.c_str(), nullptr, nullptr, argv, environ) != 0) {
    pid_ = -1;
    return "cannot start " + exe;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (accepts(port_))
      return {};
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return exe + " exited at start; see " + log_path();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  return exe + " did not accept connections on port " + std::to_string(port_) + "; see " + log_path();
}

void local_broker::stop() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

} // namespace twinrt::adapters::mqtt
