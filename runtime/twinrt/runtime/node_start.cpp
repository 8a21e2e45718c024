// node::start: storage, models, recovery of the rollups, the actors; and the
// model loads that follow at run time.

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>

#include <caf/send.hpp>

#include "twinrt/runtime/internal/node_impl.hpp"
#include "twinrt/schemas/builtin_models.hpp"

namespace twinrt::runtime {

using namespace internal;

model_load node::impl::take_models(const twins::model_files& files, bool at_start) {
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

void node::impl::warn_out_of_range(const std::string& kind, std::vector<std::string>& warnings) {
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

std::string node::impl::recover(watch_list& watches) {
  auto metas = ctx->cat.all();
  std::unordered_map<uint32_t, const twin_meta*> by_number;
  for (auto& m : metas)
    by_number[m.number] = &m;
  std::unordered_map<std::string, twins::twin_state> parents;
  std::unordered_map<std::string, twins::contribution> contributions;
  auto now = ctx->now_ms();
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

void node::impl::send_watches(watch_list watches) {
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

model_load node::reload_models(const std::string& dir) {
  return impl_->take_models(twins::load_model_dir(dir), false);
}

model_load
node::reload_model_texts(const std::vector<std::pair<std::string, std::string>>& files) {
  return impl_->take_models(twins::load_model_texts(files), false);
}

} // namespace twinrt::runtime
