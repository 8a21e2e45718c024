#pragma once

// The latest view of recently read, live twins, so that a read (RPC get) is
// answered on the caller's thread without a trip through the actors. Not part
// of the runtime's public API.
//
// Only the twin's own actor writes its entry: it adds it when a get reaches
// it, replaces it after every message that changed the twin while the entry
// exists, and removes it when it passivates or stops. An entry is therefore
// never older than the actor's state as of its last handled message, which is
// what a get through the actor would have answered.

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "twinrt/runtime/node.hpp"

namespace twinrt::runtime::internal {

class view_cache {
public:
  using view_ptr = std::shared_ptr<const twin_view>;

  /// `capacity` 0 turns the cache off (every call is a no-op or a miss).
  explicit view_cache(size_t capacity = 0) : capacity_(capacity) {}

  void set_capacity(size_t capacity) { capacity_ = capacity; }
  bool enabled() const { return capacity_ > 0; }

  /// The cached view of `id`, or nullptr.
  view_ptr find(std::string_view id) const;

  /// Adds or replaces; when the stripe is full an arbitrary other entry of
  /// it goes (it will be read through the actor next time).
  void put(const std::string& id, view_ptr v);

  /// Whether `id` has an entry: a twin nobody reads costs a writer this
  /// lookup, not a copy of its view.
  bool contains(std::string_view id) const;

  void erase(const std::string& id);

  size_t size() const;

private:
  static constexpr size_t stripes = 32;
  struct stripe {
    mutable std::mutex mtx;
    std::unordered_map<std::string, view_ptr> views;
  };
  stripe& stripe_for(std::string_view id) const;

  size_t capacity_;
  mutable std::array<stripe, stripes> stripes_;
};

} // namespace twinrt::runtime::internal
