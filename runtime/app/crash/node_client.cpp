#include "node_client.hpp"

#include <capnp/rpc-twoparty.h>

#include "rpc.capnp.h"

namespace twinrt::crash_loop {

namespace {

std::string describe(const kj::Exception& e) {
  std::string d = e.getDescription().cStr();
  for (const char* prefix : {"remote exception: ", "std::exception: "})
    if (d.rfind(prefix, 0) == 0)
      d = d.substr(std::string(prefix).size());
  return d;
}

failure classify(const kj::Exception& e) {
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
      return failure::disconnected;
    case kj::Exception::Type::OVERLOADED:
      return failure::overloaded;
    default:
      return failure::failed;
  }
}

std::string text(capnp::Text::Reader t) {
  return {t.begin(), t.size()};
}

} // namespace

struct node_client::impl {
  kj::AsyncIoContext& io;
  std::chrono::milliseconds call_timeout;
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  kj::Maybe<rpc::Reader::Client> reader;
  kj::Maybe<rpc::Writer::Client> writer;
  kj::Maybe<rpc::Admin::Client> admin;
  kj::Vector<kj::Promise<void>> pending; // sent without waiting for the answer

  impl(kj::AsyncIoContext& io_context, std::chrono::milliseconds timeout)
    : io(io_context), call_timeout(timeout) {}

  void drop() {
    pending.clear();
    reader = nullptr;
    writer = nullptr;
    admin = nullptr;
    client = nullptr;
    stream = nullptr;
  }

  kj::Timer& timer() { return io.provider->getTimer(); }

  // Waits for `p`, at most call_timeout: a deadline for a broken node only.
  template <class T>
  T wait(kj::Promise<T>&& p) {
    auto ms = call_timeout.count();
    return p
      .exclusiveJoin(timer().afterDelay(ms * kj::MILLISECONDS).then([ms]() -> kj::Promise<T> {
        return KJ_EXCEPTION(FAILED, "no answer within " + std::to_string(ms / 1000) + " s");
      }))
      .wait(io.waitScope);
  }

  // Runs `f` (which waits for its call), turning a kj exception into a failure.
  template <class T, class F>
  answer<T> run(F&& f) {
    answer<T> out;
    try {
      out.value = f();
    } catch (const kj::Exception& e) {
      out.why = classify(e);
      out.message = describe(e);
      out.value.reset();
    }
    return out;
  }

  template <class T>
  T& need(kj::Maybe<T>& cap) {
    KJ_IF_MAYBE (c, cap)
      return *c;
    kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED, "not connected"));
  }
};

node_client::node_client(kj::AsyncIoContext& io, std::chrono::milliseconds call_timeout)
  : impl_(std::make_unique<impl>(io, call_timeout)) {}

node_client::~node_client() {
  impl_->drop();
}

answer<done> node_client::connect(const std::string& address, const std::string& write_token,
                                  const std::string& admin_token) {
  auto& d = *impl_;
  d.drop();
  auto out = d.run<done>([&] {
    auto& net = d.io.provider->getNetwork();
    auto addr = d.wait(net.parseAddress(address));
    d.stream = d.wait(addr->connect());
    d.client = kj::heap<capnp::TwoPartyClient>(*d.stream);
    auto gw = d.client->bootstrap().castAs<rpc::Gateway>();
    auto w = gw.loginRequest();
    w.setToken(write_token);
    auto a = gw.loginRequest();
    a.setToken(admin_token);
    auto wp = w.send();
    auto ap = a.send();
    auto ws = d.wait(kj::Promise<capnp::Response<rpc::Gateway::LoginResults>>(kj::mv(wp)));
    auto as = d.wait(kj::Promise<capnp::Response<rpc::Gateway::LoginResults>>(kj::mv(ap)));
    d.reader = ws.getSession().getReader();
    d.writer = ws.getSession().getWriter();
    d.admin = as.getSession().getAdmin();
    return done{};
  });
  if (!out)
    d.drop();
  return out;
}

void node_client::disconnect() {
  impl_->drop();
}

answer<node_status> node_client::status() {
  auto& d = *impl_;
  return d.run<node_status>([&] {
    auto res = d.wait(d.need(d.reader).statusRequest().send());
    auto s = res.getStatus();
    return node_status{s.getTwins(), s.getActiveTwins()};
  });
}

answer<twin_snapshot> node_client::get(const std::string& id) {
  auto& d = *impl_;
  return d.run<twin_snapshot>([&] {
    auto req = d.need(d.reader).getRequest();
    req.setId(id);
    auto res = d.wait(req.send());
    auto t = res.getTwin();
    twin_snapshot s;
    s.id = text(t.getId());
    s.kind = text(t.getKind());
    s.parent = text(t.getParent());
    s.children = t.getChildren();
    auto r = t.getRollup();
    for (auto sum : r.getSums())
      s.sums[text(sum.getKey())] = sum.getValue();
    s.counts = {r.getOk(), r.getWarning(), r.getAlarm(), r.getStale()};
    s.score = r.getScore();
    s.worst_id = text(r.getWorstId());
    s.worst_health = static_cast<int>(r.getWorstHealth());
    for (auto st : t.getStock())
      s.stock[text(st.getKey())] = static_cast<int64_t>(st.getValue());
    for (auto c : t.getChannels())
      s.channels[text(c.getName())] = {c.getTimestampMs(), c.getValue()};
    return s;
  });
}

answer<std::vector<point>> node_client::history(const std::string& id, const std::string& channel,
                                                int64_t from_ms) {
  auto& d = *impl_;
  return d.run<std::vector<point>>([&] {
    auto req = d.need(d.reader).historyRequest();
    req.setId(id);
    req.setChannel(channel);
    req.setFromMs(from_ms);
    req.setToMs(0);       // no end
    req.setStepMs(0);     // raw points
    req.setLimit(100'000); // the node's maximum
    auto res = d.wait(req.send());
    std::vector<point> out;
    for (auto p : res.getPoints())
      out.push_back({p.getTimestampMs(), p.getValue()});
    return out;
  });
}

answer<std::map<std::string, uint32_t>> node_client::models() {
  auto& d = *impl_;
  return d.run<std::map<std::string, uint32_t>>([&] {
    auto res = d.wait(d.need(d.reader).modelsRequest().send());
    std::map<std::string, uint32_t> out;
    for (auto m : res.getModels())
      out[text(m.getKind())] = m.getVersion();
    return out;
  });
}

answer<done> node_client::create(const std::string& id, const std::string& kind,
                                 const std::string& parent) {
  auto& d = *impl_;
  return d.run<done>([&] {
    auto req = d.need(d.writer).createTwinRequest();
    req.setId(id);
    req.setKind(kind);
    req.setParent(parent);
    d.wait(req.send());
    return done{};
  });
}

answer<done> node_client::reparent(const std::string& id, const std::string& parent) {
  auto& d = *impl_;
  return d.run<done>([&] {
    auto req = d.need(d.writer).reparentRequest();
    req.setId(id);
    req.setParent(parent);
    d.wait(req.send());
    return done{};
  });
}

namespace {

template <class Request>
void fill_models(Request& req, const std::vector<std::pair<std::string, std::string>>& files) {
  auto list = req.initFiles(static_cast<unsigned>(files.size()));
  for (unsigned i = 0; i < files.size(); ++i) {
    list[i].setName(files[i].first);
    list[i].setText(files[i].second);
  }
}

template <class Request>
void fill_samples(Request& req, const batch& b) {
  auto list = req.initSamples(static_cast<unsigned>(b.size()));
  for (unsigned i = 0; i < b.size(); ++i) {
    auto& s = b[i];
    list[i].setTwin(s.twin);
    list[i].setChannel(s.channel);
    list[i].setTimestampMs(s.ts_ms);
    list[i].setValue(s.value);
    list[i].setSource(s.source);
    list[i].setSeq(s.seq);
  }
}

} // namespace

answer<std::vector<std::string>>
node_client::load_models(const std::vector<std::pair<std::string, std::string>>& files) {
  auto& d = *impl_;
  return d.run<std::vector<std::string>>([&] {
    auto req = d.need(d.admin).loadModelsRequest();
    fill_models(req, files);
    auto res = d.wait(req.send());
    std::vector<std::string> refused;
    for (auto r : res.getRefused())
      refused.push_back(text(r));
    return refused;
  });
}

answer<ingest_answer> node_client::ingest(const batch& b) {
  auto& d = *impl_;
  return d.run<ingest_answer>([&] {
    auto req = d.need(d.writer).ingestRequest();
    fill_samples(req, b);
    auto res = d.wait(req.send());
    ingest_answer out;
    out.accepted = res.getAccepted();
    for (auto r : res.getRejected())
      out.refused.push_back({r.getIndex(), text(r.getReason()), text(r.getMessage())});
    return out;
  });
}

namespace {

// What a request sent without waiting leaves behind: nothing, whatever the answer.
template <class Response>
kj::Promise<void> forget(capnp::RemotePromise<Response>&& p) {
  return p.then([](auto&&) {}, [](kj::Exception&&) {});
}

} // namespace

void node_client::send_ingest(const batch& b) {
  auto& d = *impl_;
  KJ_IF_MAYBE (w, d.writer) {
    auto req = w->ingestRequest();
    fill_samples(req, b);
    d.pending.add(forget(req.send()).eagerlyEvaluate(nullptr));
  }
}

void node_client::send_reparent(const std::string& id, const std::string& parent) {
  auto& d = *impl_;
  KJ_IF_MAYBE (w, d.writer) {
    auto req = w->reparentRequest();
    req.setId(id);
    req.setParent(parent);
    d.pending.add(forget(req.send()).eagerlyEvaluate(nullptr));
  }
}

void node_client::send_load_models(const std::vector<std::pair<std::string, std::string>>& files) {
  auto& d = *impl_;
  KJ_IF_MAYBE (a, d.admin) {
    auto req = a->loadModelsRequest();
    fill_models(req, files);
    d.pending.add(forget(req.send()).eagerlyEvaluate(nullptr));
  }
}

void node_client::pump(std::chrono::microseconds dur) {
  auto& d = *impl_;
  d.timer().afterDelay(dur.count() * kj::MICROSECONDS).wait(d.io.waitScope);
}

} // namespace twinrt::crash_loop
