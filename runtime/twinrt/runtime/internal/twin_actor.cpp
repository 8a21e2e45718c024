#include <chrono>
#include <limits>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "twinrt/runtime/internal/actors.hpp"
#include "twinrt/runtime/internal/messages.hpp"

namespace twinrt::runtime::internal {

namespace {

constexpr int64_t no_pending = std::numeric_limits<int64_t>::max();

struct twin_actor_state {
  caf::stateful_actor<twin_actor_state>* self = nullptr;
  std::shared_ptr<node_context> ctx;
  twin_meta meta;
  twins::twin_state st;
  twins::model_set::model_ptr model;
  std::map<std::string, twins::contribution> children;
  std::map<std::string, uint64_t> child_versions;
  bool is_parent = false;    // has (had) children: keeps a fold
  bool fold_needed = false;  // a child's contribution changed
  bool push_needed = false;  // our contribution changed since the last push
  bool flush_scheduled = false;
  int64_t oldest_pending_ts = no_pending;
  uint64_t published_version = 0; // last version handed to watchers
  uint64_t viewed_version = 0;    // version last compared with the view cache
  std::string viewed_parent;

  static inline const char* name = "twin";

  ~twin_actor_state() {
    if (ctx)
      ctx->views.erase(meta.id);
  }

  void init(std::optional<twins::twin_state> preset) {
    model = ctx->model_of(meta.kind);
    if (preset) {
      st = std::move(*preset);
    } else if (auto stored = ctx->db->load_state(meta.number)) {
      st = std::move(*stored);
    } else {
      st.last_data_ms = now_ms();
      st.own = twins::own_contribution(st, *model, meta.id);
    }
    load_children();
    if (st.model_version != model->version && st.version > 0)
      apply_model();
    ctx->probe->twin_activated(meta.kind);
  }

  void load_children() {
    for (auto& child : ctx->cat.children(meta.id)) {
      auto m = ctx->cat.find(child);
      if (!m)
        continue;
      auto s = ctx->db->load_state(m->number);
      children[child] = s ? s->own : twins::contribution{};
      child_versions[child] = s ? s->version : 0;
    }
    is_parent = ctx->cat.child_count(meta.id) > 0;
    if (!children.empty())
      fold_needed = true, schedule_flush();
  }

  bool has_children() const {
    return is_parent;
  }

  void schedule_flush() {
    if (flush_scheduled)
      return;
    flush_scheduled = true;
    self->delayed_send(self, std::chrono::milliseconds(ctx->cfg.rollup_delay_ms),
                       flush_atom::value);
  }

  void note_pending(int64_t ts) {
    oldest_pending_ts = std::min(oldest_pending_ts, ts);
  }

  apply_reply apply(const apply_request& req) {
    model = ctx->model_of(meta.kind);
    apply_reply r;
    r.number = meta.number;
    twins::sample_limits limits{ctx->cfg.future_skew_ms};
    r.rejected = twins::apply_samples(st, *model, meta.id, *req.batch, req.indices,
                                      req.now_ms, limits, r.applied);
    if (!r.applied.empty()) {
      for (auto i : r.applied)
        note_pending((*req.batch)[i].ts_ms);
      if (has_children())
        fold_needed = true;
      push_needed = true;
      schedule_flush();
      r.state_bytes = storage::encode_state(st);
    }
    r.model_version = model->version;
    r.last_data_ms = st.last_data_ms;
    r.status = st.status;
    return r;
  }

  void on_contribution(contrib_msg& m) {
    if (!ctx->cat.parent_is(m.child, meta.id))
      return; // moved away, or gone: its contribution is no longer ours
    auto& v = child_versions[m.child];
    if (m.version <= v && children.count(m.child))
      return; // redelivered or older: the fold already has it
    v = m.version;
    is_parent = true;
    children[m.child] = std::move(m.value);
    note_pending(m.oldest_ts_ms);
    fold_needed = true;
    schedule_flush();
  }

  void on_drop(const std::string& child) {
    if (children.erase(child) > 0) {
      child_versions.erase(child);
      fold_needed = true;
      schedule_flush();
    }
  }

  void persist() {
    self->send(ctx->shard_for(meta.id), persist_atom::value,
               persist_msg{meta.id, meta.number, storage::encode_state(st),
                           st.last_data_ms, st.status});
  }

  void flush() {
    flush_scheduled = false;
    auto now = now_ms();
    if (fold_needed) {
      fold_needed = false;
      model = ctx->model_of(meta.kind);
      if (twins::refold(st, *model, meta.id, children, now)) {
        persist();
        push_needed = true;
      }
      if (oldest_pending_ts != no_pending)
        ctx->probe->rollup_lag(meta.kind, now - oldest_pending_ts);
    }
    if (push_needed && !meta.parent.empty()) {
      self->send(ctx->shard_for(meta.parent), contrib_atom::value,
                 contrib_msg{meta.parent, meta.id, st.version, st.own,
                             oldest_pending_ts == no_pending ? now : oldest_pending_ts});
    }
    push_needed = false;
    oldest_pending_ts = no_pending;
    publish();
  }

  // Tells watchers (RPC subscriptions) about the new state, once per flush.
  void publish() {
    if (!ctx->feed.watched() || st.version == published_version)
      return;
    published_version = st.version;
    ctx->feed.publish(twin_change{meta, ctx->cat.child_count(meta.id), st});
  }

  // Re-evaluates health and contribution under the model in force now.
  void apply_model() {
    model = ctx->model_of(meta.kind);
    auto before = st;
    twins::refresh_analytics(st, *model, nullptr); // new thresholds, rules, minimums
    twins::evaluate_health(st, *model, now_ms());
    st.own = twins::own_contribution(st, *model, meta.id);
    st.model_version = model->version;
    if (has_children())
      fold_needed = true;
    if (!(st == before)) {
      ++st.version;
      persist();
      push_needed = true;
    }
    schedule_flush();
  }

  void check_stale(int64_t now) {
    model = ctx->model_of(meta.kind);
    if (twins::evaluate_health(st, *model, now)) {
      st.own = twins::own_contribution(st, *model, meta.id);
      ++st.version;
      if (has_children())
        fold_needed = true;
      persist();
      push_needed = true;
      schedule_flush();
    }
  }

  void reparent(const std::string& new_parent) {
    if (!meta.parent.empty())
      self->send(ctx->shard_for(meta.parent), drop_atom::value, meta.parent, meta.id);
    meta.parent = new_parent;
    push_needed = true;
    schedule_flush();
  }

  twin_view view() const {
    twin_view v{meta, ctx->cat.child_count(meta.id), st, true};
    // A move is in the catalog before the reparent message reaches us.
    if (auto m = ctx->cat.find(meta.id))
      v.meta.parent = m->parent;
    return v;
  }

  // Answers a get, and from now on keeps this twin's entry in the view cache
  // current (see view_cache.hpp).
  twin_view view_for_get() {
    auto v = view();
    if (ctx->views.enabled()) {
      ctx->views.put(meta.id, std::make_shared<const twin_view>(v));
      viewed_version = st.version, viewed_parent = meta.parent;
    }
    return v;
  }

  // Runs after every message: a changed twin replaces its cached view, if it
  // has one.
  void sync_view() {
    if (st.version == viewed_version && meta.parent == viewed_parent)
      return;
    viewed_version = st.version, viewed_parent = meta.parent;
    if (ctx->views.contains(meta.id))
      ctx->views.put(meta.id, std::make_shared<const twin_view>(view()));
  }

  passivate_reply passivate() {
    if (flush_scheduled || fold_needed || push_needed || has_children())
      return {false, {}};
    ctx->probe->twin_passivated(meta.kind);
    self->quit();
    return {true, st};
  }
};

caf::behavior twin_actor(caf::stateful_actor<twin_actor_state>* self,
                         std::shared_ptr<node_context> ctx, twin_meta meta,
                         std::optional<twins::twin_state> preset) {
  auto& s = self->state;
  s.self = self;
  s.ctx = std::move(ctx);
  s.meta = std::move(meta);
  s.init(std::move(preset));
  // Every handler that may change the twin ends with sync_view().
  return {
    [=](apply_atom, const apply_request& req) {
      auto r = self->state.apply(req);
      self->state.sync_view();
      return r;
    },
    [=](contrib_atom, contrib_msg& m) { self->state.on_contribution(m); },
    [=](drop_atom, const std::string& child) { self->state.on_drop(child); },
    [=](get_atom) { return self->state.view_for_get(); },
    [=](get_atom, const get_done_ptr& done) { (*done)(self->state.view_for_get()); },
    [=](flush_atom) {
      self->state.flush();
      self->state.sync_view();
    },
    [=](stale_atom, int64_t now) {
      self->state.check_stale(now);
      self->state.sync_view();
    },
    [=](reparent_atom, const std::string& p) {
      self->state.reparent(p);
      self->state.sync_view();
    },
    [=](model_atom) {
      self->state.apply_model();
      self->state.sync_view();
    },
    [=](passivate_atom) { return self->state.passivate(); },
  };
}

} // namespace

caf::actor spawn_twin(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                      twin_meta meta, std::optional<twins::twin_state> preset) {
  return sys.spawn(twin_actor, std::move(ctx), std::move(meta), std::move(preset));
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace twinrt::runtime::internal
