// twinrt replay: backfills a node's history from a sample file over RPC.

#include <cstdio>
#include <unistd.h>

#include "commands.hpp"

namespace twinrt::app {

int run_replay(adapters::replay_options opts) {
  opts.bar = isatty(STDERR_FILENO) == 1;
  opts.stop = [] { return stop_requested(); };
  auto r = adapters::run_replay(opts, stderr);
  double rate = r.seconds > 0 ? static_cast<double>(r.sent_this_run) / r.seconds : 0;
  std::printf("replay %s: %s after line %llu; %llu accepted, %llu already applied, "
              "%llu rejected, %llu bad lines; this run %llu samples in %.1f s (%.0f samples/s)\n",
              opts.file.c_str(), r.complete ? "complete" : "stopped",
              static_cast<unsigned long long>(r.lines), static_cast<unsigned long long>(r.accepted),
              static_cast<unsigned long long>(r.duplicates),
              static_cast<unsigned long long>(r.rejected),
              static_cast<unsigned long long>(r.bad_lines),
              static_cast<unsigned long long>(r.sent_this_run), r.seconds, rate);
  if (r.overtaken > 0)
    std::printf("replay %s: %llu samples were not applied (overtaken after an overloaded "
                "answer; listed on stderr)\n",
                opts.file.c_str(), static_cast<unsigned long long>(r.overtaken));
  std::fflush(stdout);
  if (!r.error.empty()) {
    std::fprintf(stderr, "twinrt replay: %s\n", r.error.c_str());
    return 3;
  }
  if (!r.complete)
    return 3; // stopped by a signal; the next run continues
  return r.rejected + r.bad_lines + r.overtaken > 0 ? 1 : 0;
}

} // namespace twinrt::app
