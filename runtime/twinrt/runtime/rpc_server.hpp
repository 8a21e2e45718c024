#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace twinrt::runtime {

class node;

/// A credential from the config: its secret is what a client presents, its
/// name is what errors and logs show. The secret is given plain or as a
/// salted hash (rpc_security.hpp's hash_secret()).
struct rpc_token {
  std::string name;
  std::string secret; // plain; empty when secret_hash is given
  std::string role;   // read | write | admin
  std::string scope;  // subtree the token may see; "" = everything
  std::string secret_hash = {}; // from `twinrt token hash`
};

/// Serves the operator API (schemas/rpc.capnp) of one node on its own thread
/// with its own kj event loop. Calls into the node never block that loop:
/// actor requests fulfil kj promises from CAF threads, and storage reads run
/// on a small worker pool. Stopping (the destructor) closes every connection.
class rpc_server {
public:
  /// Binds `address` (host:port; port 0 picks a free one), with TLS and the
  /// connection limits of n.config() ([rpc], [rpc.tls]). Fails when the
  /// address cannot be bound, a token is malformed, the certificate or key
  /// cannot be used, or the address is not loopback while neither TLS nor
  /// rpc.plaintext is configured.
  static caf::expected<std::unique_ptr<rpc_server>>
  start(node& n, const std::string& address, std::vector<rpc_token> tokens);

  ~rpc_server();
  rpc_server(const rpc_server&) = delete;
  rpc_server& operator=(const rpc_server&) = delete;

  /// host:port actually bound.
  const std::string& address() const;

  struct impl;

private:
  explicit rpc_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::runtime
