#include "twinrt/runtime/rpc/session.hpp"

#include <cstring>

#include <kj/debug.h>

namespace twinrt::runtime::rpc_api {

namespace {

// The name of the exception context that carries the errc.
constexpr const char* errc_context = "twinrt errc";

} // namespace

[[noreturn]] void fail(errc code, const std::string& what) {
  // unavailable: the twin's shard has no owner for now (a move): retry.
  auto retry = code == errc::overloaded || code == errc::unavailable;
  kj::Exception e(retry ? kj::Exception::Type::OVERLOADED : kj::Exception::Type::FAILED,
                  __FILE__, __LINE__, kj::str(what.c_str()));
  e.wrapContext(errc_context, static_cast<int>(code), kj::str(to_string(code)));
  throw e;
}

[[noreturn]] void fail(const caf::error& e) {
  fail(runtime::code_of(e), describe(e));
}

[[noreturn]] void fail(const std::string& what) {
  fail(errc::permission_denied, what);
}

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

std::string unit_map::unit(const std::string& kind, const std::string& channel) {
  auto& m = models_[kind];
  if (!m)
    m = n_.model(kind);
  if (!m)
    return "";
  auto spec = m->find_channel(channel, nullptr);
  return spec ? spec->unit : "";
}

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

} // namespace twinrt::runtime::rpc_api
