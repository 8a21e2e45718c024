#include "rpc_client.hpp"

#include <arpa/inet.h>
#include <fstream>
#include <netinet/in.h>
#include <sstream>

#include <kj/compat/tls.h>
#include <kj/debug.h>

namespace twinrt::app {

namespace {

std::string host_of(const std::string& address) {
  if (!address.empty() && address.front() == '[') {
    auto end = address.find(']');
    return end == std::string::npos ? address : address.substr(1, end - 1);
  }
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

bool is_ip(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

} // namespace

rpc_client::rpc_client(const rpc_client_options& o) : io_(kj::setupAsyncIo()) {
  if (o.tls) {
    kj::TlsContext::Options options;
    options.minVersion = kj::TlsVersion::TLS_1_2;
    if (!o.ca_file.empty()) {
      std::ifstream in(o.ca_file, std::ios::binary);
      std::ostringstream pem;
      if (!in || !(pem << in.rdbuf()))
        throw KJ_EXCEPTION(FAILED, kj::str("cannot read the CA file ", o.ca_file.c_str()));
      auto text = pem.str();
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
                    ca_ = kj::heap<kj::TlsCertificate>(kj::StringPtr(text.c_str()));
                  })) {
        throw KJ_EXCEPTION(FAILED, kj::str("the CA file ", o.ca_file.c_str(),
                                           " holds no PEM certificate: ", e->getDescription()));
      }
      options.useSystemTrustStore = false;
      options.trustedCertificates = kj::arrayPtr(ca_.get(), 1);
    }
    tls_ = kj::heap<kj::TlsContext>(kj::mv(options));
  }
  auto& ws = io_.waitScope;
  auto addr = io_.provider->getNetwork().parseAddress(o.address, o.default_port).wait(ws);
  stream_ = addr->connect().wait(ws);
  if (tls_) {
    auto name = o.tls_name.empty() ? host_of(o.address) : o.tls_name;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
                  stream_ = tls_->wrapClient(kj::mv(stream_), name).wait(ws);
                })) {
      // The certificate is checked for `name` as a DNS name, even an IP address.
      auto hint = o.tls_name.empty() && is_ip(name)
                    ? "; for an address given as an IP, name one of the certificate's DNS "
                      "names with --tls-name"
                    : "";
      throw KJ_EXCEPTION(FAILED, kj::str("TLS handshake with ", o.address.c_str(), " failed: ",
                                         e->getDescription(),
                                         " (is the node serving TLS, with a certificate for ",
                                         name.c_str(), " signed by the CA given?", hint, ")"));
    }
  }
  network_ = kj::heap<capnp::TwoPartyVatNetwork>(*stream_, capnp::rpc::twoparty::Side::CLIENT);
  rpc_ = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(capnp::makeRpcClient(*network_));
  capnp::MallocMessageBuilder message(8);
  auto vat = message.initRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(capnp::rpc::twoparty::Side::SERVER);
  bootstrap_ = rpc_->bootstrap(vat);
}

rpc_client::~rpc_client() noexcept(false) = default;

} // namespace twinrt::app
