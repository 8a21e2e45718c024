// The Admin capability: model loads and the audit trail.

#include "twinrt/runtime/rpc/session.hpp"

namespace twinrt::runtime::rpc_api {

namespace {

class admin_impl : public rpc::Admin::Server, session_capability {
public:
  admin_impl(session_rights rights, shared_state& shared)
    : session_capability(std::move(rights), shared) {}

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

};

} // namespace

rpc::Admin::Client make_admin(const session_rights& rights, shared_state& shared) {
  return kj::heap<call_limited<admin_impl>>(rights.conn, rights, shared);
}

} // namespace twinrt::runtime::rpc_api
