// Watch: a subscription feeds its watcher the changes of a subtree.

#include <cstdio>
#include <optional>

#include "twinrt/runtime/rpc/session.hpp"

namespace twinrt::runtime::rpc_api {

namespace {

constexpr auto watcher_cutoff = 10 * kj::SECONDS;
constexpr auto watcher_update_interval = 100 * kj::MILLISECONDS;

class subscription_impl : public rpc::Subscription::Server, public kj::TaskSet::ErrorHandler {
public:
  subscription_impl(std::shared_ptr<change_subscription> sub, rpc::Watcher::Client watcher,
                    shared_state& shared)
    : sub_(std::move(sub)), watcher_(kj::mv(watcher)), shared_(shared), tasks_(*this) {
    tasks_.add(pump());
  }

  ~subscription_impl() { sub_->close(); }

  kj::Promise<void> ended(EndedContext ctx) override {
    if (end_reason_) {
      ctx.getResults().setReason(*end_reason_);
      return kj::READY_NOW;
    }
    auto paf = kj::newPromiseAndFulfiller<std::string>();
    enders_.add(kj::mv(paf.fulfiller));
    return paf.promise.then([ctx](std::string reason) mutable {
      ctx.getResults().setReason(reason);
    });
  }

  kj::Promise<void> stats(StatsContext ctx) override {
    ctx.getResults().setDelivered(delivered_);
    // Including what is folded while the watcher has not taken the last update.
    ctx.getResults().setCoalesced(coalesced_ + sub_->coalesced_pending());
    return kj::READY_NOW;
  }

  void taskFailed(kj::Exception&& e) override {
    // The watcher went away or failed: stop feeding it.
    std::fprintf(stderr, "twinrt rpc: watch ended: %s\n", e.getDescription().cStr());
    sub_->close();
    end(std::string("ended: ") + e.getDescription().cStr());
  }

private:
  kj::Promise<void> pump() {
    auto [ready, fulfil] = bridge<bool>();
    sub_->when_ready([fulfil = std::move(fulfil)] { fulfil(true); });
    return ready.then([this](bool) -> kj::Promise<void> {
      uint64_t coalesced = 0;
      auto changes = sub_->take(coalesced);
      if (sub_->closed())
        return kj::READY_NOW;
      if (changes.empty())
        return pump();
      unit_map units(shared_.n);
      auto req = watcher_.updateRequest();
      auto list = req.initChanges(static_cast<unsigned>(changes.size()));
      for (unsigned i = 0; i < changes.size(); ++i) {
        twin_view v{changes[i].meta, changes[i].children, changes[i].state, true};
        fill_twin(list[i].initTwin(), v, units);
      }
      req.setCoalesced(coalesced);
      delivered_ += changes.size();
      coalesced_ += coalesced;
      // At most one update per interval: under load each update then folds
      // many changes, so the few that fit in the flow-control window are
      // seconds of news, not a backlog of tiny stale ones.
      return shared_.timer.timeoutAfter(watcher_cutoff, req.send())
        .then([this]() { return shared_.timer.afterDelay(watcher_update_interval); })
        .then([this]() { return pump(); },
              [this](kj::Exception&& e) -> kj::Promise<void> {
                sub_->close();
                if (e.getType() == kj::Exception::Type::DISCONNECTED)
                  return kj::READY_NOW;
                end("cut off: the watcher did not take an update within 10 s ("
                    + std::to_string(coalesced_) + " updates were coalesced)");
                auto done = watcher_.doneRequest();
                done.setReason(*end_reason_);
                return done.send().ignoreResult().catch_([](kj::Exception&&) {});
              });
    });
  }

  void end(std::string reason) {
    end_reason_ = std::move(reason);
    for (auto& f : enders_)
      f->fulfill(std::string(*end_reason_));
    enders_.clear();
  }

  std::shared_ptr<change_subscription> sub_;
  rpc::Watcher::Client watcher_;
  std::optional<std::string> end_reason_;
  kj::Vector<kj::Own<kj::PromiseFulfiller<std::string>>> enders_;
  shared_state& shared_;
  uint64_t delivered_ = 0;
  uint64_t coalesced_ = 0;
  kj::TaskSet tasks_;
};

} // namespace

rpc::Subscription::Client make_subscription(const session_rights& rights,
                                            std::shared_ptr<change_subscription> sub,
                                            rpc::Watcher::Client watcher, shared_state& shared) {
  return kj::heap<call_limited<subscription_impl>>(rights.conn, std::move(sub), kj::mv(watcher),
                                                   shared);
}

} // namespace twinrt::runtime::rpc_api
