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

std::vector<bool> catalog::below(std::string_view root,
                                const std::vector<std::string_view>& ids) const {
  std::vector<bool> out(ids.size(), root.empty());
  if (root.empty())
    return out;
  std::shared_lock<std::shared_mutex> g(mtx_);
  // Answers by id, for the batch's twins and every parent passed on the way
  // (views into `ids` and into the catalog's own strings, both stable here).
  std::unordered_map<std::string_view, bool> known;
  known.reserve(64);
  std::vector<std::string_view> path;
  std::string key; // reused: no allocation per lookup
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k > 0 && ids[k] == ids[k - 1]) { // a batch's samples of one twin often come together
      out[k] = out[k - 1];
      continue;
    }
    path.clear();
    std::string_view cur = ids[k];
    bool answer = false;
    for (int guard = 0; guard < 1000 && !cur.empty(); ++guard) {
      if (cur == root) {
        answer = true;
        break;
      }
      if (auto i = known.find(cur); i != known.end()) {
        answer = i->second;
        break;
      }
      path.push_back(cur);
      key.assign(cur.data(), cur.size());
      auto i = by_id_.find(key);
      if (i == by_id_.end())
        break;
      cur = i->second.meta.parent;
    }
    for (auto p : path)
      known.emplace(p, answer);
    out[k] = answer;
  }
  return out;
}

std::vector<twin_meta> catalog::subtree(std::string_view root) const {
  if (root.empty())
    return all();
  std::shared_lock<std::shared_mutex> g(mtx_);
  std::vector<twin_meta> out;
  std::vector<const entry*> todo;
  if (auto i = by_id_.find(std::string(root)); i != by_id_.end())
    todo.push_back(&i->second);
  // Bounded by the catalog's size, should the tree ever have a cycle.
  for (size_t steps = 0; !todo.empty() && steps <= by_id_.size(); ++steps) {
    auto* e = todo.back();
    todo.pop_back();
    if (e->meta.number != 0)
      out.push_back(e->meta);
    for (auto& child : e->children)
      if (auto c = by_id_.find(child); c != by_id_.end())
        todo.push_back(&c->second);
  }
  return out;
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
