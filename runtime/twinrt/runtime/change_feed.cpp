#include "twinrt/runtime/change_feed.hpp"

namespace twinrt::runtime {

bool in_subtree(const std::string& id, const std::string& subtree) {
  if (subtree.empty() || id == subtree)
    return true;
  return id.size() > subtree.size() && id.compare(0, subtree.size(), subtree) == 0
         && id[subtree.size()] == '/';
}

void change_subscription::offer(const twin_change& c) {
  std::function<void()> ready;
  {
    std::lock_guard<std::mutex> g(mtx_);
    if (closed_)
      return;
    auto [it, fresh] = pending_.insert_or_assign(c.meta.id, c);
    (void)it;
    if (!fresh)
      ++coalesced_;
    ready.swap(ready_);
  }
  if (ready)
    ready();
}

void change_subscription::when_ready(std::function<void()> ready) {
  {
    std::lock_guard<std::mutex> g(mtx_);
    if (pending_.empty() && !closed_) {
      ready_ = std::move(ready);
      return;
    }
  }
  ready();
}

std::vector<twin_change> change_subscription::take(uint64_t& coalesced) {
  std::map<std::string, twin_change> taken;
  {
    std::lock_guard<std::mutex> g(mtx_);
    taken.swap(pending_);
    coalesced = coalesced_;
    coalesced_ = 0;
  }
  std::vector<twin_change> out;
  out.reserve(taken.size());
  for (auto& [id, c] : taken)
    if (covers_(id)) // it may have moved out since it changed
      out.push_back(std::move(c));
  return out;
}

uint64_t change_subscription::coalesced_pending() const {
  std::lock_guard<std::mutex> g(mtx_);
  return coalesced_;
}

void change_subscription::close() {
  std::lock_guard<std::mutex> g(mtx_);
  closed_ = true;
  pending_.clear();
  ready_ = nullptr;
}

bool change_subscription::closed() const {
  std::lock_guard<std::mutex> g(mtx_);
  return closed_;
}

std::shared_ptr<change_subscription> change_feed::subscribe(change_subscription::filter covers) {
  auto s = std::make_shared<change_subscription>(std::move(covers));
  std::lock_guard<std::mutex> g(mtx_);
  subs_.push_back(s);
  live_.store(static_cast<int>(subs_.size()));
  return s;
}

void change_feed::publish(const twin_change& c) {
  std::vector<std::shared_ptr<change_subscription>> targets;
  {
    std::lock_guard<std::mutex> g(mtx_);
    for (auto i = subs_.begin(); i != subs_.end();) {
      auto s = i->lock();
      if (!s || s->closed()) {
        i = subs_.erase(i);
        continue;
      }
      if (s->covers(c.meta.id))
        targets.push_back(std::move(s));
      ++i;
    }
    live_.store(static_cast<int>(subs_.size()));
  }
  for (auto& s : targets)
    s->offer(c);
}

} // namespace twinrt::runtime
