#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "twinrt/runtime/storage.hpp"

namespace twinrt::runtime {

/// Which twins exist on this node: id, number, kind, parent and children.
/// Read by every shard and twin actor, changed only by create, delete and
/// reparent; safe to use from any thread.
class catalog {
public:
  struct entry {
    twin_meta meta;
    std::set<std::string> children; // ordered: folds run in id order
  };

  /// Fills the catalog from stored metas (at start-up).
  void load(const std::vector<twin_meta>& metas);

  std::optional<twin_meta> find(std::string_view id) const;
  bool contains(std::string_view id) const;
  bool contains(const std::string& id) const;
  /// True when `child` exists and its parent is `parent` (no copies).
  bool parent_is(const std::string& child, const std::string& parent) const;
  std::vector<std::string> children(std::string_view id) const;
  size_t child_count(std::string_view id) const;
  /// Number of steps to the root (0 for a root).
  int depth(std::string_view id) const;
  /// True when `ancestor` is `id` or one of its ancestors.
  bool is_ancestor(std::string_view ancestor, std::string_view id) const;
  /// is_ancestor(root, id) for each of `ids` ("" is above every twin), under
  /// one lock and walking each parent chain once: cheap for large batches
  /// whose samples share twins and parents. An id that does not exist is
  /// below nothing (unless it is `root` itself).
  std::vector<bool> below(std::string_view root, const std::vector<std::string_view>& ids) const;
  /// The twin `root` and every twin below it in the rollup tree (all twins
  /// for ""), in no particular order; empty when `root` does not exist.
  std::vector<twin_meta> subtree(std::string_view root) const;
  std::vector<twin_meta> all() const;
  size_t size() const;

  /// Reserves the next free number for a new twin.
  uint32_t next_number();
  /// Adds a twin; its parent must already be present (or empty).
  void insert(const twin_meta& m);
  /// Moves `id` under `new_parent`.
  void reparent(const std::string& id, const std::string& new_parent);
  void erase(const std::string& id);

private:
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, entry> by_id_;
  uint32_t next_number_ = 1;
};

} // namespace twinrt::runtime
