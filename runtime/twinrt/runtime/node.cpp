#include "twinrt/runtime/node.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <unordered_map>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "twinrt/runtime/internal/actors.hpp"
#include "twinrt/runtime/internal/local_messages.hpp"
#include "twinrt/runtime/messages.hpp"
#include "twinrt/runtime/metrics.hpp"
#include "twinrt/runtime/rpc_server.hpp"
#include "twinrt/schemas/builtin_models.hpp"
#include "twinrt/twins/names.hpp"

namespace twinrt::runtime {

using namespace internal;

const char* to_string(errc x) {
  switch (x) {
    case errc::none:
      return "none";
    case errc::overloaded:
      return "overloaded";
    case errc::unknown_twin:
      return "unknown twin";
    case errc::bad_request:
      return "bad request";
    case errc::conflict:
      return "conflict";
    case errc::storage_failure:
      return "storage failure";
    case errc::bad_model:
      return "bad model";
    case errc::unavailable:
      return "unavailable";
    case errc::corrupt_record:
      return "corrupt record";
    case errc::permission_denied:
      return "permission denied";
  }
  return "unknown";
}

errc code_of(const caf::error& e) {
  if (!e || e.category() != errc_category)
    return errc::none;
  return static_cast<errc>(e.code());
}

std::string describe(const caf::error& e) {
  if (!e)
    return "no error";
  if (e.category() == errc_category) {
    std::string what;
    if (e.context().match_elements<std::string>())
      what = e.context().get_as<std::string>(0);
    return what.empty() ? to_string(static_cast<errc>(e.code())) : what;
  }
  return caf::to_string(e);
}

struct node::impl {
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<node_context> ctx;
  runtime_probe probe;
  ingest_gate_actor gate;
  caf::actor bridge; // asks actors for callers that must not block
  std::unique_ptr<metrics_server> metrics; // reset first: it reads the node
  std::unique_ptr<rpc_server> rpc;         // likewise: it calls the node
  std::unique_ptr<event_router> router;    // reads storage: stops before it closes
  std::vector<std::string> changed_at_start; // kinds whose version the start changed

  ~impl() {
    metrics.reset();
    rpc.reset();
    router.reset();
    if (sys) {
      for (auto& s : ctx->shards)
        caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(gate, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(bridge, caf::exit_reason::user_shutdown);
      gate = nullptr;
      bridge = nullptr;
      // Twins are linked to their shard and go with it; until the last one
      // is gone they may still address shards, so the list stays.
      sys->await_all_actors_done();
      ctx->shards.clear();
      ctx->directory.reset();
      sys.reset();
    }
  }

  model_load take_models(const twins::model_files& files, bool at_start) {
    model_load out;
    auto& errors = out.refused;
    for (auto& e : files.errors)
      errors.push_back(e.to_string());
    if (!errors.empty())
      return out; // all or nothing
    if (ctx->db->failed()) {
      errors.push_back(ctx->db->failure());
      return out;
    }
    std::vector<std::string> changed;
    auto wb = ctx->db->new_batch();
    {
      std::unique_lock<std::shared_mutex> g(ctx->models_mtx);
      for (auto& m : files.models) {
        auto before = ctx->models.find(m.kind);
        if (auto refusal = ctx->models.put(m)) {
          if (at_start && before && before->version > m.version)
            continue; // a newer version was loaded at run time and stored
          errors.push_back(m.file_name + ":1: " + *refusal);
          continue;
        }
        auto after = ctx->models.find(m.kind);
        if (after != before) {
          changed.push_back(m.kind);
          wb.put_model({m.kind, m.version, m.text});
        }
      }
    }
    if (!wb.empty())
      if (auto failure = ctx->db->commit_and_wait(std::move(wb)); !failure.empty()) {
        errors.push_back(failure); // in force until the restart the failure needs
        return out;
      }
    for (auto& kind : changed)
      for (auto& s : ctx->shards)
        caf::anon_send(s, model_atom::value, kind);
    if (at_start) {
      changed_at_start = std::move(changed); // the catalog is not loaded yet
    } else {
      for (auto& kind : changed)
        warn_out_of_range(kind, out.warnings);
      for (auto& w : out.warnings)
        std::fprintf(stderr, "twinrt: model warning: %s\n", w.c_str());
    }
    return out;
  }

  // Twins of `kind` whose stored latest values the model now in force would
  // refuse: the new version narrowed a range below what they hold.
  void warn_out_of_range(const std::string& kind, std::vector<std::string>& warnings) {
    auto model = ctx->model_of(kind);
    if (!model)
      return;
    for (auto& meta : ctx->cat.all()) {
      if (meta.kind != kind)
        continue;
      auto st = ctx->db->load_state(meta);
      if (!st)
        continue;
      for (auto& what : twins::values_outside(*st, *model))
        warnings.push_back(kind + " v" + std::to_string(model->version) + ": " + meta.id + " "
                           + what);
    }
  }

  // Brings every parent's stored contribution up to date with its children's
  // stored states, deepest parents first, and lists what the shards must
  // watch for staleness (send_watches). After a crash this makes the rollups
  // exact again before the first sample is taken. Returns the storage
  // failure that stopped it; empty when done.
  std::string recover(watch_list& watches) {
    auto metas = ctx->cat.all();
    std::unordered_map<uint32_t, const twin_meta*> by_number;
    for (auto& m : metas)
      by_number[m.number] = &m;
    std::unordered_map<std::string, twins::twin_state> parents;
    std::unordered_map<std::string, twins::contribution> contributions;
    auto now = now_ms();
    auto refreshed = ctx->db->new_batch();
    ctx->db->for_each_state([&](uint32_t number, caf::expected<twins::twin_state>& decoded) {
      auto m = by_number.find(number);
      if (m == by_number.end())
        return;
      auto& meta = *m->second;
      auto model = ctx->models.find(meta.kind);
      bool corrupt = !decoded;
      if (corrupt) {
        // Refused (logged and counted by storage). Its actor will start
        // from an empty state: the rollups count it as that.
        std::fprintf(stderr, "twinrt: %s: its stored state is corrupt; it starts from an empty "
                             "state (its history is kept)\n", meta.id.c_str());
        twins::twin_state fresh;
        fresh.created_ms = now;
        if (model)
          fresh.own = twins::own_contribution(fresh, *model, meta.id);
        decoded = std::move(fresh);
      }
      auto& st = *decoded;
      // A model loaded at run time applies to twins that were passivated
      // when it came: bring their health and contribution up to date.
      if (!corrupt && model && st.model_version != model->version
          && ctx->cat.child_count(meta.id) == 0) {
        twins::evaluate_health(st, *model, now);
        st.own = twins::own_contribution(st, *model, meta.id);
        st.model_version = model->version;
        ++st.version;
        refreshed.put_state(meta, st);
      }
      bool is_parent = ctx->cat.child_count(meta.id) > 0;
      // A twin whose last child moved away or was deleted just before a
      // crash may still hold that child in its stored fold: it folds nothing
      // but itself now.
      if (auto model = ctx->models.find(meta.kind);
          !is_parent && model && !(st.own == twins::own_contribution(st, *model, meta.id))
          && twins::refold(st, *model, meta.id, {}, now))
        refreshed.put_state(meta, st);
      watches.push_back({meta.id, twins::data_since_ms(st), st.status});
      ctx->index.update(meta.id, meta.number, st);
      if (is_parent)
        parents.emplace(meta.id, st);
      else
        contributions.emplace(meta.id, st.own);
    });
    std::vector<std::pair<int, const twin_meta*>> order;
    for (auto& m : metas)
      if (ctx->cat.child_count(m.id) > 0)
        order.emplace_back(ctx->cat.depth(m.id), &m);
    std::sort(order.begin(), order.end(),
              [](auto& a, auto& b) { return a.first > b.first; });
    if (!refreshed.empty())
      if (auto failure = ctx->db->commit_and_wait(std::move(refreshed)); !failure.empty())
        return failure;
    auto wb = ctx->db->new_batch();
    for (auto& [depth, meta] : order) {
      auto model = ctx->models.find(meta->kind);
      if (!model)
        continue;
      auto& st = parents[meta->id];
      std::map<std::string, twins::contribution> kids;
      for (auto& child : ctx->cat.children(meta->id)) {
        auto c = contributions.find(child);
        kids[child] = c == contributions.end() ? twins::contribution{} : c->second;
      }
      if (twins::refold(st, *model, meta->id, kids, now)) {
        wb.put_state(*meta, st);
        ctx->index.update(meta->id, meta->number, st);
      }
      contributions[meta->id] = st.own;
    }
    if (!wb.empty())
      return ctx->db->commit_and_wait(std::move(wb));
    return {};
  }

  // Tells the shard actors owning the twins of `watches` to watch them, one
  // message per owner. A twin whose shard has no owner now is left to the
  // owner that takes the shard, which learns it from storage.
  void send_watches(watch_list watches) {
    owner_groups owners(*ctx->directory);
    std::vector<watch_list> lists;
    for (auto& w : watches) {
      auto g = owners.group_of(w.id);
      if (!g)
        continue;
      if (*g >= lists.size())
        lists.resize(*g + 1);
      lists[*g].push_back(std::move(w));
    }
    for (size_t g = 0; g < lists.size(); ++g)
      caf::anon_send(owners.owners()[g], watch_atom::value, std::move(lists[g]));
  }

  template <class T, class Handle, class... Ts>
  caf::expected<T> ask(const Handle& dest, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    caf::expected<T> out{caf::error{}};
    self->request(dest, caf::infinite, std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }
};

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

node::~node() {
  impl_->rpc.reset();     // no call may reach a node that is going
  impl_->metrics.reset(); // before anything a scrape reads goes away
}

caf::expected<std::unique_ptr<node>> node::start(const node_config& cfg,
                                                 directory_factory make_directory, bool serve_rpc) {
  auto p = std::make_unique<impl>();
  p->ctx = std::make_shared<node_context>();
  auto& ctx = *p->ctx;
  ctx.cfg = cfg;
  ctx.probe = &p->probe;
  if (!cfg.rpc_address.empty())
    ctx.views.set_capacity(cfg.rpc_read_cache);
  std::string error;
  ctx.db = storage::open({cfg.data_dir, cfg.sync_wal, cfg.write_buffer_mb, cfg.block_cache_mb,
                          cfg.file_system, cfg.virtual_shards},
                         error);
  if (!ctx.db)
    return make_error(errc::storage_failure, error);
  if (ctx.db->virtual_shards() != cfg.virtual_shards)
    std::fprintf(stderr,
                 "twinrt: data directory %s keeps its %u virtual shards, fixed when it was "
                 "created; storage.virtual_shards = %u applies to new data only\n",
                 cfg.data_dir.c_str(), ctx.db->virtual_shards(), cfg.virtual_shards);
  for (auto& m : ctx.db->load_models()) {
    auto r = twins::parse_model(m.text, "stored model " + m.kind);
    if (auto parsed = std::get_if<twins::model>(&r))
      ctx.models.put(std::move(*parsed));
  }
  twins::model_files files;
  if (cfg.models_dir.empty()) {
    std::vector<std::pair<std::string, std::string>> texts;
    for (auto& b : schemas::builtin_models())
      texts.emplace_back("schemas/models/" + b.file_name, b.text);
    files = twins::load_model_texts(texts);
  } else {
    files = twins::load_model_dir(cfg.models_dir);
  }
  auto errors = p->take_models(files, true).refused;
  if (!errors.empty()) {
    std::string all;
    for (auto& e : errors)
      all += (all.empty() ? "" : "\n") + e;
    return make_error(errc::bad_model, all);
  }
  ctx.cat.load(ctx.db->load_metas());
  ctx.index.load(ctx.cat.all()); // values follow in recover()
  {
    std::vector<std::string> warnings;
    for (auto& kind : p->changed_at_start)
      p->warn_out_of_range(kind, warnings);
    for (auto& w : warnings)
      std::fprintf(stderr, "twinrt: model warning: %s\n", w.c_str());
  }
  ctx.next_alert_id = ctx.db->last_alert_id() + 1;
  for (auto& a : ctx.db->load_alerts())
    if (a.state != twins::alert_phase::idle)
      p->probe.alert_changed(a.sev, 1);
  p->router = std::make_unique<event_router>(*ctx.db, cfg.events_keep);
  p->router->start();
  watch_list watches;
  if (auto failure = p->recover(watches); !failure.empty())
    return make_error(errc::storage_failure, failure);
  p->probe.set_shard_count(cfg.shards);

  p->caf_cfg.set("scheduler.max-threads", static_cast<size_t>(cfg.threads));
  p->caf_cfg.set("logger.verbosity", caf::atom("quiet"));
  add_message_types(p->caf_cfg);
  p->sys = std::make_unique<caf::actor_system>(p->caf_cfg);
  for (size_t i = 0; i < cfg.shards; ++i)
    ctx.shards.push_back(spawn_shard(*p->sys, p->ctx, i));
  // Before any message reaches a shard: they route with it.
  ctx.directory = make_directory ? make_directory(ctx.db->virtual_shards(), ctx.shards)
                                 : make_local_directory(ctx.db->virtual_shards(), ctx.shards);
  if (!ctx.directory) {
    p.reset(); // stops the shards
    return make_error(errc::bad_request, "node::start: the directory factory returned none");
  }
  p->send_watches(std::move(watches));
  p->gate = spawn_gate(*p->sys, p->ctx);
  p->bridge = spawn_bridge(*p->sys);
  std::unique_ptr<node> n(new node(std::move(p)));
  if (!cfg.metrics_address.empty()) {
    auto m = metrics_server::start(
      cfg.metrics_address, std::make_shared<node_collector>(*n, cfg.max_asset_series));
    if (!m)
      return std::move(m.error());
    n->impl_->metrics = std::move(*m);
  }
  if (serve_rpc)
    if (auto err = n->serve_rpc())
      return err;
  return n;
}

caf::error node::serve_rpc() {
  auto& cfg = impl_->ctx->cfg;
  if (cfg.rpc_address.empty() || impl_->rpc)
    return {};
  std::vector<rpc_token> tokens;
  for (auto& t : cfg.rpc_tokens)
    tokens.push_back({t.name, t.secret, t.role, t.scope, t.secret_hash});
  auto r = rpc_server::start(*this, cfg.rpc_address, std::move(tokens));
  if (!r)
    return std::move(r.error());
  impl_->rpc = std::move(*r);
  return {};
}

std::string node::rpc_address() const {
  return impl_->rpc ? impl_->rpc->address() : std::string();
}

caf::error node::create(const std::vector<twin_spec>& specs) {
  auto& ctx = *impl_->ctx;
  if (ctx.db->failed())
    return make_error(errc::storage_failure, ctx.db->failure());
  std::unordered_map<std::string, std::string> new_kinds; // id -> kind
  for (auto& s : specs) {
    if (auto why = twins::twin_id_refusal(s.id))
      return make_error(errc::bad_request, std::move(*why));
    if (ctx.cat.contains(s.id) || new_kinds.count(s.id))
      return make_error(errc::conflict, "twin " + s.id + " already exists");
    auto model = ctx.model_of(s.kind);
    if (!model)
      return make_error(errc::bad_request, "twin " + s.id + ": unknown kind '" + s.kind + "'");
    if (s.parent.empty()) {
      if (!model->parents.empty())
        return make_error(errc::bad_request, "twin " + s.id + ": kind " + s.kind
                                               + " needs a parent");
    } else {
      std::string parent_kind;
      if (auto pm = ctx.cat.find(s.parent))
        parent_kind = pm->kind;
      else if (auto k = new_kinds.find(s.parent); k != new_kinds.end())
        parent_kind = k->second;
      else
        return make_error(errc::unknown_twin, "twin " + s.id + ": no parent twin " + s.parent);
      if (std::find(model->parents.begin(), model->parents.end(), parent_kind)
          == model->parents.end())
        return make_error(errc::conflict, "twin " + s.id + ": a " + s.kind
                                            + " cannot be under a " + parent_kind);
    }
    new_kinds.emplace(s.id, s.kind);
  }
  // Every twin's owner (it watches the twin) and every parent's (it takes
  // the first contribution) is known before anything is written.
  owner_groups owners(*ctx.directory);
  std::vector<uint32_t> group_of_twin, group_of_parent;
  for (auto& s : specs) {
    auto g = owners.group_of(s.id);
    if (!g)
      return std::move(g.error());
    group_of_twin.push_back(*g);
    if (s.parent.empty()) {
      group_of_parent.push_back(0);
    } else {
      auto pg = owners.group_of(s.parent);
      if (!pg)
        return std::move(pg.error());
      group_of_parent.push_back(*pg);
    }
  }
  auto wb = ctx.db->new_batch();
  std::vector<std::pair<twin_meta, twins::twin_state>> made;
  auto now = now_ms();
  for (auto& s : specs) {
    twin_meta m{s.id, ctx.cat.next_number(), s.kind, s.parent};
    twins::twin_state st;
    st.version = 1;
    st.created_ms = now;
    auto model = ctx.model_of(s.kind);
    st.model_version = model->version;
    st.own = twins::own_contribution(st, *model, s.id);
    wb.put_meta(m);
    wb.put_state(m, st);
    made.emplace_back(std::move(m), std::move(st));
  }
  if (auto failure = ctx.db->commit_and_wait(std::move(wb)); !failure.empty())
    return make_error(errc::storage_failure, failure);
  for (auto& [m, st] : made) {
    ctx.cat.insert(m);
    ctx.index.insert(m, st);
  }
  std::vector<watch_list> watches(owners.owners().size());
  for (size_t i = 0; i < made.size(); ++i) {
    auto& [m, st] = made[i];
    watches[group_of_twin[i]].push_back({m.id, twins::data_since_ms(st), st.status});
    if (!m.parent.empty())
      caf::anon_send(owners.owners()[group_of_parent[i]], contrib_atom::value,
                     contrib_msg{m.parent, m.id, st.version, st.own, now});
  }
  for (size_t g = 0; g < watches.size(); ++g)
    if (!watches[g].empty())
      caf::anon_send(owners.owners()[g], watch_atom::value, std::move(watches[g]));
  return {};
}

caf::error node::reparent(const std::string& id, const std::string& new_parent) {
  auto& ctx = *impl_->ctx;
  if (ctx.db->failed())
    return make_error(errc::storage_failure, ctx.db->failure());
  auto m = ctx.cat.find(id);
  if (!m)
    return make_error(errc::unknown_twin, "no twin " + id);
  auto p = ctx.cat.find(new_parent);
  if (!p)
    return make_error(errc::unknown_twin, "no twin " + new_parent);
  if (m->parent == new_parent)
    return {};
  auto model = ctx.model_of(m->kind);
  if (std::find(model->parents.begin(), model->parents.end(), p->kind) == model->parents.end())
    return make_error(errc::conflict, "twin " + id + ": a " + m->kind + " cannot be under a "
                                        + p->kind);
  if (ctx.cat.is_ancestor(id, new_parent))
    return make_error(errc::conflict, "moving " + id + " under " + new_parent
                                        + " would make a cycle");
  auto owner = ctx.directory->owner_of(id);
  if (!owner)
    return std::move(owner.error());
  m->parent = new_parent;
  auto wb = ctx.db->new_batch();
  wb.put_meta(*m);
  if (auto failure = ctx.db->commit_and_wait(std::move(wb)); !failure.empty())
    return make_error(errc::storage_failure, failure);
  ctx.cat.reparent(id, new_parent);
  ctx.index.reparent(id, new_parent);
  caf::anon_send(*owner, reparent_atom::value, id, new_parent);
  return {};
}

caf::expected<twins::ingest_result> node::ingest(std::vector<twins::sample> batch) {
  sample_batch shared{std::move(batch)};
  return impl_->ask<twins::ingest_result>(impl_->gate, ingest_atom::value, shared);
}

caf::expected<twins::ingest_result> node::ingest_waiting(std::vector<twins::sample> batch) {
  sample_batch shared{std::move(batch)};
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    auto r = impl_->ask<twins::ingest_result>(impl_->gate, ingest_atom::value, shared);
    if (r || code_of(r.error()) != errc::overloaded)
      return r;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50'000));
  }
}

caf::expected<twin_view> node::get(const std::string& id) {
  auto& ctx = *impl_->ctx;
  if (!ctx.cat.contains(id))
    return make_error(errc::unknown_twin, "no twin " + id);
  auto owner = ctx.directory->owner_of(id);
  if (!owner)
    return std::move(owner.error());
  return impl_->ask<twin_view>(*owner, get_atom::value, id);
}

std::vector<caf::expected<twin_view>> node::get_many(const std::vector<std::string>& ids) {
  auto& ctx = *impl_->ctx;
  std::vector<caf::expected<twin_view>> out;
  out.reserve(ids.size());
  caf::scoped_actor self{*impl_->sys};
  using handle = decltype(self->request(std::declval<const shard_actor&>(), caf::infinite,
                                       get_atom::value, std::declval<const std::string&>()));
  std::vector<handle> asked;
  std::vector<size_t> asked_index;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ctx.cat.contains(ids[i])) {
      out.emplace_back(make_error(errc::unknown_twin, "no twin " + ids[i]));
      continue;
    }
    auto owner = ctx.directory->owner_of(ids[i]);
    if (!owner) {
      out.emplace_back(std::move(owner.error()));
      continue;
    }
    out.emplace_back(caf::error{});
    asked.push_back(self->request(*owner, caf::infinite, get_atom::value, ids[i]));
    asked_index.push_back(i);
  }
  for (size_t k = 0; k < asked.size(); ++k) {
    auto& dest = out[asked_index[k]];
    asked[k].receive([&](twin_view& v) { dest = std::move(v); },
                     [&](caf::error& e) { dest = std::move(e); });
  }
  return out;
}

caf::expected<std::vector<history_point>>
node::history(const std::string& id, const std::string& channel, int64_t from_ms,
              int64_t to_ms, size_t limit) {
  auto& ctx = *impl_->ctx;
  auto m = ctx.cat.find(id);
  if (!m)
    return make_error(errc::unknown_twin, "no twin " + id);
  auto model = ctx.model_of(m->kind);
  // Every twin has the reserved offline channel: no marks is an empty history.
  if (channel != twins::offline_channel && !model->find_channel(channel, nullptr)) {
    // A channel dropped by a newer model still reads back if it has history.
    auto points = ctx.db->read_history(*m, channel, from_ms, to_ms, 1);
    if (points.empty())
      return make_error(errc::bad_request,
                        "twin " + id + " (kind " + m->kind + "): unknown channel " + channel);
  }
  return ctx.db->read_history(*m, channel, from_ms, to_ms, limit);
}

std::shared_ptr<const twin_view> node::cached(const std::string& id) const {
  auto& ctx = *impl_->ctx;
  auto v = ctx.views.find(id);
  // Deleted, or moved with the twin's actor not told yet: ask the actor.
  if (!v || !ctx.cat.parent_is(id, v->meta.parent))
    return nullptr;
  // A child created or deleted reaches the parent's state later; count now.
  auto children = ctx.cat.child_count(id);
  if (children == v->children)
    return v;
  auto copy = std::make_shared<twin_view>(*v);
  copy->children = children;
  return copy;
}

void node::get_async(const std::string& id,
                     std::function<void(caf::expected<twin_view>)> done) {
  auto& ctx = *impl_->ctx;
  if (!ctx.cat.contains(id))
    return done(make_error(errc::unknown_twin, "no twin " + id));
  auto owner = ctx.directory->owner_of(id);
  if (!owner)
    return done(std::move(owner.error()));
  caf::anon_send(impl_->bridge, get_atom::value, *owner, id,
                 std::make_shared<get_done>(std::move(done)));
}

void node::ingest_async(std::vector<twins::sample> batch,
                        std::function<void(caf::expected<twins::ingest_result>)> done) {
  sample_batch shared{std::move(batch)};
  caf::anon_send(impl_->bridge, ingest_atom::value, impl_->gate, shared,
                 std::make_shared<ingest_done>(std::move(done)));
}

bool node::in_tree(const std::string& root, const std::string& id) const {
  return root.empty() || impl_->ctx->cat.is_ancestor(root, id);
}

std::vector<bool> node::in_tree(const std::string& root,
                                const std::vector<std::string_view>& ids) const {
  return impl_->ctx->cat.below(root, ids);
}

caf::expected<query_result> node::query(const query_request& q) {
  auto& ctx = *impl_->ctx;
  auto page = ctx.index.run(q);
  if (!page)
    return std::move(page.error());
  query_result out;
  out.total = page->total;
  out.next_page_token = std::move(page->next_page_token);
  out.twins.reserve(page->hits.size());
  std::vector<size_t> newer; // positions whose matched state is not stored yet
  std::vector<std::string> newer_ids;
  for (auto& hit : page->hits) {
    auto m = ctx.cat.find(hit.id);
    if (!m || m->number != hit.number)
      continue; // deleted since
    twin_view v;
    v.children = ctx.cat.child_count(hit.id);
    v.meta = std::move(*m);
    auto st = ctx.db->load_state(v.meta);
    if (st && st->version >= hit.version) {
      v.state = std::move(*st);
    } else if (auto c = cached(hit.id); c && c->state.version >= hit.version) {
      v = *c;
    } else {
      newer.push_back(out.twins.size());
      newer_ids.push_back(hit.id);
    }
    out.twins.push_back(std::move(v));
  }
  if (!newer.empty()) {
    auto got = get_many(newer_ids);
    std::vector<bool> gone(out.twins.size());
    for (size_t k = 0; k < newer.size(); ++k) {
      if (got[k])
        out.twins[newer[k]] = std::move(*got[k]);
      else
        gone[newer[k]] = true; // deleted since
    }
    size_t kept = 0;
    for (size_t i = 0; i < out.twins.size(); ++i) {
      if (gone[i])
        continue;
      if (kept != i) // never onto itself: a self-move empties the view
        out.twins[kept] = std::move(out.twins[i]);
      ++kept;
    }
    out.twins.resize(kept);
  }
  return out;
}

caf::expected<std::vector<history_step>> node::history(const history_request& request) {
  auto r = checked(request);
  if (!r)
    return std::move(r.error());
  auto raw = history(r->id, r->channel, r->from_ms, r->to_ms,
                     r->step_ms > 0 ? history_request::max_raw_points : r->limit);
  if (!raw)
    return std::move(raw.error());
  return downsample(*raw, r->step_ms, r->limit);
}

std::vector<twin_view> node::stored(const std::string& subtree, const std::string& kind) {
  auto& ctx = *impl_->ctx;
  std::vector<twin_view> out;
  for (auto& m : ctx.cat.subtree(subtree)) {
    if (!kind.empty() && m.kind != kind)
      continue;
    twin_view v;
    v.children = ctx.cat.child_count(m.id);
    if (auto st = ctx.db->load_state(m))
      v.state = std::move(*st);
    v.meta = std::move(m);
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.meta.id < b.meta.id; });
  return out;
}

caf::error node::remove(const std::string& id) {
  auto& ctx = *impl_->ctx;
  if (ctx.db->failed())
    return make_error(errc::storage_failure, ctx.db->failure());
  auto m = ctx.cat.find(id);
  if (!m)
    return make_error(errc::unknown_twin, "no twin " + id);
  if (auto n = ctx.cat.child_count(id); n > 0)
    return make_error(errc::conflict, "twin " + id + " has " + std::to_string(n)
                                        + " children; move or delete them first");
  auto owner = ctx.directory->owner_of(id);
  if (!owner)
    return std::move(owner.error());
  caf::expected<shard_actor> parent_owner{shard_actor{}};
  if (!m->parent.empty()) {
    parent_owner = ctx.directory->owner_of(m->parent);
    if (!parent_owner)
      return std::move(parent_owner.error());
  }
  ctx.cat.erase(id);
  ctx.index.erase(id);
  caf::anon_send(*owner, delete_atom::value, id, m->kind);
  if (!m->parent.empty())
    caf::anon_send(*parent_owner, drop_atom::value, m->parent, id);
  auto wb = ctx.db->new_batch();
  wb.delete_twin(*m);
  // Its open alerts clear with it (and say so to the sinks).
  std::vector<event> events;
  auto now = now_ms();
  for (auto& a : ctx.db->load_alerts()) {
    if (a.twin != id || a.state == twins::alert_phase::idle)
      continue;
    a.state = twins::alert_phase::idle;
    a.cleared_ms = now;
    a.cleared_value = a.raised_value;
    a.note = a.note.empty() ? "twin deleted" : a.note + "; twin deleted";
    impl_->probe.alert_changed(a.sev, -1);
    events.push_back(make_alert_event(a, "cleared", a.raised_value, now));
    wb.put_alert(a);
  }
  std::promise<std::string> durable;
  ctx.db->commit(std::move(wb), std::move(events),
                 [&durable](const std::string& failure) { durable.set_value(failure); });
  if (auto failure = durable.get_future().get(); !failure.empty())
    return make_error(errc::storage_failure, failure);
  return {};
}

std::shared_ptr<change_subscription> node::watch(const std::string& subtree,
                                                 const std::string& scope) {
  std::weak_ptr<node_context> weak = impl_->ctx;
  return impl_->ctx->feed.subscribe([weak, subtree, scope](const std::string& id) {
    auto ctx = weak.lock(); // a subscription may outlive its node: then it sees nothing
    return ctx && (subtree.empty() || ctx->cat.is_ancestor(subtree, id))
           && (scope.empty() || ctx->cat.is_ancestor(scope, id));
  });
}

model_load node::reload_models(const std::string& dir) {
  return impl_->take_models(twins::load_model_dir(dir), false);
}

model_load
node::reload_model_texts(const std::vector<std::pair<std::string, std::string>>& files) {
  return impl_->take_models(twins::load_model_texts(files), false);
}

std::vector<twins::model_set::model_ptr> node::models() const {
  std::shared_lock<std::shared_mutex> g(impl_->ctx->models_mtx);
  std::vector<twins::model_set::model_ptr> out;
  for (auto& [k, m] : impl_->ctx->models.all())
    out.push_back(m);
  return out;
}

twins::model_set::model_ptr node::model(const std::string& kind) const {
  return impl_->ctx->model_of(kind);
}

std::vector<twin_meta> node::twins() const {
  auto all = impl_->ctx->cat.all();
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return all;
}

size_t node::twin_count() const {
  return impl_->ctx->cat.size();
}

std::string node::metrics_address() const {
  return impl_->metrics ? impl_->metrics->address() : std::string();
}

void node::passivate_all() {
  for (auto& s : impl_->ctx->shards)
    caf::anon_send(s, passivate_atom::value);
}

int64_t node::active_twins() const {
  return impl_->probe.active_twins();
}

std::vector<alert_record> node::alerts(const std::string& subtree,
                                       std::optional<twins::alert_phase> state) const {
  auto all = impl_->ctx->db->load_alerts();
  std::vector<std::string_view> ids;
  ids.reserve(all.size());
  for (auto& a : all)
    ids.push_back(a.twin);
  auto inside = in_tree(subtree, ids);
  std::vector<alert_record> out;
  for (size_t i = all.size(); i-- > 0;)
    if (inside[i] && (!state || all[i].state == *state))
      out.push_back(std::move(all[i]));
  return out;
}

void node::ack_alert_async(uint64_t id, const std::string& by, const std::string& note,
                           std::function<void(caf::expected<alert_record>)> done) {
  auto a = impl_->ctx->db->load_alert(id);
  if (!a)
    return done(make_error(errc::unknown_twin, "no alert " + std::to_string(id)));
  if (a->state == twins::alert_phase::idle)
    return done(make_error(errc::conflict, "alert " + std::to_string(id) + " is cleared"));
  auto owner = impl_->ctx->directory->owner_of(a->twin);
  if (!owner)
    return done(std::move(owner.error()));
  caf::anon_send(impl_->bridge, ack_atom::value, *owner, ack_request{a->twin, id, by, note},
                 std::make_shared<ack_done>(std::move(done)));
}

caf::expected<alert_record> node::ack_alert(uint64_t id, const std::string& by,
                                            const std::string& note) {
  std::promise<caf::expected<alert_record>> p;
  auto f = p.get_future();
  ack_alert_async(id, by, note, [&p](caf::expected<alert_record> r) { p.set_value(std::move(r)); });
  return f.get();
}

void node::add_event_sink(sink_settings settings, std::unique_ptr<event_sink> sink,
                          std::vector<event_filter> routes) {
  impl_->router->add_sink(std::move(settings), std::move(sink), std::move(routes));
}

std::vector<sink_status> node::event_sinks() const {
  return impl_->router->status();
}

runtime_probe& node::probe() {
  return impl_->probe;
}

const node_config& node::config() const {
  return impl_->ctx->cfg;
}

const shard_directory& node::directory() const {
  return *impl_->ctx->directory;
}

storage& node::store() {
  return *impl_->ctx->db;
}

caf::actor_system& node::system() {
  return *impl_->sys;
}

} // namespace twinrt::runtime
