// The Writer capability: ingest, twin creation, deletion and moves, alert
// acknowledgements.

#include <algorithm>

#include "twinrt/runtime/rpc/session.hpp"

namespace twinrt::runtime::rpc_api {

namespace {

class writer_impl : public rpc::Writer::Server, session_capability {
public:
  writer_impl(session_rights rights, shared_state& shared)
    : session_capability(std::move(rights), shared) {}

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
};

} // namespace

rpc::Writer::Client make_writer(const session_rights& rights, shared_state& shared) {
  return kj::heap<call_limited<writer_impl>>(rights.conn, rights, shared);
}

} // namespace twinrt::runtime::rpc_api
