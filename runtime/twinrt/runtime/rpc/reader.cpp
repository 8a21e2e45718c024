// The Reader capability: reads of twins, queries, history, models, alerts,
// the node's status, and watches.

#include <algorithm>

#include "twinrt/runtime/rpc/session.hpp"

namespace twinrt::runtime::rpc_api {

namespace {

class reader_impl : public rpc::Reader::Server, session_capability {
public:
  reader_impl(session_rights rights, shared_state& shared)
    : session_capability(std::move(rights), shared) {}

  kj::Promise<void> get(GetContext ctx) override {
    return timed(shared_, "get", [&] { return do_get(ctx); });
  }

  kj::Promise<void> do_get(GetContext ctx) {
    auto id = text(ctx.getParams().getId());
    rights_.check(id);
    if (auto hit = shared_.n.cached(id)) {
      unit_map units(shared_.n);
      fill_twin(ctx.getResults().initTwin(), *hit, units);
      return kj::READY_NOW;
    }
    auto [promise, done] = bridge<caf::expected<twin_view>>();
    shared_.n.get_async(id, std::move(done));
    return promise.then([this, ctx](caf::expected<twin_view> v) mutable {
      if (!v)
        fail(v.error());
      unit_map units(shared_.n);
      fill_twin(ctx.getResults().initTwin(), *v, units);
    });
  }

  kj::Promise<void> query(QueryContext ctx) override {
    return timed(shared_, "query", [&] { return do_query(ctx); });
  }

  kj::Promise<void> do_query(QueryContext ctx) {
    auto q = ctx.getParams().getQuery();
    query_request req;
    req.subtree = rights_.narrow(text(q.getSubtree()));
    req.kind = text(q.getKind());
    for (auto h : q.getHealth())
      req.health.push_back(static_cast<twins::health_status>(h));
    req.where = text(q.getWhere());
    req.sort_by = text(q.getSortBy());
    req.descending = q.getDescending();
    req.limit = q.getLimit();
    req.page_token = text(q.getPageToken());
    return shared_.pool
      .run<caf::expected<query_result>>([&n = shared_.n, req] { return n.query(req); })
      .then([this, ctx](caf::expected<query_result> page) mutable {
        if (!page)
          fail(page.error());
        unit_map units(shared_.n);
        auto r = ctx.getResults();
        auto list = r.initTwins(static_cast<unsigned>(page->twins.size()));
        for (unsigned i = 0; i < page->twins.size(); ++i)
          fill_twin(list[i], page->twins[i], units);
        r.setTotal(static_cast<uint32_t>(page->total));
        if (!page->next_page_token.empty())
          r.setNextPageToken(page->next_page_token);
      });
  }

  kj::Promise<void> history(HistoryContext ctx) override {
    return timed(shared_, "history", [&] { return do_history(ctx); });
  }

  kj::Promise<void> do_history(HistoryContext ctx) {
    auto p = ctx.getParams();
    history_request req{text(p.getId()), text(p.getChannel()), p.getFromMs(), p.getToMs(),
                        p.getStepMs(), p.getLimit()};
    rights_.check(req.id);
    using steps = std::vector<history_step>;
    return shared_.pool
      .run<caf::expected<steps>>([&n = shared_.n, req] { return n.history(req); })
      .then([ctx](caf::expected<steps> out) mutable {
        if (!out)
          fail(out.error());
        auto list = ctx.getResults().initPoints(static_cast<unsigned>(out->size()));
        for (unsigned i = 0; i < out->size(); ++i) {
          auto& s = (*out)[i];
          list[i].setTimestampMs(s.ts_ms);
          list[i].setValue(s.mean);
          list[i].setMin(s.min);
          list[i].setMax(s.max);
          list[i].setLast(s.last);
          list[i].setCount(s.count);
          list[i].setModelVersion(s.model_version);
        }
      });
  }

  kj::Promise<void> watch(WatchContext ctx) override {
    return timed(shared_, "watch", [&] { return do_watch(ctx); });
  }

  kj::Promise<void> do_watch(WatchContext ctx) {
    auto subtree = rights_.narrow(text(ctx.getParams().getSubtree()));
    auto subscribe = [this, ctx, subtree]() mutable {
      ctx.getResults().setSubscription(make_subscription(
        rights_, shared_.n.watch(subtree, rights_.scope), ctx.getParams().getWatcher(), shared_));
    };
    if (subtree.empty()) {
      subscribe();
      return kj::READY_NOW;
    }
    // An unknown subtree is refused ("no twin ..."), not watched in silence.
    auto [promise, done] = bridge<caf::expected<twin_view>>();
    shared_.n.get_async(subtree, std::move(done));
    return promise.then([subscribe](caf::expected<twin_view> v) mutable {
      if (!v)
        fail(v.error());
      subscribe();
    });
  }

  kj::Promise<void> models(ModelsContext ctx) override {
    return timed(shared_, "models", [&] { return do_models(ctx); });
  }

  kj::Promise<void> do_models(ModelsContext ctx) {
    auto all = shared_.n.models();
    auto list = ctx.getResults().initModels(static_cast<unsigned>(all.size()));
    for (unsigned i = 0; i < all.size(); ++i) {
      auto& m = *all[i];
      list[i].setKind(m.kind);
      list[i].setVersion(m.version);
      list[i].setDescription(m.description);
      auto ch = list[i].initChannels(static_cast<unsigned>(m.channels.size()));
      unsigned k = 0;
      for (auto& [name, spec] : m.channels)
        ch.set(k++, name);
      auto parents = list[i].initParents(static_cast<unsigned>(m.parents.size()));
      for (unsigned j = 0; j < m.parents.size(); ++j)
        parents.set(j, m.parents[j]);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> echo(EchoContext ctx) override {
    return timed(shared_, "echo", [&] { return do_echo(ctx); });
  }

  kj::Promise<void> do_echo(EchoContext ctx) {
    ctx.getResults().setValue(ctx.getParams().getValue());
    return kj::READY_NOW;
  }

  kj::Promise<void> alerts(AlertsContext ctx) override {
    return timed(shared_, "alerts", [&] { return do_alerts(ctx); });
  }

  kj::Promise<void> do_alerts(AlertsContext ctx) {
    auto p = ctx.getParams();
    auto subtree = rights_.narrow(text(p.getSubtree()));
    std::vector<twins::alert_phase> states;
    for (auto st : p.getStates())
      states.push_back(st == rpc::AlertState::ACKNOWLEDGED ? twins::alert_phase::acknowledged
                       : st == rpc::AlertState::CLEARED    ? twins::alert_phase::idle
                                                           : twins::alert_phase::raised);
    size_t limit = p.getLimit() == 0 ? 1000 : p.getLimit();
    return shared_.pool
      .run<std::vector<alert_record>>([&n = shared_.n, subtree, states, limit] {
        std::vector<alert_record> out;
        for (auto& a : n.alerts(subtree, std::nullopt)) {
          if (out.size() == limit)
            break;
          if (states.empty() || std::find(states.begin(), states.end(), a.state) != states.end())
            out.push_back(std::move(a));
        }
        return out;
      })
      .then([ctx](std::vector<alert_record> all) mutable {
        auto list = ctx.getResults().initAlerts(static_cast<unsigned>(all.size()));
        for (unsigned i = 0; i < all.size(); ++i)
          fill_alert(list[i], all[i]);
      });
  }

  kj::Promise<void> status(StatusContext ctx) override {
    return timed(shared_, "status", [&] { return do_status(ctx); });
  }

  kj::Promise<void> do_status(StatusContext ctx) {
    auto& n = shared_.n;
    auto st = ctx.getResults().initStatus();
    st.setTwins(n.twin_count());
    st.setActiveTwins(n.active_twins());
    st.setSamplesIngested(n.probe().accepted());
    st.setSamplesRejected(n.probe().rejected_total());
    st.setStorageFailure(n.store().failure());
    auto values = n.probe().adapter_values();
    auto list = st.initAdapters(static_cast<unsigned>(values.size()));
    for (unsigned i = 0; i < values.size(); ++i) {
      list[i].setName(values[i].family);
      list[i].setValue(values[i].value);
      auto labels = list[i].initLabels(static_cast<unsigned>(values[i].labels.size()));
      for (unsigned k = 0; k < values[i].labels.size(); ++k) {
        labels[k].setName(values[i].labels[k].first);
        labels[k].setValue(values[i].labels[k].second);
      }
    }
    return kj::READY_NOW;
  }

};

} // namespace

rpc::Reader::Client make_reader(const session_rights& rights, shared_state& shared) {
  return kj::heap<call_limited<reader_impl>>(rights.conn, rights, shared);
}

} // namespace twinrt::runtime::rpc_api
