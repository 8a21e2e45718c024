#include "twinrt/runtime/internal/view_cache.hpp"

#include "twinrt/runtime/sharding.hpp"

namespace twinrt::runtime::internal {

view_cache::stripe& view_cache::stripe_for(std::string_view id) const {
  // Virtual shards take stable_hash % their count (the low bits); use others here.
  return stripes_[(stable_hash(id) >> 16) % stripes];
}

view_cache::view_ptr view_cache::find(std::string_view id) const {
  if (!enabled())
    return nullptr;
  auto& s = stripe_for(id);
  std::lock_guard<std::mutex> g(s.mtx);
  auto i = s.views.find(std::string(id));
  return i == s.views.end() ? nullptr : i->second;
}

bool view_cache::contains(std::string_view id) const {
  if (!enabled())
    return false;
  auto& s = stripe_for(id);
  std::lock_guard<std::mutex> g(s.mtx);
  return s.views.count(std::string(id)) > 0;
}

void view_cache::put(const std::string& id, view_ptr v) {
  if (!enabled())
    return;
  auto& s = stripe_for(id);
  std::lock_guard<std::mutex> g(s.mtx);
  auto i = s.views.find(id);
  if (i != s.views.end()) {
    i->second = std::move(v);
    return;
  }
  if (s.views.size() >= capacity_ / stripes + 1)
    s.views.erase(s.views.begin());
  s.views.emplace(id, std::move(v));
}

void view_cache::erase(const std::string& id) {
  if (!enabled())
    return;
  auto& s = stripe_for(id);
  std::lock_guard<std::mutex> g(s.mtx);
  s.views.erase(id);
}

size_t view_cache::size() const {
  size_t n = 0;
  for (auto& s : stripes_) {
    std::lock_guard<std::mutex> g(s.mtx);
    n += s.views.size();
  }
  return n;
}

} // namespace twinrt::runtime::internal
