// node::create, reparent, remove, and the alerts of twins.

#include <algorithm>
#include <future>
#include <unordered_map>

#include <caf/send.hpp>

#include "twinrt/runtime/internal/local_messages.hpp"
#include "twinrt/runtime/internal/node_impl.hpp"
#include "twinrt/twins/names.hpp"

namespace twinrt::runtime {

using namespace internal;

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
  auto now = ctx.now_ms();
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
  auto now = ctx.now_ms();
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

} // namespace twinrt::runtime
