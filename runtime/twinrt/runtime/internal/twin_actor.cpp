#include <chrono>
#include <limits>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "twinrt/runtime/events.hpp"
#include "twinrt/runtime/internal/actors.hpp"
#include "twinrt/runtime/messages.hpp"
#include "twinrt/twins/predicate.hpp"

namespace twinrt::runtime::internal {

namespace {

constexpr int64_t no_pending = std::numeric_limits<int64_t>::max();

struct twin_actor_state {
  twin_actor::stateful_pointer<twin_actor_state> self = nullptr;
  std::shared_ptr<node_context> ctx;
  shard_actor shard; // holds this twin; writes go there
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
  std::string published_parent;   // parent when last handed to watchers
  uint64_t indexed_version = 0;   // version last written to the query index
  bool viewed = false;            // a get put our view in the cache (it may since be evicted)
  uint64_t viewed_version = 0;    // version of the cached view
  std::string viewed_parent;
  twin_outbox outbox;               // events and alerts for the next write
  int64_t alert_check_at = no_pending; // a delayed alert_atom is on its way for then
  std::vector<std::string> pending_drops; // former parents not told yet: no owner when we tried

  static inline const char* name = "twin";

  ~twin_actor_state() {
    if (ctx)
      ctx->views.erase(meta.id);
  }

  void init(std::optional<twins::twin_state> preset) {
    model = ctx->model_of(meta.kind);
    if (preset) {
      st = std::move(*preset);
    } else if (auto stored = ctx->db->load_state(meta)) {
      st = std::move(*stored);
    } else {
      st.created_ms = ctx->now_ms();
      st.own = twins::own_contribution(st, *model, meta.id);
    }
    // The index holds what was stored or handed over: a passivated twin's
    // last state, written before it passivated (or at start-up).
    indexed_version = st.version;
    load_children();
    if (st.model_version != model->version && st.version > 0)
      apply_model();
    ctx->probe->twin_activated(meta.kind);
    sync_index();
  }

  void load_children() {
    for (auto& child : ctx->cat.children(meta.id)) {
      auto m = ctx->cat.find(child);
      if (!m)
        continue;
      auto s = ctx->db->load_state(*m);
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
    auto before = st.status;
    apply_reply r;
    r.number = meta.number;
    twins::sample_limits limits{ctx->cfg.future_skew_ms};
    r.rejected = twins::apply_samples(st, *model, meta.id, req.batch.samples(), req.indices,
                                      req.now_ms, limits, r.applied);
    if (!r.applied.empty()) {
      for (auto i : r.applied)
        note_pending(req.batch[i].ts_ms);
      if (has_children())
        fold_needed = true;
      push_needed = true;
      schedule_flush();
      run_alerts(before, req.now_ms);
      r.state_bytes = storage::encode_state(st);
      r.out = std::move(outbox);
      outbox = {};
    }
    r.model_version = model->version;
    r.last_data_ms = twins::data_since_ms(st);
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

  persist_msg take_persist() {
    persist_msg m{meta.id,   meta.number,      storage::encode_state(st), twins::data_since_ms(st),
                  st.status, std::move(outbox)};
    outbox = {};
    return m;
  }

  void persist() {
    self->send(shard, persist_atom::value, take_persist());
  }

  // -- alerts and events ---------------------------------------------------------

  std::optional<double> value_named(std::string_view name, int64_t now) const {
    if (name == "data_age_s") // as the staleness rule counts it
      return static_cast<double>(now - twins::data_since_ms(st)) / 1000.0;
    return twins::value_of(st, name);
  }

  const twins::alert_rule* rule_named(std::string_view name) const {
    for (auto& r : model->alerts)
      if (r.name == name)
        return &r;
    return nullptr;
  }

  // After a change: notes a health transition and runs the alert rules,
  // queueing events and alert records in the outbox. Returns true when the
  // alert tracks changed.
  bool run_alerts(twins::health_status before, int64_t now) {
    if (st.status != before)
      outbox.events.push_back(
        make_health_event(meta.id, meta.kind, before, st.status, st.score, now));
    auto old = st.alerts;
    auto changes = twins::evaluate_alerts(
      st.alerts, model->alerts, [&](std::string_view n) { return value_named(n, now); }, now,
      [&] { return ctx->next_alert_id.fetch_add(1); });
    for (auto& c : changes) {
      bool raised = c.kind == twins::alert_transition::what::raised;
      alert_record rec;
      if (auto* rule = rule_named(c.rule)) {
        rec = make_alert_record(meta.id, meta.kind, *rule, c.track,
                                raised ? twins::alert_phase::raised : twins::alert_phase::idle);
      } else if (auto stored = ctx->db->load_alert(c.track.alert_id)) {
        rec = std::move(*stored); // its rule left the model
        rec.state = twins::alert_phase::idle;
      } else {
        continue;
      }
      if (!raised)
        rec.cleared_ms = now, rec.cleared_value = c.value;
      ctx->probe->alert_changed(rec.sev, raised ? 1 : -1);
      outbox.events.push_back(make_alert_event(rec, raised ? "raised" : "cleared", c.value, now));
      outbox.alerts.push_back(std::move(rec));
    }
    schedule_alert_check(now);
    return !(old == st.alerts);
  }

  // A rule waiting out its hold time is checked again when the hold ends,
  // new data or not.
  void schedule_alert_check(int64_t now) {
    auto at = twins::next_alert_check(st.alerts, model->alerts);
    if (at == std::numeric_limits<int64_t>::max() || at >= alert_check_at)
      return;
    alert_check_at = at;
    self->delayed_send(self, std::chrono::milliseconds(std::max<int64_t>(0, at - now) + 1),
                       alert_atom::value);
  }

  void check_alerts() {
    alert_check_at = no_pending;
    model = ctx->model_of(meta.kind);
    if (run_alerts(st.status, ctx->now_ms()) || !outbox.empty()) {
      ++st.version;
      persist();
    }
  }

  // Answered (by the shard) with the acknowledged record once it is durable.
  caf::result<alert_record> acknowledge(const ack_request& req) {
    auto now = ctx->now_ms();
    model = ctx->model_of(meta.kind);
    auto rule_name = twins::acknowledge_alert(st.alerts, req.alert, req.by, req.note, now);
    const twins::alert_rule* rule = rule_name ? rule_named(*rule_name) : nullptr;
    if (!rule)
      return make_error(errc::conflict, "alert " + std::to_string(req.alert)
                                          + " is not open on " + meta.id);
    auto& t = st.alerts[*rule_name];
    auto rec = make_alert_record(meta.id, meta.kind, *rule, t, twins::alert_phase::acknowledged);
    outbox.events.push_back(make_alert_event(
      rec, "acknowledged", value_named(rule->value, now).value_or(t.value), now));
    outbox.alerts.push_back(rec);
    ++st.version;
    auto rp = self->template make_response_promise<alert_record>();
    return rp.delegate(shard, persist_atom::value, take_persist(), std::move(rec));
  }

  void flush() {
    flush_scheduled = false;
    auto now = ctx->now_ms();
    if (fold_needed) {
      fold_needed = false;
      model = ctx->model_of(meta.kind);
      auto before = st.status;
      if (twins::refold(st, *model, meta.id, children, now)) {
        run_alerts(before, now);
        persist();
        push_needed = true;
      }
      if (oldest_pending_ts != no_pending)
        ctx->probe->rollup_lag(meta.kind, now - oldest_pending_ts);
    }
    send_drops();
    if (push_needed && !meta.parent.empty()) {
      if (auto owner = ctx->directory->owner_of(meta.parent)) {
        self->send(*owner, contrib_atom::value,
                   contrib_msg{meta.parent, meta.id, st.version, st.own,
                               oldest_pending_ts == no_pending ? now : oldest_pending_ts});
      } else {
        schedule_flush(); // the parent's shard has no owner now: try again later
        publish();
        return;
      }
    }
    push_needed = false;
    oldest_pending_ts = no_pending;
    publish();
  }

  // Tells former parents, whose shard had no owner when we moved, that we
  // left; keeps those that still have none for the next flush.
  void send_drops() {
    std::vector<std::string> still;
    for (auto& parent : pending_drops) {
      if (auto owner = ctx->directory->owner_of(parent))
        self->send(*owner, drop_atom::value, parent, meta.id);
      else
        still.push_back(std::move(parent));
    }
    pending_drops = std::move(still);
    if (!pending_drops.empty())
      schedule_flush();
  }

  // Tells watchers (RPC subscriptions) about the new state, once per flush;
  // a move is news too (watchers of the new parent's tree see the twin now).
  void publish() {
    if (!ctx->feed.watched()
        || (st.version == published_version && meta.parent == published_parent))
      return;
    published_version = st.version;
    published_parent = meta.parent;
    ctx->feed.publish(twin_change{meta, ctx->cat.child_count(meta.id), st});
  }

  // Re-evaluates health and contribution under the model in force now.
  void apply_model() {
    model = ctx->model_of(meta.kind);
    auto before = st;
    auto now = ctx->now_ms();
    twins::refresh_analytics(st, *model, nullptr); // new thresholds, rules, minimums
    twins::evaluate_health(st, *model, now);
    st.own = twins::own_contribution(st, *model, meta.id);
    st.model_version = model->version;
    run_alerts(before.status, now);
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
    auto before = st.status;
    if (twins::evaluate_health(st, *model, now)) {
      st.own = twins::own_contribution(st, *model, meta.id);
      ++st.version;
      if (has_children())
        fold_needed = true;
      run_alerts(before, now);
      persist();
      push_needed = true;
      schedule_flush();
    } else if (run_alerts(before, now)) {
      ++st.version;
      persist();
    }
  }

  void reparent(const std::string& new_parent) {
    if (!meta.parent.empty()) {
      pending_drops.push_back(meta.parent);
      send_drops();
    }
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
      viewed = true, viewed_version = st.version, viewed_parent = meta.parent;
    }
    return v;
  }

  // Runs after every message: a changed twin replaces its cached view, if it
  // has one. A twin never read costs a flag test, not a lock.
  void sync_view() {
    if (!viewed || (st.version == viewed_version && meta.parent == viewed_parent))
      return;
    viewed_version = st.version, viewed_parent = meta.parent;
    if (ctx->views.contains(meta.id))
      ctx->views.put(meta.id, std::make_shared<const twin_view>(view()));
    else
      viewed = false; // evicted: the next get puts it back
  }

  // Runs after every message, and at activation: a changed twin writes its
  // state to the query index, before any write of it is acknowledged (the
  // index stays with the twin when it passivates).
  void sync_index() {
    if (st.version == indexed_version)
      return;
    indexed_version = st.version;
    ctx->index.update(meta.id, meta.number, st);
  }

  void after_message() {
    sync_view();
    sync_index();
  }

  passivate_reply passivate() {
    if (flush_scheduled || fold_needed || push_needed || has_children()
        || !pending_drops.empty() || twins::any_pending(st.alerts))
      return {false, {}};
    ctx->probe->twin_passivated(meta.kind);
    self->quit();
    return {true, st};
  }
};

twin_actor::behavior_type twin_behavior(twin_actor::stateful_pointer<twin_actor_state> self,
                                        std::shared_ptr<node_context> ctx, shard_actor shard,
                                        twin_meta meta, std::optional<twins::twin_state> preset) {
  auto& s = self->state;
  s.self = self;
  s.ctx = std::move(ctx);
  s.shard = std::move(shard);
  s.meta = std::move(meta);
  s.init(std::move(preset));
  // Every handler that may change the twin ends with after_message().
  return {
    [=](apply_atom, const apply_request& req) {
      auto r = self->state.apply(req);
      self->state.after_message();
      return r;
    },
    [=](contrib_atom, contrib_msg& m) { self->state.on_contribution(m); },
    [=](drop_atom, const std::string& child) { self->state.on_drop(child); },
    [=](get_atom) { return self->state.view_for_get(); },
    [=](flush_atom) {
      self->state.flush();
      self->state.after_message();
    },
    [=](stale_atom, int64_t now) {
      self->state.check_stale(now);
      self->state.after_message();
    },
    [=](reparent_atom, const std::string& p) {
      self->state.reparent(p);
      self->state.after_message();
    },
    [=](model_atom) {
      self->state.apply_model();
      self->state.after_message();
    },
    [=](passivate_atom) { return self->state.passivate(); },
    [=](alert_atom) {
      self->state.check_alerts();
      self->state.after_message();
    },
    [=](ack_atom, const ack_request& req) -> caf::result<alert_record> {
      auto r = self->state.acknowledge(req);
      self->state.after_message();
      return r;
    },
  };
}

} // namespace

twin_actor spawn_twin(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                      shard_actor shard, twin_meta meta,
                      std::optional<twins::twin_state> preset) {
  return sys.spawn(twin_behavior, std::move(ctx), std::move(shard), std::move(meta),
                   std::move(preset));
}

} // namespace twinrt::runtime::internal
