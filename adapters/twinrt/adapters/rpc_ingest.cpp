#include "twinrt/adapters/rpc_ingest.hpp"

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include <fstream>
#include <sstream>

#include "rpc.capnp.h"

namespace twinrt::adapters {

namespace {

std::string describe(const kj::Exception& e) {
  std::string d = e.getDescription().cStr();
  for (const char* prefix : {"remote exception: ", "std::exception: "})
    if (d.rfind(prefix, 0) == 0)
      d = d.substr(std::string(prefix).size());
  return d;
}

batch_status status_of(const kj::Exception& e) {
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
      return batch_status::disconnected;
    case kj::Exception::Type::OVERLOADED:
      return batch_status::overloaded;
    default:
      return batch_status::failed;
  }
}

} // namespace

struct rpc_ingest::impl {
  std::string address;
  std::string token;
  rpc_transport transport;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<kj::TlsCertificate> ca;
  kj::Own<kj::TlsContext> tls;
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  kj::Maybe<rpc::Writer::Client> writer;
  bool broken = false; // a call saw the connection drop

  void drop() {
    writer = nullptr;
    client = nullptr;
    stream = nullptr;
    broken = false;
  }
};

rpc_ingest::rpc_ingest(std::string address, std::string token, rpc_transport transport)
  : impl_(std::make_unique<impl>()) {
  impl_->address = std::move(address);
  impl_->token = std::move(token);
  impl_->transport = std::move(transport);
}

rpc_ingest::~rpc_ingest() {
  impl_->drop();
}

std::string rpc_ingest::connect() {
  auto& d = *impl_;
  d.drop();
  try {
    // Bounded, so that an unreachable host (no answer at all) does not hold
    // the caller for the system's connect timeout of minutes.
    auto& timer = d.io.provider->getTimer();
    auto addr = d.io.provider->getNetwork().parseAddress(d.address, 7800).wait(d.io.waitScope);
    d.stream = timer.timeoutAfter(10 * kj::SECONDS, addr->connect()).wait(d.io.waitScope);
    if (d.transport.tls) {
      if (!d.tls) {
        kj::TlsContext::Options options;
        options.minVersion = kj::TlsVersion::TLS_1_2;
        if (!d.transport.ca_file.empty()) {
          std::ifstream in(d.transport.ca_file, std::ios::binary);
          std::ostringstream pem;
          if (!in || !(pem << in.rdbuf())) {
            d.drop();
            return "cannot read the CA file " + d.transport.ca_file;
          }
          d.ca = kj::heap<kj::TlsCertificate>(kj::StringPtr(pem.str().c_str()));
          options.useSystemTrustStore = false;
          options.trustedCertificates = kj::arrayPtr(d.ca.get(), 1);
        }
        d.tls = kj::heap<kj::TlsContext>(kj::mv(options));
      }
      auto name = d.transport.name;
      if (name.empty())
        name = d.address.substr(0, d.address.rfind(':'));
      d.stream = timer.timeoutAfter(10 * kj::SECONDS, d.tls->wrapClient(kj::mv(d.stream), name))
                   .wait(d.io.waitScope);
    }
    d.client = kj::heap<capnp::TwoPartyClient>(*d.stream);
    auto gw = d.client->bootstrap().castAs<rpc::Gateway>();
    auto req = gw.loginRequest();
    req.setToken(d.token);
    auto res = timer.timeoutAfter(10 * kj::SECONDS, req.send()).wait(d.io.waitScope);
    d.writer = res.getSession().getWriter();
    return "";
  } catch (const kj::Exception& e) {
    d.drop();
    return "connect " + d.address + ": " + describe(e);
  }
}

bool rpc_ingest::connected() const {
  return impl_->writer != nullptr && !impl_->broken;
}

void rpc_ingest::disconnect() {
  impl_->drop();
}

kj::Promise<batch_outcome> rpc_ingest::send(const std::vector<twins::sample>& batch) {
  return send(batch, 0, batch.size());
}

kj::Promise<batch_outcome> rpc_ingest::send(const std::vector<twins::sample>& batch,
                                            size_t from, size_t count) {
  auto& d = *impl_;
  rpc::Writer::Client* writer = nullptr;
  KJ_IF_MAYBE (w, d.writer) {
    writer = w;
  }
  if (writer == nullptr || d.broken)
    return batch_outcome{batch_status::disconnected, "not connected to " + d.address, 0, {}};
  auto req = writer->ingestRequest(capnp::MessageSize{count * 12 + 16, 0});
  auto list = req.initSamples(static_cast<unsigned>(count));
  for (size_t i = 0; i < count; ++i) {
    auto& s = batch[from + i];
    auto out = list[static_cast<unsigned>(i)];
    out.setTwin(s.twin);
    out.setChannel(s.channel);
    out.setTimestampMs(s.ts_ms);
    out.setValue(s.value);
    out.setSource(s.source);
    out.setSeq(s.seq);
  }
  return req.send().then(
    [](capnp::Response<rpc::Writer::IngestResults>&& res) {
      batch_outcome out;
      out.accepted = res.getAccepted();
      for (auto r : res.getRejected())
        out.rejected.push_back({r.getIndex(), r.getReason().cStr(), r.getMessage().cStr()});
      return out;
    },
    [&d](kj::Exception&& e) {
      batch_outcome out;
      out.status = status_of(e);
      out.message = describe(e);
      if (out.status == batch_status::disconnected)
        d.broken = true;
      return out;
    });
}

kj::WaitScope& rpc_ingest::wait_scope() {
  return impl_->io.waitScope;
}

kj::Timer& rpc_ingest::timer() {
  return impl_->io.provider->getTimer();
}

void rpc_ingest::sleep_ms(int64_t ms) {
  if (ms > 0)
    timer().afterDelay(ms * kj::MILLISECONDS).wait(impl_->io.waitScope);
}

} // namespace twinrt::adapters
