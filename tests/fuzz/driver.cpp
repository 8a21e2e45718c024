// Runs a fuzz target without libFuzzer: every file of the seed corpus directories given
// on the command line, then deterministic mutations of them (the same on every run, so a
// failure reproduces). TWINRT_FUZZ_RUNS sets the number of mutations (default 5000).
// A crash, an abort or a sanitizer report fails the test; the input is written to
// fuzz-crash-input first so that it can be replayed with the libFuzzer build.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

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
                              "\xc3\x28"};

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

void run(const std::string& input) {
  {
    std::ofstream out("fuzz-crash-input", std::ios::binary | std::ios::trunc);
    out << input;
  }
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i)
    for (auto& e : std::filesystem::recursive_directory_iterator(argv[i]))
      if (e.is_regular_file()) {
        std::ifstream in(e.path(), std::ios::binary);
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
  std::remove("fuzz-crash-input");
  std::printf("%zu seeds and %ld mutations ran without a fault\n", seeds.size(), runs);
  return 0;
}
