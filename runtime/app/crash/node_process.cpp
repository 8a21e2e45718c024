#include "node_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <thread>
#include <vector>

namespace twinrt::crash_loop {

result<node_process> node_process::start(const std::string& exe, const std::string& config,
                                         const std::string& log) {
  // Everything the child needs is prepared before fork: between fork and
  // exec it makes only async-signal-safe calls.
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    return result<node_process>::fail("cannot open " + log + ": " + std::strerror(errno));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<std::string> args{exe, "node", "--config", config};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();

  node_process p;
  p.started_ = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log_fd);
    if (null_fd >= 0)
      ::close(null_fd);
    return result<node_process>::fail(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) // the crash loop died before prctl took effect
      ::_exit(126);
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP})
      ::sigaction(sig, &dfl, nullptr);
    if (null_fd >= 0)
      ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  if (null_fd >= 0)
    ::close(null_fd);
  p.pid_ = pid;
  return {std::move(p), ""};
}

node_process::node_process(node_process&& other) noexcept
  : pid_(other.pid_), reaped_(other.reaped_), wait_status_(other.wait_status_),
    started_(other.started_) {
  other.pid_ = -1;
}

node_process& node_process::operator=(node_process&& other) noexcept {
  if (this != &other) {
    kill();
    pid_ = other.pid_;
    reaped_ = other.reaped_;
    wait_status_ = other.wait_status_;
    started_ = other.started_;
    other.pid_ = -1;
  }
  return *this;
}

node_process::~node_process() {
  kill();
}

void node_process::reap(bool block) {
  if (pid_ < 0 || reaped_)
    return;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == pid_) {
      reaped_ = true;
      wait_status_ = status;
    } else if (r < 0) {
      reaped_ = true; // not our child any more: nothing left to wait for
    }
    return;
  }
}

bool node_process::exited() {
  reap(false);
  return pid_ < 0 || reaped_;
}

std::string node_process::status() {
  if (!exited())
    return "running";
  if (WIFSIGNALED(wait_status_))
    return "killed by signal " + std::to_string(WTERMSIG(wait_status_));
  if (WIFEXITED(wait_status_))
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status_));
  return "ended (wait status " + std::to_string(wait_status_) + ")";
}

bool node_process::killed_by_sigkill() {
  return exited() && WIFSIGNALED(wait_status_) && WTERMSIG(wait_status_) == SIGKILL;
}

void node_process::kill() {
  if (pid_ < 0 || reaped_)
    return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

void node_process::stop(std::chrono::milliseconds grace) {
  if (pid_ < 0 || exited())
    return;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (!exited() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill();
}

uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

std::string tail_of(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(line);
    if (last.size() > lines)
      last.pop_front();
  }
  std::string out;
  for (auto& l : last)
    out += "  " + l + "\n";
  return out;
}

} // namespace twinrt::crash_loop
