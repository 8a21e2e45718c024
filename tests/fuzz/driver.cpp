// Runs a fuzz target without libFuzzer: every file of the seed corpus directories (or
// files) given on the command line, in name order, then deterministic mutations of them
// (the same on every run, so a failure reproduces). TWINRT_FUZZ_RUNS sets the number of
// mutations (default 5000; 0 replays the given files only). A crash, an abort, a failed
// check (__builtin_trap) or a sanitizer report fails the test, and the input that did it
// is written to fuzz-crash-input in the working directory, to replay with this binary
// (TWINRT_FUZZ_RUNS=0 fuzz_NAME fuzz-crash-input) or with the libFuzzer build.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define TWINRT_DRIVER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TWINRT_DRIVER_ASAN 1
#endif
#endif
#ifdef TWINRT_DRIVER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// xorshift64*: small, fast and the same everywhere.
struct rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ULL;
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

// Tokens that steer mutations towards the interesting corners of text formats.
const char* const tokens[] = {"{", "}", "[", "]", "\"", ":", ",", "\\", "\\u0000", "\\ud800",
                              "null", "true", "false", "-", "0", "-0", "1e999", "-1e999",
                              "9223372036854775808", "18446744073709551616", "1.5", "\"ts\"",
                              "\"seq\"", "\"timestamp\"", "/", "+", "#", "{x}", "\n", "\xff",
                              "\xc3\x28",
                              // TOML (models, config), predicates, CSV lines
                              "[[", "]]", "=", "\"\"\"", "\'\'\'", "inf", "nan", "-inf", "and ",
                              ">=", "!=", " < ", "\r\n", "1e308", "4294967296"};

std::string mutate(std::string s, rng& r) {
  int steps = 1 + static_cast<int>(r.below(4));
  for (int i = 0; i < steps; ++i) {
    switch (r.below(7)) {
      case 0: // flip a bit
        if (!s.empty())
          s[r.below(s.size())] ^= static_cast<char>(1u << r.below(8));
        break;
      case 1: // a random byte in
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(r.below(s.size() + 1)),
                 static_cast<char>(r.below(256)));
        break;
      case 2: { // cut a range
        if (s.empty())
          break;
        auto at = r.below(s.size());
        s.erase(at, 1 + r.below(std::min<size_t>(16, s.size() - at)));
        break;
      }
      case 3: { // repeat a range
        if (s.empty())
          break;
        auto at = r.below(s.size());
        auto len = 1 + r.below(std::min<size_t>(32, s.size() - at));
        s.insert(at, s.substr(at, len));
        break;
      }
      case 4: // truncate
        s.resize(r.below(s.size() + 1));
        break;
      case 5: { // a token in
        auto& t = tokens[r.below(std::size(tokens))];
        s.insert(r.below(s.size() + 1), t);
        break;
      }
      default: { // a token over a byte
        if (s.empty())
          break;
        auto& t = tokens[r.below(std::size(tokens))];
        s.replace(r.below(s.size()), 1, t);
        break;
      }
    }
  }
  return s;
}

// The input being run, for the fault handlers: written out only when it fails
// (writing every input first costs a file rewrite per run, seconds per target).
const std::string* current = nullptr;

// Async-signal-safe: open, write, close.
void save_current() {
  if (current == nullptr)
    return;
  int fd = ::open("fuzz-crash-input", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return;
  const char* p = current->data();
  size_t left = current->size();
  while (left > 0) {
    auto n = ::write(fd, p, left);
    if (n <= 0)
      break;
    p += n;
    left -= static_cast<size_t>(n);
  }
  ::close(fd);
  static const char note[] = "fuzz driver: the failing input is in fuzz-crash-input\n";
  (void)!::write(2, note, sizeof note - 1);
}

extern "C" void on_fault(int sig) {
  save_current();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void catch_faults() {
  // Under ASan its own SEGV handler reports, then calls the death callback.
  for (int sig : {SIGABRT, SIGILL, SIGTRAP, SIGFPE, SIGBUS
#ifndef TWINRT_DRIVER_ASAN
                  , SIGSEGV
#endif
       })
    std::signal(sig, on_fault);
#ifdef TWINRT_DRIVER_ASAN
  __sanitizer_set_death_callback(save_current);
#endif
}

void run(const std::string& input) {
  current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  current = nullptr;
}

} // namespace

int main(int argc, char** argv) {
  catch_faults();
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::filesystem::is_regular_file(argv[i])) {
      files.emplace_back(argv[i]);
      continue;
    }
    for (auto& e : std::filesystem::recursive_directory_iterator(argv[i]))
      if (e.is_regular_file())
        files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> seeds;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seed inputs in the given corpus directories\n");
    return 2;
  }
  long runs = 5000;
  if (auto env = std::getenv("TWINRT_FUZZ_RUNS"))
    runs = std::atol(env);
  for (auto& s : seeds)
    run(s);
  rng r{0x9E3779B97F4A7C15ULL};
  for (long i = 0; i < runs; ++i)
    run(mutate(seeds[r.below(seeds.size())], r));
  std::printf("%zu seeds and %ld mutations ran without a fault\n", seeds.size(), runs);
  return 0;
}
