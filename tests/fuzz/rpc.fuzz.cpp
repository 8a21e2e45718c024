// Fuzz target for the operator API (schemas/rpc.capnp) of a live node: one
// node per process, with its RPC server on 127.0.0.1 and a RocksDB in a
// temporary directory, and one client connection that stays up. The first
// input byte picks the mode:
//   even: structure-aware. The rest of the input drives up to 8 calls that are
//         well-typed but random: any method of Gateway, Reader, Writer, Admin
//         and Subscription, with ids, channels, kinds, predicates and page
//         tokens from a dictionary or from raw input bytes (NUL bytes, 1 MB
//         names), negative and extreme numbers, lists of up to 100,001 samples,
//         unknown enum values, every token's session.
//   odd:  raw bytes. The rest of the input is written to a new TCP connection,
//         which is then half-closed; the server must close it in turn.
// After each input the server must still answer an echo on the first
// connection, and each call must be answered (a result or an error) within
// 60 s. Page tokens are fuzzed here, through Query.pageToken: their parser is
// inside the RPC server's query code.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <capnp/ez-rpc.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include "rpc.capnp.h"
#include "twinrt/runtime/node.hpp"
#include "twinrt/schemas/builtin_models.hpp"
#include "twinrt/twins/clock.hpp"

using namespace twinrt;

namespace {

// -- the input as a source of choices -----------------------------------------------

class choices {
public:
  choices(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  uint8_t u8() { return empty() ? 0 : *p_++; }
  template <class T>
  T raw() {
    T v{};
    size_t n = std::min<size_t>(sizeof(T), static_cast<size_t>(end_ - p_));
    std::memcpy(&v, p_, n);
    p_ += n;
    return v;
  }
  size_t below(size_t n) { return n == 0 ? 0 : raw<uint16_t>() % n; }
  // Up to `n` raw input bytes.
  std::string bytes(size_t n) {
    n = std::min<size_t>(n, static_cast<size_t>(end_ - p_));
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  template <class T, size_t N>
  const T& pick(const T (&from)[N]) {
    return from[below(N)];
  }

private:
  const uint8_t* p_;
  const uint8_t* end_;
};

const char* const ids[] = {"acme",
                           "acme/plant-1",
                           "acme/plant-1/line-1",
                           "acme/plant-1/line-1/press-1",
                           "acme/plant-1/line-1/press-2",
                           "acme/plant-1/line-1/press-3",
                           "acme/plant-2",
                           "acme/warehouse-1",
                           "acme/plant-1/line-1/press-9",
                           "acme/plant-1/line-1/fz-1",
                           "",
                           "acme/../acme",
                           "acme//plant-1",
                           "/",
                           "acme/plant-1/line-1/press-1/x"};
const char* const channels[] = {"power_kw",      "vibration_mm_s", "temperature_c", "state",
                                "parts_total",   "receipt/SKU-1",  "pick/SKU-1",    "adjust/SKU-1",
                                "$offline",      "nope",           "",              "receipt/",
                                "receipt/a/b/c", "count/running"};
const char* const kinds[] = {"machine", "line",  "plant", "enterprise", "warehouse",
                             "vehicle", "depot", "fleet", "nope",       ""};
const char* const predicates[] = {"",
                                  "vibration_mm_s > 4.5",
                                  "score < 80 and power_kw >= 0",
                                  "rul_hours <= 72 && stock/SKU-1 != 3",
                                  "x >",
                                  "health == 2 AND energy_kwh > -1e308",
                                  "a = nan",
                                  "power_kw > 1e999"};
const char* const sort_keys[] = {"", "id", "score", "power_kw", "rul_hours", "stock/SKU-1", "nope"};
const char* const numbers[] = {"1", "-1e308", "nan", "inf", "1e999", "0x10", "", "4.5", "-0"};
const char* const secrets[] = {"fz-admin-secret", "fz-writer-secret", "fz-reader-secret",
                               "fz-scoped-secret", "", "wrong"};

const runtime::node_config::token tokens[] = {
  {"fz-admin", "fz-admin-secret", "admin", ""},
  {"fz-writer", "fz-writer-secret", "write", ""},
  {"fz-reader", "fz-reader-secret", "read", ""},
  {"fz-scoped", "fz-scoped-secret", "write", "acme/plant-1"}};

// A text: from `dict` mostly, else raw input bytes (NUL bytes and all), a
// dictionary word with raw bytes after it, or a very long one.
template <size_t N>
std::string text(choices& in, const char* const (&dict)[N]) {
  switch (in.below(10)) {
    case 0:
      return in.bytes(in.u8());
    case 1:
      return std::string(in.pick(dict)) + in.bytes(in.u8() % 8);
    case 2:
      if (in.u8() == 0xff) // rarely: a megabyte
        return std::string(1 << 20, 'a');
      return std::string(in.u8() * 8u, 'x');
    default:
      return in.pick(dict);
  }
}

std::string page_token(choices& in) {
  switch (in.below(6)) {
    case 0:
      return "i:" + text(in, ids);
    case 1:
      return "n:" + text(in, ids);
    case 2:
    case 3:
      return "v:" + text(in, numbers) + ":" + text(in, ids);
    case 4:
      return "";
    default:
      return in.bytes(in.u8());
  }
}

int64_t time_ms(choices& in, int64_t now) {
  static const int64_t extremes[] = {std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max(), 0, -1, 1,
                                     std::numeric_limits<int64_t>::max() - 1};
  switch (in.below(4)) {
    case 0:
      return in.pick(extremes);
    case 1:
      return in.raw<int64_t>();
    default:
      return now - static_cast<int64_t>(in.raw<uint16_t>()) * 1000;
  }
}

double value(choices& in) {
  static const double special[] = {0,
                                   1.5,
                                   4.5,
                                   -1,
                                   1e308,
                                   -1e308,
                                   std::numeric_limits<double>::quiet_NaN(),
                                   std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity(),
                                   std::numeric_limits<double>::denorm_min()};
  return in.below(3) == 0 ? in.raw<double>() : in.pick(special);
}

uint32_t count(choices& in) {
  static const uint32_t special[] = {0, 1, 2, 1000, 1001, 10'000, 10'001, 4'294'967'295u};
  return in.below(2) == 0 ? in.pick(special) : in.raw<uint32_t>();
}

std::string model_text(choices& in) {
  auto& all = schemas::builtin_models();
  std::string t = all[in.below(all.size())].text;
  // Another version, or another kind's name: taken, refused or ignored.
  if (auto at = t.find("version = "); at != std::string::npos && in.below(2) == 0)
    t.replace(at, t.find('\n', at) - at, "version = " + std::to_string(in.raw<uint32_t>()));
  if (in.below(4) == 0)
    t.insert(in.below(t.size() + 1), in.bytes(in.u8() % 16));
  return t;
}

using twinrt::twins::wall_ms;

// Text with every byte, NULs included (a std::string would convert through c_str()).
capnp::Text::Reader as_text(const std::string& s) {
  return {s.c_str(), s.size()};
}

class quiet_watcher final : public rpc::Watcher::Server {
  kj::Promise<void> update(UpdateContext) override { return kj::READY_NOW; }
  kj::Promise<void> done(DoneContext) override { return kj::READY_NOW; }
};

// -- the node and the client ----------------------------------------------------------

struct session {
  rpc::Reader::Client reader = nullptr;
  rpc::Writer::Client writer = nullptr;
  rpc::Admin::Client admin = nullptr;
};

struct fixture {
  std::filesystem::path dir;
  std::unique_ptr<runtime::node> node;
  std::string host;
  unsigned port = 0;
  std::unique_ptr<capnp::EzRpcClient> client; // destroyed before the node
  std::vector<session> sessions;               // one per token
  uint64_t echoes = 0;
  uint64_t calls = 0, failed = 0, raw_connections = 0;

  fixture() {
    dir = std::filesystem::temp_directory_path()
          / ("twinrt-fuzz-rpc-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    runtime::node_config cfg;
    cfg.data_dir = dir.string();
    cfg.threads = 2;
    cfg.shards = 2;
    cfg.rollup_delay_ms = 20;
    cfg.sweep_interval_ms = 100;
    cfg.sync_wal = false;
    cfg.write_buffer_mb = 8;
    cfg.block_cache_mb = 8;
    cfg.rpc_address = "127.0.0.1:0";
    cfg.rpc_tokens.assign(std::begin(tokens), std::end(tokens));
    auto n = runtime::node::start(cfg);
    if (!n) {
      std::fprintf(stderr, "fuzz_rpc: the node did not start: %s\n",
                   runtime::describe(n.error()).c_str());
      std::abort();
    }
    node = std::move(*n);
    if (auto err = node->create({{"acme", "enterprise", ""},
                                 {"acme/plant-1", "plant", "acme"},
                                 {"acme/plant-1/line-1", "line", "acme/plant-1"},
                                 {"acme/plant-1/line-1/press-1", "machine", "acme/plant-1/line-1"},
                                 {"acme/plant-1/line-1/press-2", "machine", "acme/plant-1/line-1"},
                                 {"acme/plant-1/line-1/press-3", "machine", "acme/plant-1/line-1"},
                                 {"acme/plant-2", "plant", "acme"},
                                 {"acme/warehouse-1", "warehouse", "acme"}})) {
      std::fprintf(stderr, "fuzz_rpc: %s\n", runtime::describe(err).c_str());
      std::abort();
    }
    auto address = node->rpc_address();
    auto colon = address.rfind(':');
    host = address.substr(0, colon);
    port = static_cast<unsigned>(std::stoul(address.substr(colon + 1)));
    client = std::make_unique<capnp::EzRpcClient>(host, port);
    for (auto& t : tokens) {
      auto req = client->getMain<rpc::Gateway>().loginRequest();
      req.setToken(as_text(t.secret));
      auto reply = req.send().wait(ws());
      auto s = reply.getSession();
      sessions.push_back({s.getReader(), s.getWriter(), s.getAdmin()});
    }
  }

  ~fixture() {
    std::fprintf(stderr, "fuzz_rpc: %llu calls (%llu answered with an error), %llu raw connections\n",
                 static_cast<unsigned long long>(calls), static_cast<unsigned long long>(failed),
                 static_cast<unsigned long long>(raw_connections));
    sessions.clear();
    client.reset();
    node.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  kj::WaitScope& ws() { return client->getWaitScope(); }
  kj::Timer& timer() { return client->getIoProvider().getTimer(); }

  // Waits for an answer (a result or an error) to `call`; none within 60 s
  // is a finding.
  void answered(kj::Promise<void> call, const char* what) {
    ++calls;
    auto done = call.then([] { return true; },
                          [this](kj::Exception&&) {
                            ++failed;
                            return true;
                          })
                  .exclusiveJoin(timer().afterDelay(60 * kj::SECONDS).then([] { return false; }));
    if (!done.wait(ws())) {
      std::fprintf(stderr, "fuzz_rpc: %s was not answered within 60 s\n", what);
      __builtin_trap();
    }
  }

  void still_serving() {
    auto req = sessions[2].reader.echoRequest();
    req.setValue(++echoes);
    auto reply = req.send()
                   .then([](auto&& r) { return r.getValue(); },
                         [](kj::Exception&& e) {
                           std::fprintf(stderr, "fuzz_rpc: echo failed: %s\n",
                                        e.getDescription().cStr());
                           return uint64_t{0};
                         })
                   .exclusiveJoin(timer().afterDelay(60 * kj::SECONDS).then([] {
                     std::fprintf(stderr, "fuzz_rpc: no echo within 60 s\n");
                     return uint64_t{0};
                   }))
                   .wait(ws());
    if (reply != echoes)
      __builtin_trap();
  }

  // -- structure-aware calls ------------------------------------------------------------

  void call(choices& in) {
    auto& s = sessions[in.below(sessions.size())];
    auto now = wall_ms();
    switch (in.below(15)) {
      case 0: {
        auto req = client->getMain<rpc::Gateway>().loginRequest();
        req.setToken(as_text(text(in, secrets)));
        return answered(req.send().ignoreResult(), "login");
      }
      case 1: {
        auto req = s.reader.getRequest();
        req.setId(as_text(text(in, ids)));
        return answered(req.send().ignoreResult(), "get");
      }
      case 2: {
        auto req = s.reader.queryRequest();
        auto q = req.initQuery();
        q.setSubtree(as_text(text(in, ids)));
        q.setKind(as_text(text(in, kinds)));
        auto health = q.initHealth(in.below(6));
        for (unsigned i = 0; i < health.size(); ++i)
          health.set(i, static_cast<rpc::Health>(in.below(3) == 0 ? in.raw<uint16_t>()
                                                                  : in.below(4)));
        q.setWhere(as_text(text(in, predicates)));
        q.setSortBy(as_text(text(in, sort_keys)));
        q.setDescending(in.u8() & 1);
        q.setLimit(count(in));
        q.setPageToken(as_text(page_token(in)));
        return answered(req.send().ignoreResult(), "query");
      }
      case 3: {
        auto req = s.reader.historyRequest();
        req.setId(as_text(text(in, ids)));
        req.setChannel(as_text(text(in, channels)));
        req.setFromMs(time_ms(in, now));
        req.setToMs(in.below(3) == 0 ? 0 : time_ms(in, now));
        req.setStepMs(in.below(2) == 0 ? 0 : time_ms(in, 60'000));
        req.setLimit(count(in));
        return answered(req.send().ignoreResult(), "history");
      }
      case 4: {
        auto req = s.reader.watchRequest();
        req.setSubtree(as_text(text(in, ids)));
        req.setWatcher(kj::heap<quiet_watcher>());
        bool ask_stats = in.u8() & 1;
        return answered(req.send().then([ask_stats](auto&& r) -> kj::Promise<void> {
          if (!ask_stats)
            return kj::READY_NOW;
          return r.getSubscription().statsRequest().send().ignoreResult();
        }),
                        "watch");
      }
      case 5:
        return answered(s.reader.modelsRequest().send().ignoreResult(), "models");
      case 6: {
        auto req = s.reader.alertsRequest();
        req.setSubtree(as_text(text(in, ids)));
        auto states = req.initStates(in.below(5));
        for (unsigned i = 0; i < states.size(); ++i)
          states.set(i, static_cast<rpc::AlertState>(in.below(2) == 0 ? in.raw<uint16_t>()
                                                                      : in.below(3)));
        req.setLimit(count(in));
        return answered(req.send().ignoreResult(), "alerts");
      }
      case 7:
        return answered(s.reader.statusRequest().send().ignoreResult(), "status");
      case 8: {
        static const unsigned sizes[] = {1, 2, 3, 8, 64, 500, 5'000, 100'001};
        auto n = in.below(8) == 0 ? sizes[in.below(std::size(sizes))] : 1u + in.below(16);
        auto req = s.writer.ingestRequest();
        auto list = req.initSamples(n);
        for (unsigned i = 0; i < n; ++i) {
          // Past the input's end every sample is the same: big lists stay cheap to build.
          list[i].setTwin(as_text(text(in, ids)));
          list[i].setChannel(as_text(text(in, channels)));
          list[i].setTimestampMs(time_ms(in, now));
          list[i].setValue(value(in));
          if (in.below(2) == 0) {
            list[i].setSource(
              as_text(in.below(2) == 0 ? std::string("fz-src") : in.bytes(in.u8() % 8)));
            list[i].setSeq(in.below(2) == 0 ? in.raw<uint64_t>() : in.u8());
          }
        }
        return answered(req.send().ignoreResult(), "ingest");
      }
      case 9: {
        auto req = s.writer.createTwinRequest();
        req.setId(as_text(in.below(2) == 0 ? text(in, ids)
                                           : "acme/plant-1/line-1/fz-" + std::to_string(in.u8())));
        req.setKind(as_text(text(in, kinds)));
        req.setParent(as_text(text(in, ids)));
        return answered(req.send().ignoreResult(), "createTwin");
      }
      case 10: {
        auto req = s.writer.deleteTwinRequest();
        // The fixed tree stays: only twins this target created go.
        req.setId(as_text(in.below(2) == 0 ? "acme/plant-1/line-1/fz-" + std::to_string(in.u8())
                                           : text(in, ids) + "/fz"));
        return answered(req.send().ignoreResult(), "deleteTwin");
      }
      case 11: {
        auto req = s.writer.reparentRequest();
        req.setId(as_text(text(in, ids)));
        req.setParent(as_text(text(in, ids)));
        return answered(req.send().ignoreResult(), "reparent");
      }
      case 12: {
        auto req = s.writer.ackAlertRequest();
        req.setId(in.below(2) == 0 ? in.raw<uint64_t>() : in.u8());
        req.setNote(as_text(text(in, predicates)));
        return answered(req.send().ignoreResult(), "ackAlert");
      }
      case 13: {
        auto req = s.admin.loadModelsRequest();
        auto files = req.initFiles(in.below(4));
        for (unsigned i = 0; i < files.size(); ++i) {
          files[i].setName(as_text(text(in, kinds) + ".toml"));
          files[i].setText(as_text(in.below(4) == 0 ? in.bytes(in.u8()) : model_text(in)));
        }
        return answered(req.send().ignoreResult(), "loadModels");
      }
      default: {
        auto req = s.reader.echoRequest();
        req.setValue(in.raw<uint64_t>());
        return answered(req.send().ignoreResult(), "echo");
      }
    }
  }

  // -- raw bytes --------------------------------------------------------------------------

  void raw(const uint8_t* data, size_t size) {
    ++raw_connections;
    auto& net = client->getIoProvider().getNetwork();
    auto conn = net.parseAddress(host, port).wait(ws())->connect().wait(ws());
    bool closed = conn->write(data, size)
                    .then([&] {
                      conn->shutdownWrite();
                      return conn->readAllBytes();
                    })
                    .then([](kj::Array<kj::byte>&&) { return true; },
                          [](kj::Exception&&) { return true; }) // reset: closed too
                    .exclusiveJoin(timer().afterDelay(60 * kj::SECONDS).then([] { return false; }))
                    .wait(ws());
    if (!closed) {
      std::fprintf(stderr, "fuzz_rpc: a half-closed raw connection was not closed within 60 s\n");
      __builtin_trap();
    }
  }
};

// The fixture lives until the process exits, and must go before the
// main thread's thread_local objects that CAF and kj set up while it started
// (exit destroys those first, before any static: a node torn down after them
// corrupts the heap). A thread_local made after the fixture is destroyed
// before them, and takes the fixture with it.
fixture& the_fixture() {
  static std::unique_ptr<fixture> f;
  struct owner {
    ~owner() { f.reset(); }
  };
  if (!f) {
    f = std::make_unique<fixture>();
    static thread_local owner o;
    (void)o;
  }
  return *f;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& f = the_fixture();
  if (size == 0)
    return 0;
  if (data[0] & 1) {
    f.raw(data + 1, size - 1);
  } else {
    choices in(data + 1, size - 1);
    for (int i = 0; i < 8 && !in.empty(); ++i)
      f.call(in);
  }
  f.still_serving();
  return 0;
}
