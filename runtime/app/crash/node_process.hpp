#pragma once

// A `twinrt node --config FILE` child process of the crash loop.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "ack_log.hpp"

namespace twinrt::crash_loop {

/// Owns one child process running `EXE node --config CONFIG`, its output
/// appended to a log file. The child is killed with SIGKILL when this object
/// goes away, and also, through PR_SET_PDEATHSIG, when the process that
/// started it dies in any way: it never outlives the crash loop. It runs in
/// a process group of its own, so a Ctrl-C meant for the crash loop does not
/// reach it directly. Owned and used by one thread.
class node_process {
public:
  /// Starts the child. Fails with the reason when it cannot be started
  /// (fork failed, the log cannot be opened); an executable that cannot run
  /// shows as a child that exited with status 127.
  static result<node_process> start(const std::string& exe, const std::string& config,
                                    const std::string& log);

  node_process(node_process&& other) noexcept;
  node_process& operator=(node_process&& other) noexcept;
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;
  ~node_process();

  pid_t pid() const { return pid_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  /// True once the child has ended (reaped here); `status()` says how.
  bool exited();
  /// "killed by signal 9", "exited with status 1", or "running".
  std::string status();
  /// True when the child ended through SIGKILL.
  bool killed_by_sigkill();

  /// Sends SIGKILL and reaps the child.
  void kill();
  /// Sends SIGTERM and waits up to `grace` for the child to end, then kills it.
  void stop(std::chrono::milliseconds grace);

private:
  node_process() = default;
  void reap(bool block);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
  std::chrono::steady_clock::time_point started_{};
};

/// A TCP port on 127.0.0.1 that nothing listens on right now (the system
/// picks it); 0 when none could be had.
uint16_t free_loopback_port();

/// The last `lines` lines of a text file ("" when it cannot be read).
std::string tail_of(const std::string& path, size_t lines);

} // namespace twinrt::crash_loop
