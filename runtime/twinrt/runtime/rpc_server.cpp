#include "twinrt/runtime/rpc_server.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <kj/async.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/timer.h>

#include "rpc.capnp.h"
#include "twinrt/runtime/audit_log.hpp"
#include "twinrt/runtime/node.hpp"
#include "twinrt/runtime/rpc_listener.hpp"
#include "twinrt/runtime/rpc_security.hpp"

namespace twinrt::runtime {

namespace {

constexpr auto watcher_cutoff = 10 * kj::SECONDS;
constexpr auto watcher_update_interval = 100 * kj::MILLISECONDS;

// Errors reach the client as kj exceptions whose description is the whole
// message; OVERLOADED tells it to back off, FAILED to give up. The errc goes
// along as the exception's context, for timed() to count the call by; timed()
// takes it off before the exception leaves.
constexpr const char* errc_context = "twinrt errc";

[[noreturn]] void fail(errc code, const std::string& what) {
  // unavailable: the twin's shard has no owner for now (a move): retry.
  auto retry = code == errc::overloaded || code == errc::unavailable;
  kj::Exception e(retry ? kj::Exception::Type::OVERLOADED : kj::Exception::Type::FAILED,
                  __FILE__, __LINE__, kj::str(what.c_str()));
  e.wrapContext(errc_context, static_cast<int>(code), kj::str(to_string(code)));
  throw e;
}

[[noreturn]] void fail(const caf::error& e) {
  fail(code_of(e), describe(e));
}

// A refusal of the credentials a caller logs in with.
[[noreturn]] void fail(const std::string& what) {
  fail(errc::permission_denied, what);
}

// The errc fail() gave `e`; errc::none for exceptions from elsewhere (kj, a
// broken connection).
errc code_of(const kj::Exception& e) {
  KJ_IF_MAYBE(first, e.getContext()) {
    for (const kj::Exception::Context* c = first; c != nullptr;) {
      if (std::strcmp(c->file, errc_context) == 0)
        return static_cast<errc>(c->line);
      const kj::Exception::Context* next = nullptr;
      KJ_IF_MAYBE(n, c->next) {
        next = n->get();
      }
      c = next;
    }
  }
  return errc::none;
}

std::string text(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

enum class role { read = 0, write = 1, admin = 2 };

// What a token may see: its scope is a twin and everything below it in the
// rollup tree (the twins whose contributions roll up into it), as the tree is
// at the moment of each call; "" is everything. Ids play no part: a twin
// moved under another parent leaves the scopes of its old ancestors and
// enters those of its new ones.
struct session_rights {
  node& n;
  std::string token;
  role r = role::read;
  std::string scope;
  std::shared_ptr<connection_state> conn; // the connection logged in on

  bool sees(const std::string& id) const { return n.in_tree(scope, id); }
  // sees() for a batch's twins, each distinct twin and parent looked up once.
  std::vector<bool> sees(const std::vector<std::string_view>& ids) const {
    return n.in_tree(scope, ids);
  }
  // The same answer for "outside your scope" as for "does not exist".
  void check(const std::string& id) const {
    if (!sees(id))
      fail(errc::unknown_twin, "no twin " + id);
  }
  // A subtree to list or watch: the scope's twin or one above it (or "",
  // all) narrows to the scope; one outside it does not exist for this token.
  std::string narrow(const std::string& subtree) const {
    if (subtree.empty() || (!scope.empty() && n.in_tree(subtree, scope)))
      return scope;
    check(subtree);
    return subtree;
  }
};

void fill_alert(rpc::Alert::Builder b, const alert_record& a) {
  b.setId(a.id);
  b.setTwin(a.twin);
  b.setKind(a.kind);
  b.setRule(a.rule);
  b.setValue(a.value);
  b.setSeverity(static_cast<rpc::Severity>(a.sev));
  b.setState(a.state == twins::alert_phase::acknowledged ? rpc::AlertState::ACKNOWLEDGED
             : a.state == twins::alert_phase::idle       ? rpc::AlertState::CLEARED
                                                         : rpc::AlertState::RAISED);
  b.setRaisedMs(a.raised_ms);
  b.setRaisedValue(a.raised_value);
  b.setAckedMs(a.acked_ms);
  b.setAckedBy(a.acked_by);
  b.setNote(a.note);
  b.setClearedMs(a.cleared_ms);
  b.setClearedValue(a.cleared_value);
  b.setMessage(a.message);
  b.setEvent(a.event);
}

// Units of channels come from the twin's model in force.
class unit_map {
public:
  explicit unit_map(node& n) : n_(n) {}
  std::string unit(const std::string& kind, const std::string& channel) {
    auto& m = models_[kind];
    if (!m)
      m = n_.model(kind);
    if (!m)
      return "";
    auto spec = m->find_channel(channel, nullptr);
    return spec ? spec->unit : "";
  }

private:
  node& n_;
  std::map<std::string, twins::model_set::model_ptr> models_;
};

void fill_twin(rpc::Twin::Builder b, const twin_view& v, unit_map& units) {
  b.setId(v.meta.id);
  b.setKind(v.meta.kind);
  b.setParent(v.meta.parent);
  b.setChildren(static_cast<uint32_t>(v.children));
  auto& st = v.state;
  b.setModelVersion(st.model_version);
  b.setVersion(st.version);
  b.setHealth(static_cast<rpc::Health>(st.status));
  b.setScore(st.score);
  b.setLastDataMs(st.last_data_ms);
  auto ch = b.initChannels(static_cast<unsigned>(st.channels.size()));
  unsigned i = 0;
  for (auto& [name, value] : st.channels) {
    ch[i].setName(name);
    ch[i].setValue(value.value);
    ch[i].setTimestampMs(value.ts_ms);
    ch[i].setUnit(units.unit(v.meta.kind, name));
    ++i;
  }
  auto r = b.initRollup();
  auto& c = st.own;
  auto sums = r.initSums(static_cast<unsigned>(c.sums.size()));
  i = 0;
  for (auto& [k, val] : c.sums) {
    sums[i].setKey(k);
    sums[i].setValue(val);
    ++i;
  }
  r.setOk(c.counts[0]);
  r.setWarning(c.counts[1]);
  r.setAlarm(c.counts[2]);
  r.setStale(c.counts[3]);
  r.setScore(c.score());
  r.setWorstId(c.worst_id);
  r.setWorstHealth(static_cast<rpc::Health>(c.worst_status));
  auto stock = b.initStock(static_cast<unsigned>(st.stock.size()));
  i = 0;
  for (auto& [sku, units_held] : st.stock) {
    stock[i].setKey(sku);
    stock[i].setValue(static_cast<double>(units_held));
    ++i;
  }
  b.setEnergyKwh(st.energy_kwh);
  b.setEnergyTodayKwh(st.energy_today_kwh);
  auto derived = b.initDerived(static_cast<unsigned>(st.analytics.derived.size()));
  i = 0;
  for (auto& [name, val] : st.analytics.derived) {
    derived[i].setKey(name);
    derived[i].setValue(val);
    ++i;
  }
  auto warnings = b.initWarnings(static_cast<unsigned>(st.analytics.warnings.size()));
  for (i = 0; i < st.analytics.warnings.size(); ++i)
    warnings.set(i, st.analytics.warnings[i]);
}

// Runs blocking work off the event loop and brings the result back to it.
class worker_pool {
public:
  explicit worker_pool(size_t threads) : pool_(threads) {}
  ~worker_pool() { pool_.join(); }

  template <class T, class F>
  kj::Promise<T> run(F f) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    auto holder = std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<T>>>(kj::mv(paf.fulfiller));
    boost::asio::post(pool_, [holder, f = std::move(f)]() mutable {
      try {
        (*holder)->fulfill(f());
      } catch (kj::Exception& e) {
        (*holder)->reject(kj::mv(e));
      } catch (std::exception& e) {
        (*holder)->reject(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                        kj::str("internal error: ", e.what())));
      }
    });
    return kj::mv(paf.promise);
  }

private:
  boost::asio::thread_pool pool_;
};

// Brings an actor's answer (delivered on a CAF thread) back to the loop.
template <class T>
std::pair<kj::Promise<T>, std::function<void(T)>> bridge() {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
  auto holder = std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<T>>>(kj::mv(paf.fulfiller));
  return {kj::mv(paf.promise), [holder](T value) { (*holder)->fulfill(kj::mv(value)); }};
}

// What every capability of one server uses. Outlives them all; its pool
// joins before the node can go.
struct shared_state {
  shared_state(node& node_ref, kj::Timer& t, std::vector<rpc_token> token_list)
    : n(node_ref), timer(t), tokens(std::move(token_list)), check(entries(tokens)),
      login_failures(n.probe().adapter_series("twinrt_rpc_login_failures_total", {})),
      logins_delayed(n.probe().adapter_series("twinrt_rpc_logins_delayed_total", {})) {}
  node& n;
  kj::Timer& timer;
  std::vector<rpc_token> tokens;
  token_check check;
  login_throttle throttle;
  std::atomic<int64_t>& login_failures;
  std::atomic<int64_t>& logins_delayed;
  std::unique_ptr<audit_log> audit; // null: no data directory, no trail
  worker_pool pool{2}; // last: joins before what its jobs use goes

  static std::vector<token_check::entry> entries(const std::vector<rpc_token>& tokens) {
    std::vector<token_check::entry> out;
    for (auto& t : tokens)
      out.push_back({t.secret, t.secret_hash});
    return out;
  }
};

// Runs one RPC method and counts it in twinrt_rpc_requests_total and
// twinrt_rpc_request_duration_seconds, by method and result (the errc of
// its failure).
template <class F>
kj::Promise<void> timed(shared_state& shared, const char* method, F&& body) {
  auto t0 = std::chrono::steady_clock::now();
  auto seconds = [t0] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  return kj::evalNow(kj::fwd<F>(body))
    .then([&shared, method, seconds]() { shared.n.probe().rpc_done(method, "ok", seconds()); },
          [&shared, method, seconds](kj::Exception&& e) {
            auto code = code_of(e);
            const char* result = code == errc::overloaded          ? "overloaded"
                                 : code == errc::permission_denied ? "denied"
                                                                   : "error";
            shared.n.probe().rpc_done(method, result, seconds());
            if (code == errc::none)
              kj::throwFatalException(kj::mv(e));
            // Without the code: Cap'n Proto would show it the client.
            kj::throwFatalException(kj::Exception(e.getType(), e.getFile(), e.getLine(),
                                                  kj::heapString(e.getDescription())));
          });
}

// Records a call in the audit trail once it is answered: who, from where,
// what, and "ok" or the error the caller got. `detail` may be filled in by
// the call itself (an ingest's counts) before it is answered.
kj::Promise<void> audited(shared_state& shared, const session_rights& who, const char* action,
                          std::string target, std::shared_ptr<std::string> detail,
                          kj::Promise<void> call) {
  if (!shared.audit)
    return call;
  auto record = [&shared, token = who.token, peer = who.conn ? who.conn->peer : std::string{},
                 action, target = std::move(target), detail](std::string outcome) {
    audit_entry e;
    e.token = token;
    e.peer = peer;
    e.action = action;
    e.target = target;
    e.detail = *detail;
    e.outcome = std::move(outcome);
    shared.audit->append(std::move(e));
  };
  return call.then([record]() { record("ok"); },
                   [record](kj::Exception&& e) {
                     record(e.getDescription().cStr());
                     kj::throwFatalException(kj::mv(e));
                   });
}

kj::Promise<void> audited(shared_state& shared, const session_rights& who, const char* action,
                          std::string target, std::string detail, kj::Promise<void> call) {
  return audited(shared, who, action, std::move(target),
                 std::make_shared<std::string>(std::move(detail)), kj::mv(call));
}

// -- watching ------------------------------------------------------------------

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

// -- the capabilities ------------------------------------------------------------

class reader_impl : public rpc::Reader::Server {
public:
  reader_impl(session_rights rights, shared_state& shared)
    : rights_(std::move(rights)), shared_(shared) {}

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
      ctx.getResults().setSubscription(kj::heap<call_limited<subscription_impl>>(
        rights_.conn, shared_.n.watch(subtree, rights_.scope), ctx.getParams().getWatcher(),
        shared_));
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

private:
  session_rights rights_;
  shared_state& shared_;
};

class writer_impl : public rpc::Writer::Server {
public:
  writer_impl(session_rights rights, shared_state& shared)
    : rights_(std::move(rights)), shared_(shared) {}

  kj::Promise<void> ingest(IngestContext ctx) override {
    auto detail = std::make_shared<std::string>();
    // Named for the trail only when there is one: no work per batch otherwise.
    auto target = shared_.audit ? batch_target(ctx.getParams().getSamples(), *detail) : "";
    return audited(shared_, rights_, "ingest", std::move(target), detail,
                   timed(shared_, "ingest", [&] { return do_ingest(ctx, detail); }));
  }

  // The audit trail's target of a batch ("acme/m1" or "acme/m1 and 3 more
  // twins"); `detail` gets its size.
  static std::string batch_target(capnp::List<rpc::Sample>::Reader in, std::string& detail) {
    detail = std::to_string(in.size()) + " samples";
    if (in.size() == 0)
      return "";
    std::string first = text(in[0].getTwin());
    std::vector<std::string_view> others;
    for (auto s : in) {
      std::string_view id(s.getTwin().cStr(), s.getTwin().size());
      if (id != first)
        others.push_back(id);
    }
    std::sort(others.begin(), others.end());
    auto distinct = std::unique(others.begin(), others.end()) - others.begin();
    return distinct == 0 ? first : first + " and " + std::to_string(distinct) + " more twins";
  }

  kj::Promise<void> do_ingest(IngestContext ctx, std::shared_ptr<std::string> detail) {
    allowed();
    auto in = ctx.getParams().getSamples();
    // Samples outside the token's scope are refused here, as unknown twins;
    // the rest go to the node with their positions remembered.
    std::vector<twins::sample> batch;
    std::vector<uint32_t> position;
    std::vector<twins::rejection> refused;
    batch.reserve(in.size());
    std::vector<bool> seen;
    if (!rights_.scope.empty()) {
      std::vector<std::string_view> ids;
      ids.reserve(in.size());
      for (auto s : in)
        ids.emplace_back(s.getTwin().cStr(), s.getTwin().size());
      seen = rights_.sees(ids);
    }
    for (uint32_t i = 0; i < in.size(); ++i) {
      auto s = in[i];
      auto twin = text(s.getTwin());
      if (!seen.empty() && !seen[i]) {
        refused.push_back({i, twins::reject_reason::unknown_twin,
                           "sample " + std::to_string(i) + " for " + twin + "."
                             + text(s.getChannel()) + ": no twin " + twin});
        continue;
      }
      batch.push_back({std::move(twin), text(s.getChannel()), s.getTimestampMs(), s.getValue(),
                       text(s.getSource()), s.getSeq()});
      position.push_back(i);
    }
    auto [promise, done] = bridge<caf::expected<twins::ingest_result>>();
    shared_.n.ingest_async(std::move(batch), std::move(done));
    return promise.then([ctx, detail, position = std::move(position),
                         refused = std::move(refused)](caf::expected<twins::ingest_result> r) mutable {
      if (!r)
        fail(r.error());
      for (auto& rej : r->rejected) {
        auto original = position[rej.index];
        // Messages name the position in the batch the caller sent.
        auto prefix = "sample " + std::to_string(rej.index) + " ";
        if (rej.message.rfind(prefix, 0) == 0)
          rej.message = "sample " + std::to_string(original) + " " + rej.message.substr(prefix.size());
        rej.index = original;
        refused.push_back(std::move(rej));
      }
      std::sort(refused.begin(), refused.end(),
                [](auto& a, auto& b) { return a.index < b.index; });
      *detail += ": accepted " + std::to_string(r->accepted) + ", rejected "
                 + std::to_string(refused.size());
      auto res = ctx.getResults();
      res.setAccepted(r->accepted);
      auto list = res.initRejected(static_cast<unsigned>(refused.size()));
      for (unsigned i = 0; i < refused.size(); ++i) {
        list[i].setIndex(refused[i].index);
        list[i].setReason(twins::to_string(refused[i].reason));
        list[i].setMessage(refused[i].message);
      }
    });
  }

  kj::Promise<void> createTwin(CreateTwinContext ctx) override {
    auto p = ctx.getParams();
    return audited(shared_, rights_, "twin.create", text(p.getId()),
                   "kind " + text(p.getKind()) + ", parent " + text(p.getParent()),
                   timed(shared_, "createTwin", [&] { return do_createTwin(ctx); }));
  }

  kj::Promise<void> do_createTwin(CreateTwinContext ctx) {
    allowed();
    auto p = ctx.getParams();
    twin_spec spec{text(p.getId()), text(p.getKind()), text(p.getParent())};
    // A scoped token creates twins under a parent in its scope; a parent
    // outside it is answered as a missing one (as node::create words it).
    if (!rights_.scope.empty() && spec.parent.empty())
      fail(errc::permission_denied, "permission denied: token '" + rights_.token
                                      + "' may create " + spec.id
                                      + " only under a parent in " + rights_.scope);
    if (!spec.parent.empty() && !rights_.sees(spec.parent))
      fail(errc::unknown_twin, "twin " + spec.id + ": no parent twin " + spec.parent);
    return blocking([&n = shared_.n, spec] { return n.create({spec}); });
  }

  kj::Promise<void> deleteTwin(DeleteTwinContext ctx) override {
    return audited(shared_, rights_, "twin.delete", text(ctx.getParams().getId()), "",
                   timed(shared_, "deleteTwin", [&] { return do_deleteTwin(ctx); }));
  }

  kj::Promise<void> do_deleteTwin(DeleteTwinContext ctx) {
    allowed();
    auto id = text(ctx.getParams().getId());
    rights_.check(id);
    return blocking([&n = shared_.n, id] { return n.remove(id); });
  }

  kj::Promise<void> reparent(ReparentContext ctx) override {
    return audited(shared_, rights_, "twin.reparent", text(ctx.getParams().getId()),
                   "parent " + text(ctx.getParams().getParent()),
                   timed(shared_, "reparent", [&] { return do_reparent(ctx); }));
  }

  kj::Promise<void> ackAlert(AckAlertContext ctx) override {
    return audited(shared_, rights_, "alert.ack", std::to_string(ctx.getParams().getId()),
                   "note " + text(ctx.getParams().getNote()),
                   timed(shared_, "ackAlert", [&] { return do_ackAlert(ctx); }));
  }

  kj::Promise<void> do_ackAlert(AckAlertContext ctx) {
    allowed();
    auto id = ctx.getParams().getId();
    auto note = text(ctx.getParams().getNote());
    return shared_.pool
      .run<caf::expected<alert_record>>(
        [&n = shared_.n, rights = rights_, id, note]() -> caf::expected<alert_record> {
          auto a = n.store().load_alert(id);
          if (!a || !rights.sees(a->twin)) // outside the scope: as if it did not exist
            return make_error(errc::unknown_twin, "no alert " + std::to_string(id));
          return n.ack_alert(id, rights.token, note);
        })
      .then([ctx](caf::expected<alert_record> r) mutable {
        if (!r)
          fail(r.error());
        fill_alert(ctx.getResults().initAlert(), *r);
      });
  }

  kj::Promise<void> do_reparent(ReparentContext ctx) {
    allowed();
    auto id = text(ctx.getParams().getId());
    auto parent = text(ctx.getParams().getParent());
    rights_.check(id);
    rights_.check(parent);
    return blocking([&n = shared_.n, id, parent] { return n.reparent(id, parent); });
  }

private:
  void allowed() const {
    if (rights_.r < role::write)
      fail(errc::permission_denied,
           "permission denied: token '" + rights_.token + "' may not write");
  }

  template <class F>
  kj::Promise<void> blocking(F f) {
    return shared_.pool.run<caf::error>(std::move(f)).then([](caf::error e) {
      if (e)
        fail(e);
    });
  }

  session_rights rights_;
  shared_state& shared_;
};

class admin_impl : public rpc::Admin::Server {
public:
  admin_impl(session_rights rights, shared_state& shared)
    : rights_(std::move(rights)), shared_(shared) {}

  kj::Promise<void> loadModels(LoadModelsContext ctx) override {
    std::string names;
    for (auto f : ctx.getParams().getFiles())
      names += (names.empty() ? "" : ", ") + text(f.getName());
    auto detail = std::make_shared<std::string>(
      std::to_string(ctx.getParams().getFiles().size()) + " files");
    return audited(shared_, rights_, "models.load", std::move(names), detail,
                   timed(shared_, "loadModels", [&] { return do_loadModels(ctx, detail); }));
  }

  kj::Promise<void> audit(AuditContext ctx) override {
    return timed(shared_, "audit", [&] { return do_audit(ctx); });
  }

  kj::Promise<void> do_audit(AuditContext ctx) {
    if (rights_.r < role::admin)
      fail(errc::permission_denied,
           "permission denied: token '" + rights_.token + "' may not read the audit trail");
    if (!shared_.audit)
      fail(errc::unavailable, "this node keeps no audit trail (it has no data directory)");
    audit_filter f;
    f.since_ms = ctx.getParams().getSinceMs();
    f.token = text(ctx.getParams().getToken());
    auto limit = ctx.getParams().getLimit();
    if (limit > 100'000)
      fail(errc::bad_request, "limit " + std::to_string(limit) + " is over the limit of 100000 entries");
    f.limit = limit == 0 ? 1000 : limit;
    return shared_.pool
      .run<std::vector<audit_entry>>([&log = *shared_.audit, f] { return log.read(f); })
      .then([ctx](std::vector<audit_entry> entries) mutable {
        auto list = ctx.getResults().initEntries(static_cast<unsigned>(entries.size()));
        for (unsigned i = 0; i < entries.size(); ++i) {
          auto& e = entries[i];
          auto out = list[i];
          out.setSeq(e.seq);
          out.setTimeMs(e.ts_ms);
          out.setToken(e.token);
          out.setPeer(e.peer);
          out.setAction(e.action);
          out.setTarget(e.target);
          out.setDetail(e.detail);
          out.setOutcome(e.outcome);
        }
      });
  }

  kj::Promise<void> do_loadModels(LoadModelsContext ctx, std::shared_ptr<std::string> detail) {
    if (rights_.r < role::admin)
      fail(errc::permission_denied,
           "permission denied: token '" + rights_.token + "' may not load models");
    std::vector<std::pair<std::string, std::string>> files;
    for (auto f : ctx.getParams().getFiles())
      files.emplace_back(text(f.getName()), text(f.getText()));
    return shared_.pool
      .run<model_load>([&n = shared_.n, files] { return n.reload_model_texts(files); })
      .then([ctx, detail](model_load load) mutable {
        *detail += ": refused " + std::to_string(load.refused.size()) + ", warnings "
                   + std::to_string(load.warnings.size());
        auto res = ctx.getResults();
        auto refused = res.initRefused(static_cast<unsigned>(load.refused.size()));
        for (unsigned i = 0; i < load.refused.size(); ++i)
          refused.set(i, load.refused[i]);
        auto warnings = res.initWarnings(static_cast<unsigned>(load.warnings.size()));
        for (unsigned i = 0; i < load.warnings.size(); ++i)
          warnings.set(i, load.warnings[i]);
      });
  }

private:
  session_rights rights_;
  shared_state& shared_;
};

// The bootstrap capability of one connection. A login is checked against
// every token in constant time (hashed ones on the worker pool: PBKDF2 takes
// milliseconds); refusals are counted and slow down the next logins from the
// same address (login_throttle).
class gateway_impl : public rpc::Gateway::Server {
public:
  gateway_impl(std::shared_ptr<connection_state> conn, shared_state& shared)
    : conn_(std::move(conn)), shared_(shared) {}

  kj::Promise<void> login(LoginContext ctx) override {
    return timed(shared_, "login", [&] { return do_login(ctx); });
  }

  kj::Promise<void> do_login(LoginContext ctx) {
    auto secret = text(ctx.getParams().getToken());
    auto wait = shared_.throttle.before_login(conn_->peer, std::chrono::steady_clock::now());
    if (wait.count() <= 0)
      return check(ctx, std::move(secret));
    shared_.logins_delayed.fetch_add(1, std::memory_order_relaxed);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    return shared_.timer.afterDelay(ns * kj::NANOSECONDS)
      .then([this, ctx, secret = std::move(secret)]() mutable { return check(ctx, secret); });
  }

private:
  kj::Promise<void> check(LoginContext ctx, std::string secret) {
    if (secret.empty())
      refuse("permission denied: no token given");
    if (auto i = shared_.check.find_fast(secret)) {
      accept(ctx, *i);
      return kj::READY_NOW;
    }
    if (!shared_.check.has_unverified_hashes())
      refuse("permission denied: unknown token");
    return shared_.pool
      .run<std::optional<size_t>>([&check = shared_.check, secret] { return check.find(secret); })
      .then([this, ctx](std::optional<size_t> i) mutable {
        if (!i)
          refuse("permission denied: unknown token");
        accept(ctx, *i);
      });
  }

  [[noreturn]] void refuse(const std::string& why) {
    shared_.login_failures.fetch_add(1, std::memory_order_relaxed);
    shared_.throttle.failed(conn_->peer, std::chrono::steady_clock::now());
    fail(why);
  }

  void accept(LoginContext ctx, size_t index) {
    auto& t = shared_.tokens[index];
    shared_.throttle.succeeded(conn_->peer);
    conn_->logged_in = true;
    session_rights rights{shared_.n, t.name,
                          t.role == "admin" ? role::admin
                          : t.role == "write" ? role::write
                                              : role::read,
                          t.scope, conn_};
    auto s = ctx.getResults().initSession();
    s.setTokenName(t.name);
    s.setRole(static_cast<rpc::Role>(rights.r));
    s.setScope(t.scope);
    s.setReader(kj::heap<call_limited<reader_impl>>(conn_, rights, shared_));
    s.setWriter(kj::heap<call_limited<writer_impl>>(conn_, rights, shared_));
    s.setAdmin(kj::heap<call_limited<admin_impl>>(conn_, rights, shared_));
  }

  std::shared_ptr<connection_state> conn_;
  shared_state& shared_;
};

} // namespace

// The listener's settings from [rpc] and [rpc.tls].
rpc_listen_settings listen_settings(const node_config& cfg) {
  rpc_listen_settings s;
  s.certificate_file = cfg.rpc_tls_certificate;
  s.private_key_file = cfg.rpc_tls_private_key;
  s.plaintext = cfg.rpc_plaintext;
  s.max_connections = std::max<uint32_t>(cfg.rpc_max_connections, 1);
  s.max_calls_in_flight = std::max<uint32_t>(cfg.rpc_max_calls_in_flight, 1);
  s.max_message_bytes = cfg.rpc_max_message_bytes;
  s.login_timeout_ms = std::max<int64_t>(cfg.rpc_login_timeout_ms, 1);
  return s;
}

struct rpc_server::impl {
  std::thread loop;
  std::mutex mtx;
  std::condition_variable cv;
  bool ready = false;
  std::string bound;
  std::string error;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop;

  ~impl() {
    {
      std::lock_guard<std::mutex> g(mtx);
      if (stop)
        stop->fulfill();
    }
    if (loop.joinable())
      loop.join();
  }
};

rpc_server::rpc_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

rpc_server::~rpc_server() = default;

const std::string& rpc_server::address() const {
  return impl_->bound;
}

caf::expected<std::unique_ptr<rpc_server>>
rpc_server::start(node& n, const std::string& address, std::vector<rpc_token> tokens) {
  for (auto& t : tokens) {
    if (t.name.empty() || (t.secret.empty() && t.secret_hash.empty()))
      return make_error(errc::bad_request, "rpc token '" + t.name
                                             + "' needs a name and a secret (or secret_hash)");
    if (!t.secret_hash.empty())
      if (auto why = check_secret_hash(t.secret_hash))
        return make_error(errc::bad_request,
                          "rpc token '" + t.name + "': secret_hash is malformed: " + *why);
    if (t.role != "read" && t.role != "write" && t.role != "admin")
      return make_error(errc::bad_request, "rpc token '" + t.name + "': role '" + t.role
                                             + "' is not read, write or admin");
  }
  auto settings = listen_settings(n.config());
  auto colon = address.rfind(':');
  auto host = colon == std::string::npos ? address : address.substr(0, colon);
  if (auto why = check_transport(address, host, settings))
    return make_error(errc::bad_request, "cannot serve RPC: " + *why);
  // The audit trail lives beside the node's data (audit_log.hpp).
  std::unique_ptr<audit_log> trail;
  if (!n.config().data_dir.empty()) {
    auto opened = audit_log::open(std::filesystem::path(n.config().data_dir) / "audit",
                                  n.config().audit_max_mb << 20);
    if (!opened)
      return opened.error();
    trail = std::move(*opened);
  }
  auto p = std::make_unique<impl>();
  auto* raw = p.get();
  p->loop = std::thread([raw, &n, address, host, settings, tokens = std::move(tokens),
                         trail = std::move(trail)]() mutable {
    try {
      auto colon = address.rfind(':');
      auto port = colon == std::string::npos ? 0u : static_cast<uint>(std::stoul(address.substr(colon + 1)));
      auto io = kj::setupAsyncIo();
      auto& ws = io.waitScope;
      shared_state shared(n, io.provider->getTimer(), std::move(tokens));
      shared.audit = std::move(trail);
      rpc_listener connections(
        io.provider->getTimer(), settings, n.probe(),
        [&shared](std::shared_ptr<connection_state> conn) -> capnp::Capability::Client {
          return kj::heap<call_limited<gateway_impl>>(conn, conn, shared);
        });
      auto listener = io.provider->getNetwork().parseAddress(host, port).wait(ws)->listen();
      auto bound_port = listener->getPort();
      auto accepting = connections.listen(*listener).eagerlyEvaluate([](kj::Exception&& e) {
        std::fprintf(stderr, "twinrt rpc: no longer accepting: %s\n", e.getDescription().cStr());
      });
      auto stop = kj::newPromiseAndCrossThreadFulfiller<void>();
      {
        std::lock_guard<std::mutex> g(raw->mtx);
        raw->bound = host + ":" + std::to_string(bound_port);
        raw->stop = kj::mv(stop.fulfiller);
        raw->ready = true;
      }
      raw->cv.notify_all();
      stop.promise.wait(ws);
    } catch (kj::Exception& e) {
      std::lock_guard<std::mutex> g(raw->mtx);
      raw->error = "cannot serve RPC on " + address + ": " + e.getDescription().cStr();
      raw->ready = true;
      raw->cv.notify_all();
    } catch (std::exception& e) {
      std::lock_guard<std::mutex> g(raw->mtx);
      raw->error = "cannot serve RPC on " + address + ": " + e.what();
      raw->ready = true;
      raw->cv.notify_all();
    }
  });
  {
    std::unique_lock<std::mutex> g(p->mtx);
    p->cv.wait(g, [&] { return p->ready; });
  }
  if (!p->error.empty()) {
    auto why = p->error;
    p->loop.join();
    return make_error(errc::bad_request, why);
  }
  return std::unique_ptr<rpc_server>(new rpc_server(std::move(p)));
}

} // namespace twinrt::runtime
