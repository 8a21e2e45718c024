#pragma once

// A connection to a node's operator API (schemas/rpc.capnp), plain or over
// TLS, for the in-repo clients (twinctl). Like capnp::EzRpcClient, which
// knows no TLS: it owns its thread's event loop.

#include <string>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

namespace kj {
class TlsContext;
class TlsCertificate;
}

namespace twinrt::app {

struct rpc_client_options {
  std::string address;  // HOST:PORT (HOST alone: default_port)
  bool tls = false;     // TLS, the node's certificate checked for HOST
  std::string ca_file;  // PEM CA(s) to trust; empty: the system's trust store
  std::string tls_name; // name the certificate must carry; empty: HOST
  unsigned default_port = 7800;
};

class rpc_client {
public:
  /// Connects (and completes the TLS handshake). Throws kj::Exception whose
  /// description names the address, or the CA file, and what failed.
  explicit rpc_client(const rpc_client_options& o);
  ~rpc_client() noexcept(false);

  template <class T>
  typename T::Client getMain() {
    return bootstrap_.castAs<T>();
  }
  kj::WaitScope& getWaitScope() { return io_.waitScope; }
  kj::AsyncIoProvider& getIoProvider() { return *io_.provider; }

private:
  kj::AsyncIoContext io_;
  kj::Own<kj::TlsCertificate> ca_;
  kj::Own<kj::TlsContext> tls_;
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<capnp::TwoPartyVatNetwork> network_;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc_;
  capnp::Capability::Client bootstrap_ = nullptr;
};

} // namespace twinrt::app
