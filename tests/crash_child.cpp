// crash_child DATA_DIR FROM_BATCH
//
// Started and killed (SIGKILL) by crash_safety.test.cpp. Opens a node on
// DATA_DIR, creates the crash workload's tree if it is not there yet, then
// ingests batches FROM_BATCH, FROM_BATCH+1, ... forever, printing
// "ACK <batch>" (flushed) once each batch is acknowledged. Any failure ends
// the process with a message on stderr and a non-zero status, which the test
// reports as such (it expects only its own SIGKILL to end the child).

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "crash_workload.hpp"
#include "twinrt/runtime/node.hpp"

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "crash_child: %s\n", why.c_str());
  std::exit(1);
}

} // namespace

int main(int argc, char** argv) {
  using namespace twinrt;
  if (argc != 3)
    fail("usage: crash_child DATA_DIR FROM_BATCH");
  std::string data_dir = argv[1];
  char* end = nullptr;
  errno = 0;
  unsigned long long from = std::strtoull(argv[2], &end, 10);
  if (errno != 0 || end == argv[2] || *end != '\0')
    fail(std::string("FROM_BATCH '") + argv[2] + "' is not a whole number");

  auto started = runtime::node::start(crash_workload::node_settings(data_dir));
  if (!started)
    fail("node did not start on " + data_dir + ": " + runtime::describe(started.error()));
  auto& node = **started;

  if (node.twins().empty())
    if (auto err = node.create(crash_workload::tree()))
      fail("creating the tree: " + runtime::describe(err));

  for (uint64_t n = from;; ++n) {
    auto b = crash_workload::batch(n);
    auto size = b.size();
    auto r = node.ingest_waiting(std::move(b));
    if (!r)
      fail("batch " + std::to_string(n) + ": " + runtime::describe(r.error()));
    // The test re-sent the batch before FROM_BATCH itself: nothing here may
    // be a duplicate or otherwise refused.
    if (r->accepted != size || !r->rejected.empty())
      fail("batch " + std::to_string(n) + ": " + std::to_string(r->accepted) + " of "
           + std::to_string(size) + " accepted"
           + (r->rejected.empty() ? "" : "; first refusal: " + r->rejected.front().message));
    std::printf("ACK %llu\n", static_cast<unsigned long long>(n));
    std::fflush(stdout);
  }
}
