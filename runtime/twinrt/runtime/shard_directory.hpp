#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/runtime/actor_interfaces.hpp"
#include "twinrt/runtime/sharding.hpp"

namespace twinrt::runtime {

/// Where a twin lives: twin id -> virtual shard -> the shard actor that owns
/// that virtual shard now, on this node or on another (a typed handle,
/// actor_interfaces.hpp: what it accepts is checked at every send). Every path that
/// addresses a twin by id asks it (the ingest gate, contributions and drops
/// to parents, get, create, reparent, delete, watch notes, model reloads,
/// the watch lists of recovery); nothing else works out an owner.
///
/// The number of virtual shards is a property of the data: stored in the
/// data directory when it is created (storage.hpp) and the same on every
/// node of a cluster. It is not the number of shard actors (`node.shards`)
/// that serve them: one actor owns many virtual shards.
///
/// Owned by the node, which builds it through a directory_factory once its
/// shard actors run and drops it after they stopped. Every member may be
/// called from any thread at the same time, actor handlers included, and
/// answers without blocking: an implementation does no I/O and waits for no
/// actor here.
class shard_directory {
public:
  virtual ~shard_directory();
  shard_directory(const shard_directory&) = delete;
  shard_directory& operator=(const shard_directory&) = delete;

  /// The number of virtual shards, 1 .. max_virtual_shards; fixed for the
  /// directory's life.
  uint32_t virtual_shards() const { return virtual_shards_; }

  /// The virtual shard of twin `id`, 0 .. virtual_shards()-1: sharding.hpp's
  /// shard_of(id, virtual_shards()), the same on every node and build.
  uint32_t shard_of(std::string_view id) const;

  /// The actor that owns virtual shard `shard` now. When nobody does (the
  /// shard is moving, its node is gone, or `shard` is out of range), returns
  /// an error with errc::unavailable that names the shard. A caller answers
  /// such an error by refusing its request with it (the client retries
  /// later); it never waits for an owner to appear.
  virtual caf::expected<shard_actor> owner(uint32_t shard) const = 0;

  /// owner(shard_of(id)); on failure the error (same code) also names the
  /// twin: "twin acme/plant-1: virtual shard 17 has no owner now; retry later".
  caf::expected<shard_actor> owner_of(std::string_view id) const;

protected:
  /// `virtual_shards` must be 1 .. max_virtual_shards.
  explicit shard_directory(uint32_t virtual_shards);

private:
  uint32_t virtual_shards_;
};

/// One node on its own: virtual shard v is owned by local shard actor
/// v % actors.size(), always. Never fails for a shard in range. Immutable
/// once built, so safe from any thread.
class local_shard_directory final : public shard_directory {
public:
  /// `actors` must not be empty: the node's shard actors, in their order.
  local_shard_directory(uint32_t virtual_shards, std::vector<shard_actor> actors);

  caf::expected<shard_actor> owner(uint32_t shard) const override;

private:
  std::vector<shard_actor> actors_;
};

/// Builds a node's directory when node::start has spawned its shard actors:
/// `virtual_shards` is the count stored with the data, `local_shards` the
/// node's `node.shards` actors (at least one). Called once, on the thread
/// that calls node::start; must not return nullptr.
using directory_factory = std::function<std::unique_ptr<shard_directory>(
  uint32_t virtual_shards, std::vector<shard_actor> local_shards)>;

/// The factory node::start uses when given none: a local_shard_directory.
std::unique_ptr<shard_directory> make_local_directory(uint32_t virtual_shards,
                                                      std::vector<shard_actor> local_shards);

} // namespace twinrt::runtime
