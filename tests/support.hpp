#pragma once

// Shared by the integration tests: a temporary data directory and a node
// started on it with test-friendly settings.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "twinrt/runtime/node.hpp"
#include "twinrt/twins/rollup.hpp"

namespace twinrt::testing {

/// A fresh directory under the system temp dir, removed on destruction
/// unless TWINRT_KEEP_TEST_DATA is set.
class temp_dir {
public:
  explicit temp_dir(const std::string& name) {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      path_ = base / ("twinrt-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(i));
      if (std::filesystem::create_directories(path_))
        break;
    }
  }
  ~temp_dir() {
    if (std::getenv("TWINRT_KEEP_TEST_DATA") == nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

private:
  std::filesystem::path path_;
};

/// Settings for tests: small batches in flight, fast rollups and sweeps.
inline runtime::node_config test_config(const std::string& data_dir) {
  runtime::node_config cfg;
  cfg.data_dir = data_dir;
  cfg.threads = 2;
  cfg.shards = 3;
  cfg.rollup_delay_ms = 20;
  cfg.sweep_interval_ms = 100;
  cfg.sync_wal = false; // the OS keeps written data across a process kill
  cfg.write_buffer_mb = 8;
  cfg.block_cache_mb = 16;
  return cfg;
}

/// Starts a node or fails the test with the reason.
inline std::unique_ptr<runtime::node> start_node(const runtime::node_config& cfg) {
  auto n = runtime::node::start(cfg);
  if (!n) {
    ADD_FAILURE() << "node did not start: " << runtime::describe(n.error());
    return nullptr;
  }
  return std::move(*n);
}

/// How long a test waits for something that must happen: long enough that
/// only a broken build gets there, on a loaded 2-core machine and under the
/// sanitizers alike. It is a deadline, never an expected speed; a passing test
/// waits only as long as the condition takes.
inline constexpr std::chrono::seconds patience{120};
inline constexpr int64_t patience_ms = std::chrono::milliseconds(patience).count();

/// Polls `done` until it holds or `timeout` passes; returns its last answer.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = patience) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

/// False under AddressSanitizer, whose quarantine keeps freed memory
/// resident: memory bounds are asserted by the plain build only.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool rss_is_meaningful = false;
#else
inline constexpr bool rss_is_meaningful = true;
#endif

/// Resident memory of this process in KiB (VmRSS), -1 if unknown.
inline int64_t rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      in >> kb;
      return kb;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return -1;
}

/// The fold of the contributions the node reports for the children of `id`
/// (in id order, as a parent folds them). For parents without channels of
/// their own, as in the built-in models, this is what the parent must hold.
inline twins::contribution fold_of_children(runtime::node& n, const std::string& id) {
  twins::contribution c;
  for (auto& m : n.twins())
    if (m.parent == id)
      if (auto child = n.get(m.id))
        twins::fold_into(c, child->state.own);
  return c;
}

} // namespace twinrt::testing
