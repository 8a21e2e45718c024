#include "twinrt/runtime/catalog.hpp"

#include <mutex>

namespace twinrt::runtime {

void catalog::load(const std::vector<twin_meta>& metas) {
  std::unique_lock<std::shared_mutex> g(mtx_);
  for (auto& m : metas) {
    by_id_[m.id].meta = m;
    next_number_ = std::max(next_number_, m.number + 1);
  }
  for (auto& m : metas)
    if (!m.parent.empty())
      by_id_[m.parent].children.insert(m.id);
}

std::optional<twin_meta> catalog::find(std::string_view id) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  auto i = by_id_.find(std::string(id));
  if (i == by_id_.end() || i->second.meta.number == 0)
    return std::nullopt;
  return i->second.meta;
}

bool catalog::contains(std::string_view id) const {
  return contains(std::string(id));
}

bool catalog::contains(const std::string& id) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  auto i = by_id_.find(id);
  return i != by_id_.end() && i->second.meta.number != 0;
}

bool catalog::parent_is(const std::string& child, const std::string& parent) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  auto i = by_id_.find(child);
  return i != by_id_.end() && i->second.meta.number != 0 && i->second.meta.parent == parent;
}

std::vector<std::string> catalog::children(std::string_view id) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  auto i = by_id_.find(std::string(id));
  if (i == by_id_.end())
    return {};
  return {i->second.children.begin(), i->second.children.end()};
}

size_t catalog::child_count(std::string_view id) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  auto i = by_id_.find(std::string(id));
  return i == by_id_.end() ? 0 : i->second.children.size();
}

int catalog::depth(std::string_view id) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  int d = 0;
  auto i = by_id_.find(std::string(id));
  while (i != by_id_.end() && !i->second.meta.parent.empty() && d < 1000) {
    ++d;
    i = by_id_.find(i->second.meta.parent);
  }
  return d;
}

bool catalog::is_ancestor(std::string_view ancestor, std::string_view id) const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  std::string cur(id);
  for (int guard = 0; guard < 1000 && !cur.empty(); ++guard) {
    if (cur == ancestor)
      return true;
    auto i = by_id_.find(cur);
    if (i == by_id_.end())
      return false;
    cur = i->second.meta.parent;
  }
  return false;
}

std::vector<twin_meta> catalog::all() const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  std::vector<twin_meta> out;
  out.reserve(by_id_.size());
  for (auto& [id, e] : by_id_)
    if (e.meta.number != 0)
      out.push_back(e.meta);
  return out;
}

size_t catalog::size() const {
  std::shared_lock<std::shared_mutex> g(mtx_);
  return by_id_.size();
}

uint32_t catalog::next_number() {
  std::unique_lock<std::shared_mutex> g(mtx_);
  return next_number_++;
}

void catalog::insert(const twin_meta& m) {
  std::unique_lock<std::shared_mutex> g(mtx_);
  by_id_[m.id].meta = m;
  if (!m.parent.empty())
    by_id_[m.parent].children.insert(m.id);
}

void catalog::reparent(const std::string& id, const std::string& new_parent) {
  std::unique_lock<std::shared_mutex> g(mtx_);
  auto& e = by_id_[id];
  if (!e.meta.parent.empty())
    by_id_[e.meta.parent].children.erase(id);
  e.meta.parent = new_parent;
  if (!new_parent.empty())
    by_id_[new_parent].children.insert(id);
}

void catalog::erase(const std::string& id) {
  std::unique_lock<std::shared_mutex> g(mtx_);
  auto i = by_id_.find(id);
  if (i == by_id_.end())
    return;
  if (!i->second.meta.parent.empty())
    by_id_[i->second.meta.parent].children.erase(id);
  if (i->second.children.empty())
    by_id_.erase(i);
  else
    i->second.meta = twin_meta{}; // keep the children list of a removed parent
}

} // namespace twinrt::runtime
