#include <chrono>
#include <deque>
#include <functional>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "twinrt/runtime/internal/actors.hpp"
#include "twinrt/runtime/internal/local_messages.hpp"
#include "twinrt/twins/names.hpp"

namespace twinrt::runtime::internal {

namespace {

using twin_task = std::function<void(const twin_actor&)>;
// Called instead of a task when its twin turns out not to exist, so that a
// caller who owes an answer gives one.
using missing_task = std::function<void()>;

struct shard_state {
  shard_actor::stateful_pointer<shard_state> self = nullptr;
  std::shared_ptr<node_context> ctx;
  size_t index = 0;

  struct active_entry {
    twin_actor actor;
    int64_t last_used_ms = 0;
    bool passivating = false;
    // Held while a passivation is answered.
    std::vector<std::pair<twin_task, missing_task>> waiting;
  };
  std::unordered_map<std::string, active_entry> active;

  // Twins that passivated while their last write may not be durable yet:
  // their next activation starts from this copy, not from storage.
  struct recent_entry {
    twins::twin_state state;
    uint64_t needs_seq = 0;
  };
  std::unordered_map<std::string, recent_entry> recent;

  struct watched {
    twins::model_set::model_ptr model; // the kind's model when last noted
    int64_t last_data_ms = 0;
    twins::health_status status = twins::health_status::ok;
  };
  std::unordered_map<std::string, watched> watch;

  // Batches run one at a time so that writes reach storage in the order the
  // twins produced them.
  struct queued {
    apply_request req;
    caf::typed_response_promise<twins::ingest_result> rp;
  };
  std::deque<queued> queue;
  bool running = false;
  caf::typed_response_promise<twins::ingest_result> current_rp;
  apply_request current;
  size_t outstanding = 0;
  twins::ingest_result result;
  caf::error failure;         // set when a twin of the batch failed
  storage::batch open;        // writes not yet handed to the committer (new_batch: spawn)
  std::vector<event> open_events; // events to log with `open`
  // Acknowledgements waiting for commit `seq`: answered with the record then.
  struct durable_answer {
    uint64_t seq = 0;
    caf::typed_response_promise<alert_record> rp;
    alert_record record;
  };
  std::deque<durable_answer> durables;
  uint64_t submitted_seq = 0; // commits handed to the committer
  uint64_t committed_seq = 0; // commits known durable
  std::deque<std::pair<uint64_t,
                        std::pair<caf::typed_response_promise<twins::ingest_result>,
                                  twins::ingest_result>>>
    acks;

  static inline const char* name = "shard";

  // -- routing -----------------------------------------------------------------

  // Runs `task` with the twin's actor, activating it if needed (or queues it
  // behind a passivation). Returns false, without running the task, when the
  // twin does not exist (deleted meanwhile): a caller that owes an answer
  // must give it then.
  bool route(const std::string& id, twin_task task, missing_task missing = nullptr) {
    auto i = active.find(id);
    if (i != active.end()) {
      i->second.last_used_ms = ctx->now_ms();
      if (i->second.passivating)
        i->second.waiting.emplace_back(std::move(task), std::move(missing));
      else
        task(i->second.actor);
      return true;
    }
    auto meta = ctx->cat.find(id);
    if (!meta) {
      if (missing)
        missing();
      return false;
    }
    std::optional<twins::twin_state> preset;
    if (auto r = recent.find(id); r != recent.end()) {
      preset = std::move(r->second.state);
      recent.erase(r);
    }
    auto a = spawn_twin(self->system(), ctx, caf::actor_cast<shard_actor>(self), std::move(*meta),
                        std::move(preset));
    self->link_to(a); // the twin goes when its shard goes
    auto& e = active[id];
    e.actor = a;
    e.last_used_ms = ctx->now_ms();
    task(a);
    report();
    return true;
  }

  // Tells the probe how loaded this shard is (read at scrape time).
  void report() {
    ctx->probe->shard_report(index, queue.size() + (running ? 1 : 0), self->mailbox().size(),
                             active.size());
  }

  // -- batches -----------------------------------------------------------------

  caf::typed_response_promise<twins::ingest_result> enqueue(apply_request& req) {
    auto rp = self->template make_response_promise<twins::ingest_result>();
    queue.push_back({std::move(req), rp});
    if (!running)
      start_next();
    return rp;
  }

  void start_next() {
    if (queue.empty()) {
      running = false;
      report();
      return;
    }
    running = true;
    report();
    auto q = std::move(queue.front());
    queue.pop_front();
    current = std::move(q.req);
    current_rp = std::move(q.rp);
    result = {};
    std::unordered_map<std::string_view, std::vector<uint32_t>> by_twin;
    for (auto i : current.indices)
      by_twin[current.batch[i].twin].push_back(i);
    outstanding = by_twin.size();
    if (outstanding == 0)
      return finish_batch();
    for (auto& [id, indices] : by_twin) {
      apply_request part{current.batch, std::move(indices), current.now_ms};
      std::string key(id);
      auto missing = [this, key, indices = part.indices] {
        // Deleted between the gate's check and now: refused like any unknown twin.
        for (auto i : indices)
          result.rejected.push_back({i, twins::reject_reason::unknown_twin,
                                     "sample " + std::to_string(i) + " for "
                                       + twins::printable(key) + ": no twin "
                                       + twins::printable(key)});
        if (--outstanding == 0)
          finish_batch();
      };
      route(key, [this, part = std::move(part)](const twin_actor& a) {
        self->request(a, caf::infinite, apply_atom::value, part)
          .then([this](apply_reply& r) { on_applied(r); },
                [this, part](caf::error& e) { on_apply_failed(part, e); });
      }, std::move(missing));
    }
  }

  void on_applied(apply_reply& r) {
    auto& batch = current.batch;
    // A twin's applied samples are all its own: the first names it.
    if (!r.applied.empty()) {
      twin_ref twin{batch[r.applied.front()].twin, r.number};
      for (auto i : r.applied) {
        auto& s = batch[i];
        open.put_history(twin, s.channel, s.ts_ms, s.value, r.model_version, s.source, s.seq);
        open.log_sample(twin, s.channel, s.ts_ms, s.value, r.model_version, s.source, s.seq);
      }
      if (!r.state_bytes.empty())
        open.put_encoded_state(twin, r.state_bytes);
    }
    take_outbox(r.out);
    result.accepted += r.applied.size();
    for (auto& rej : r.rejected)
      result.rejected.push_back(std::move(rej));
    if (!r.applied.empty()) {
      auto& id = batch[r.applied.front()].twin;
      note_watch(id, r.last_data_ms, r.status);
    }
    if (--outstanding == 0)
      finish_batch();
  }

  // The twin of `part` did not answer: its actor is gone. If the twin is no
  // longer in the catalog (deleted meanwhile), its samples are refused like
  // those of any unknown twin and the batch is acknowledged as usual.
  // Otherwise the twin failed, a bug; its samples are not stored, so the
  // batch must not be acknowledged as a whole.
  void on_apply_failed(const apply_request& part, const caf::error& e) {
    auto& id = part.batch[part.indices.front()].twin;
    if (!ctx->cat.contains(id)) {
      for (auto i : part.indices)
        result.rejected.push_back({i, twins::reject_reason::unknown_twin,
                                   "sample " + std::to_string(i) + " for "
                                     + twins::printable(id) + ": no twin "
                                     + twins::printable(id)});
    } else {
      failure = make_error(errc::storage_failure,
                           "twin " + id + " failed: " + caf::to_string(e));
    }
    if (--outstanding == 0)
      finish_batch();
  }

  void finish_batch() {
    auto seq = submit();
    if (failure) {
      current_rp.deliver(std::move(failure));
      failure = caf::error{};
      current = {};
      return start_next();
    }
    acks.emplace_back(seq, std::make_pair(std::move(current_rp), std::move(result)));
    current = {};
    start_next();
  }

  // Hands the open writes to the committer; returns the commit's number.
  uint64_t submit() {
    auto seq = ++submitted_seq;
    auto me = caf::actor_cast<shard_actor>(self);
    ctx->db->commit(std::move(open), std::move(open_events),
                    [me, seq](const std::string& failure) {
                      if (failure.empty())
                        caf::anon_send(me, committed_atom::value, seq);
                      else
                        caf::anon_send(me, commit_failed_atom::value, seq, failure);
                    });
    open = ctx->db->new_batch();
    open_events.clear();
    return seq;
  }

  // Alert records and events go into the same batch as the state that made them.
  void take_outbox(twin_outbox& out) {
    for (auto& a : out.alerts)
      open.put_alert(a);
    for (auto& e : out.events)
      open_events.push_back(std::move(e));
  }

  void on_committed(uint64_t seq) {
    committed_seq = std::max(committed_seq, seq);
    while (!acks.empty() && acks.front().first <= committed_seq) {
      auto& [rp, res] = acks.front().second;
      rp.deliver(std::move(res));
      acks.pop_front();
    }
    while (!durables.empty() && durables.front().seq <= committed_seq) {
      durables.front().rp.deliver(std::move(durables.front().record));
      durables.pop_front();
    }
    for (auto i = recent.begin(); i != recent.end();) {
      if (i->second.needs_seq <= committed_seq)
        i = recent.erase(i);
      else
        ++i;
    }
  }

  // The storage failed: the batches of commit `seq` and before that wait
  // for it are answered with the reason, never acknowledged. Storage stays
  // failed, so every later commit ends here too.
  void on_commit_failed(uint64_t seq, const std::string& failure) {
    while (!acks.empty() && acks.front().first <= seq) {
      acks.front().second.first.deliver(make_error(errc::storage_failure, failure));
      acks.pop_front();
    }
    while (!durables.empty() && durables.front().seq <= seq) {
      // Not durable: the twin's copy in `recent` stays.
      durables.front().rp.deliver(make_error(errc::storage_failure, failure));
      durables.pop_front();
    }
  }

  void on_persist(persist_msg& m) {
    open.put_encoded_state({m.id, m.number}, m.state_bytes);
    take_outbox(m.out);
    note_watch(m.id, m.last_data_ms, m.status);
    if (!running)
      submit();
  }

  // on_persist, answering with `record` once the write is durable.
  caf::typed_response_promise<alert_record> on_persist_answered(persist_msg& m,
                                                                alert_record& record) {
    auto rp = self->template make_response_promise<alert_record>();
    // `open` goes with the next submit.
    durables.push_back({submitted_seq + 1, rp, std::move(record)});
    on_persist(m);
    return rp;
  }

  void note_watch(const std::string& id, int64_t last_data_ms,
                  twins::health_status status) {
    auto& w = watch[id];
    if (!w.model)
      if (auto meta = ctx->cat.find(id))
        w.model = ctx->model_of(meta->kind);
    w.last_data_ms = last_data_ms;
    w.status = status;
  }

  // -- sweep: staleness and passivation ------------------------------------------

  void sweep(bool force_passivation) {
    auto now = ctx->now_ms();
    for (auto& [id, w] : watch) {
      if (w.status == twins::health_status::stale || !w.model)
        continue;
      // The kind's current model decides (a reload may change stale_after).
      auto m = ctx->model_of(w.model->kind);
      if (!m || m->stale_after_ms <= 0 || now - w.last_data_ms <= m->stale_after_ms)
        continue;
      if (!ctx->cat.contains(id))
        continue;
      w.status = twins::health_status::stale;
      route(id, [this, now](const twin_actor& a) {
        self->send(a, stale_atom::value, now);
      });
    }
    for (auto& [id, e] : active) {
      if (e.passivating)
        continue;
      if (!force_passivation && now - e.last_used_ms < ctx->cfg.passivate_after_ms)
        continue;
      if (ctx->cat.child_count(id) > 0)
        continue; // parents stay: their fold lives in memory
      e.passivating = true;
      std::string key = id;
      self->request(e.actor, caf::infinite, passivate_atom::value)
        .then([this, key](passivate_reply& r) { on_passivated(key, r); },
              [this, key](caf::error&) {
                passivate_reply r;
                r.quit = true; // the actor is gone either way
                on_passivated(key, r);
              });
    }
  }

  void on_passivated(const std::string& id, passivate_reply& r) {
    auto i = active.find(id);
    if (i == active.end())
      return;
    auto waiting = std::move(i->second.waiting);
    i->second.waiting.clear();
    i->second.passivating = false;
    if (r.quit) {
      if (submitted_seq > committed_seq || running)
        recent[id] = {std::move(r.state), submitted_seq + (running ? 1 : 0)};
      active.erase(i);
      report();
    }
    for (auto& [task, missing] : waiting)
      route(id, std::move(task), std::move(missing));
  }

  // A deleted twin: its actor goes without saving, and nothing of it stays.
  void forget(const std::string& id, const std::string& kind) {
    if (auto i = active.find(id); i != active.end()) {
      self->unlink_from(i->second.actor);
      self->send_exit(i->second.actor, caf::exit_reason::user_shutdown);
      ctx->probe->twin_passivated(kind);
      auto waiting = std::move(i->second.waiting);
      active.erase(i);
      for (auto& w : waiting)
        if (w.second)
          w.second();
    }
    recent.erase(id);
    watch.erase(id);
  }

  void schedule_sweep() {
    self->delayed_send(self, std::chrono::milliseconds(ctx->cfg.sweep_interval_ms),
                       sweep_atom::value);
  }
};

shard_actor::behavior_type shard_behavior(shard_actor::stateful_pointer<shard_state> self,
                                          std::shared_ptr<node_context> ctx, size_t index) {
  auto& s = self->state;
  s.self = self;
  s.ctx = std::move(ctx);
  s.open = s.ctx->db->new_batch();
  s.index = index;
  s.schedule_sweep();
  return {
    [=](ingest_atom, apply_request& req) -> caf::result<twins::ingest_result> {
      return self->state.enqueue(req);
    },
    [=](committed_atom, uint64_t seq) { self->state.on_committed(seq); },
    [=](commit_failed_atom, uint64_t seq, const std::string& failure) {
      self->state.on_commit_failed(seq, failure);
    },
    [=](persist_atom, persist_msg& m) { self->state.on_persist(m); },
    [=](persist_atom, persist_msg& m, alert_record& record) -> caf::result<alert_record> {
      return self->state.on_persist_answered(m, record);
    },
    [=](contrib_atom, contrib_msg& m) {
      auto parent = m.parent;
      self->state.route(parent, [self, m = std::move(m)](const twin_actor& a) {
        self->send(a, contrib_atom::value, m);
      });
    },
    [=](drop_atom, const std::string& parent, const std::string& child) {
      self->state.route(parent, [self, child](const twin_actor& a) {
        self->send(a, drop_atom::value, child);
      });
    },
    [=](get_atom, const std::string& id) -> caf::result<twin_view> {
      if (!self->state.ctx->cat.contains(id))
        return make_error(errc::unknown_twin, "no twin " + id);
      auto rp = self->make_response_promise<twin_view>();
      self->state.route(
        id, [rp](const twin_actor& a) mutable { rp.delegate(a, get_atom::value); },
        [rp, id]() mutable { rp.deliver(make_error(errc::unknown_twin, "no twin " + id)); });
      return rp;
    },
    [=](ack_atom, ack_request& req) -> caf::result<alert_record> {
      if (!self->state.ctx->cat.contains(req.twin))
        return make_error(errc::unknown_twin, "no twin " + req.twin);
      auto rp = self->make_response_promise<alert_record>();
      auto id = req.twin;
      self->state.route(
        id,
        [rp, req = std::move(req)](const twin_actor& a) mutable {
          rp.delegate(a, ack_atom::value, std::move(req));
        },
        [rp, id]() mutable { rp.deliver(make_error(errc::unknown_twin, "no twin " + id)); });
      return rp;
    },
    [=](reparent_atom, const std::string& id, const std::string& parent) {
      self->state.route(id, [self, parent](const twin_actor& a) {
        self->send(a, reparent_atom::value, parent);
      });
    },
    [=](model_atom, const std::string& kind) {
      // Every twin of the kind that this shard owns applies the new version
      // now, passivated ones too (they are activated for it), so that
      // rollups follow at once. Each shard of the node is told.
      auto& st = self->state;
      for (auto& meta : st.ctx->cat.all()) {
        if (meta.kind != kind)
          continue;
        if (auto owner = st.ctx->directory->owner_of(meta.id);
            !owner || owner->address() != self->address())
          continue;
        st.route(meta.id, [self](const twin_actor& a) { self->send(a, model_atom::value); });
      }
    },
    [=](watch_atom, watch_list& entries) {
      for (auto& e : entries)
        self->state.note_watch(e.id, e.last_data_ms, e.status);
    },
    [=](sweep_atom) {
      self->state.report();
      self->state.sweep(false);
      self->state.schedule_sweep();
    },
    [=](passivate_atom) { self->state.sweep(true); },
    [=](active_atom) -> int64_t { return static_cast<int64_t>(self->state.active.size()); },
    [=](delete_atom, const std::string& id, const std::string& kind) {
      self->state.forget(id, kind);
    },
  };
}

// -- the ingest gate -----------------------------------------------------------

struct gate_state {
  ingest_gate_actor::stateful_pointer<gate_state> self = nullptr;
  std::shared_ptr<node_context> ctx;
  uint32_t inflight = 0;
  static inline const char* name = "ingest-gate";

  caf::result<twins::ingest_result> ingest(sample_batch batch) {
    auto t0 = std::chrono::steady_clock::now();
    auto& samples = batch.samples();
    if (samples.size() > ctx->cfg.max_batch_samples)
      return make_error(errc::bad_request,
                        "batch of " + std::to_string(samples.size())
                          + " samples is over the limit of "
                          + std::to_string(ctx->cfg.max_batch_samples));
    if (ctx->db->failed())
      return make_error(errc::storage_failure, ctx->db->failure());
    if (inflight >= ctx->cfg.max_inflight_batches) {
      ctx->probe->overloaded();
      return make_error(errc::overloaded, "ingest has " + std::to_string(inflight)
                                            + " batches in flight; retry later");
    }
    auto now = ctx->now_ms();
    auto shared = std::make_shared<twins::ingest_result>();
    // One part per owning actor, whichever virtual shards it owns.
    owner_groups owners(*ctx->directory);
    std::vector<std::vector<uint32_t>> parts;
    // Samples of one twin usually come together: its id is checked, and its
    // owner looked up, once a run.
    std::optional<std::string_view> last_ok;
    uint32_t part = 0; // of last_ok
    for (uint32_t i = 0; i < samples.size(); ++i) {
      auto& s = samples[i];
      if (s.twin != last_ok) {
        if (auto refused = refusal_of(s, i)) {
          shared->rejected.push_back(std::move(*refused));
          continue;
        }
        auto g = owners.group_of(s.twin);
        if (!g) // nothing is sent yet: the whole batch is refused, to retry
          return std::move(g.error());
        part = *g;
        if (part >= parts.size())
          parts.resize(part + 1);
        last_ok = s.twin;
      }
      parts[part].push_back(i);
    }
    auto rp = self->make_response_promise<twins::ingest_result>();
    auto pending = std::make_shared<size_t>(parts.size());
    auto first_error = std::make_shared<caf::error>();
    if (*pending == 0) {
      finish(rp, *shared, t0);
      return rp;
    }
    ctx->probe->inflight_batches(++inflight);
    for (size_t k = 0; k < parts.size(); ++k) {
      self->request(owners.owners()[k], caf::infinite, ingest_atom::value,
                    apply_request{batch, std::move(parts[k]), now})
        .then(
          [=](twins::ingest_result& part) mutable {
            shared->accepted += part.accepted;
            for (auto& r : part.rejected)
              shared->rejected.push_back(std::move(r));
            if (--*pending == 0) {
              ctx->probe->inflight_batches(--inflight);
              if (*first_error) {
                ctx->probe->batch_done(seconds_since(t0));
                rp.deliver(std::move(*first_error));
              } else {
                finish(rp, *shared, t0);
              }
            }
          },
          [=](caf::error& e) mutable {
            // Answer once, with the first error, when every shard is done.
            if (!*first_error)
              *first_error = std::move(e);
            if (--*pending == 0) {
              ctx->probe->inflight_batches(--inflight);
              ctx->probe->batch_done(seconds_since(t0));
              rp.deliver(std::move(*first_error));
            }
          });
    }
    return rp;
  }

  // Why sample `i` cannot go to a twin (an id of the wrong form, or no such
  // twin), or nothing when its twin exists.
  std::optional<twins::rejection> refusal_of(const twins::sample& s, uint32_t i) const {
    auto prefix = "sample " + std::to_string(i) + " for " + twins::printable(s.twin) + "."
                  + twins::printable(s.channel) + ": ";
    if (auto why = twins::twin_id_refusal(s.twin))
      return twins::rejection{i, twins::reject_reason::invalid_name, prefix + *why};
    if (!ctx->cat.contains(s.twin))
      return twins::rejection{i, twins::reject_reason::unknown_twin,
                              prefix + "no twin " + twins::printable(s.twin)};
    return std::nullopt;
  }

  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void finish(caf::typed_response_promise<twins::ingest_result>& rp,
              twins::ingest_result& r, std::chrono::steady_clock::time_point t0) {
    std::sort(r.rejected.begin(), r.rejected.end(),
              [](auto& a, auto& b) { return a.index < b.index; });
    ctx->probe->samples_accepted(r.accepted);
    for (auto& rej : r.rejected)
      ctx->probe->sample_rejected(rej.reason);
    ctx->probe->batch_done(seconds_since(t0));
    rp.deliver(std::move(r));
  }
};

ingest_gate_actor::behavior_type gate_behavior(ingest_gate_actor::stateful_pointer<gate_state> self,
                                               std::shared_ptr<node_context> ctx) {
  self->state.self = self;
  self->state.ctx = std::move(ctx);
  return {
    [=](ingest_atom, sample_batch& b) { return self->state.ingest(std::move(b)); },
  };
}

} // namespace

shard_actor spawn_shard(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                        size_t index) {
  // Starts with its first message, which the node sends once the directory
  // it routes with is in place.
  return sys.spawn<caf::lazy_init>(shard_behavior, std::move(ctx), index);
}

caf::actor spawn_bridge(caf::actor_system& sys) {
  return sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {
      [=](ingest_atom, const ingest_gate_actor& gate, const sample_batch& batch,
          const ingest_done_ptr& done) {
        self->request(gate, caf::infinite, ingest_atom::value, batch)
          .then([done](twins::ingest_result& r) { (*done)(std::move(r)); },
                [done](caf::error& e) { (*done)(std::move(e)); });
      },
      [=](get_atom, const shard_actor& shard, const std::string& id, const get_done_ptr& done) {
        self->request(shard, caf::infinite, get_atom::value, id)
          .then([done](twin_view& v) { (*done)(std::move(v)); },
                [done](caf::error& e) { (*done)(std::move(e)); });
      },
      [=](ack_atom, const shard_actor& shard, const ack_request& req, const ack_done_ptr& done) {
        self->request(shard, caf::infinite, ack_atom::value, req)
          .then([done](alert_record& r) { (*done)(std::move(r)); },
                [done](caf::error& e) { (*done)(std::move(e)); });
      },
    };
  });
}

ingest_gate_actor spawn_gate(caf::actor_system& sys, std::shared_ptr<node_context> ctx) {
  return sys.spawn(gate_behavior, std::move(ctx));
}

} // namespace twinrt::runtime::internal
