// Reading twins: get, queries, history, the rollup tree, watches, models.

#include <algorithm>

#include <caf/send.hpp>

#include "twinrt/runtime/internal/local_messages.hpp"
#include "twinrt/runtime/internal/node_impl.hpp"

namespace twinrt::runtime {

using namespace internal;

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

std::shared_ptr<change_subscription> node::watch(const std::string& subtree,
                                                 const std::string& scope) {
  std::weak_ptr<node_context> weak = impl_->ctx;
  return impl_->ctx->feed.subscribe([weak, subtree, scope](const std::string& id) {
    auto ctx = weak.lock(); // a subscription may outlive its node: then it sees nothing
    return ctx && (subtree.empty() || ctx->cat.is_ancestor(subtree, id))
           && (scope.empty() || ctx->cat.is_ancestor(scope, id));
  });
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

} // namespace twinrt::runtime
