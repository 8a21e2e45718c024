#include "twinrt/runtime/storage/records.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "records.capnp.h"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/twins/names.hpp"

namespace twinrt::runtime {

namespace records_io {

caf::error corrupt(const char* type, const std::string& why) {
  return make_error(errc::corrupt_record, std::string("stored ") + type + ": " + why);
}

} // namespace records_io

namespace {

using records_io::corrupt;

std::string to_bytes(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}


// Reads one stored value as a `Record` with `read`, which returns
// caf::expected<T>. The one place where a malformed value's kj::Exception
// (a pointer out of bounds, a truncated segment, text without its NUL)
// becomes an error. Cap'n Proto needs word-aligned memory, which RocksDB
// values are not: the bytes are copied. A value is one whole message: no
// byte short, none over.
template <class Record, class Read>
auto decode_record(std::string_view bytes, const char* type, Read&& read)
  -> decltype(read(std::declval<typename Record::Reader>())) {
  constexpr size_t word = sizeof(capnp::word);
  if (bytes.empty())
    return corrupt(type, "the value is empty");
  if (bytes.size() % word != 0)
    return corrupt(type, std::to_string(bytes.size()) + " bytes, not a whole number of "
                           + std::to_string(word) + "-byte words");
  auto words = kj::heapArray<capnp::word>(bytes.size() / word);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions opts;
  // Each word is read once by a decoder; the bound stops a value that names
  // the same words many times (or a list of billions of empty structs) from
  // costing more than a few passes over its own size.
  opts.traversalLimitInWords = words.size() * 4 + 1024;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    if (reader.getEnd() != words.end())
      return corrupt(type, std::to_string((words.end() - reader.getEnd()) * word)
                             + " bytes after the end of the record");
    return read(reader.getRoot<Record>());
  } catch (const kj::Exception& e) {
    return corrupt(type, e.getDescription().cStr());
  }
}

void write_contribution(records::Contribution::Builder b, const twins::contribution& c) {
  auto sums = b.initSums(static_cast<unsigned>(c.sums.size()));
  unsigned i = 0;
  for (auto& [k, v] : c.sums) {
    sums[i].setKey(k);
    sums[i].setValue(v);
    ++i;
  }
  b.setHealthOk(c.counts[0]);
  b.setHealthWarning(c.counts[1]);
  b.setHealthAlarm(c.counts[2]);
  b.setHealthStale(c.counts[3]);
  b.setScoreSum(c.score_sum);
  b.setScoreCount(c.score_count);
  b.setWorstId(c.worst_id);
  b.setWorstStatus(static_cast<uint8_t>(c.worst_status));
  b.setLatestTsMs(c.latest_ts_ms);
}

twins::contribution read_contribution(records::Contribution::Reader r) {
  twins::contribution c;
  for (auto s : r.getSums())
    c.sums.emplace(s.getKey().cStr(), s.getValue());
  c.counts = {r.getHealthOk(), r.getHealthWarning(), r.getHealthAlarm(), r.getHealthStale()};
  c.score_sum = r.getScoreSum();
  c.score_count = r.getScoreCount();
  c.worst_id = r.getWorstId().cStr();
  c.worst_status = static_cast<twins::health_status>(std::min<uint8_t>(r.getWorstStatus(), 3));
  c.latest_ts_ms = r.getLatestTsMs();
  return c;
}

void write_baseline(records::Baseline::Builder b, const twins::seasonal_baseline& v) {
  auto list = b.initBuckets(static_cast<unsigned>(v.buckets.size()));
  unsigned i = 0;
  for (auto& [bucket, m] : v.buckets) {
    list[i].setBucket(bucket);
    list[i].setMean(m.mean);
    list[i].setCount(m.count);
    list[i].setFirstCycle(m.first_cycle);
    ++i;
  }
  auto o = b.initOverall();
  o.setMean(v.overall.mean);
  o.setCount(v.overall.count);
  o.setFirstCycle(v.overall.first_cycle);
}

twins::seasonal_baseline read_baseline(records::Baseline::Reader r) {
  twins::seasonal_baseline v;
  for (auto b : r.getBuckets())
    v.buckets[b.getBucket()] = {b.getMean(), b.getCount(), b.getFirstCycle()};
  auto o = r.getOverall();
  v.overall = {o.getMean(), o.getCount(), o.getFirstCycle()};
  return v;
}

// Optional report values travel as NaN when absent.
double or_nan(const std::optional<double>& v) {
  return v ? *v : std::numeric_limits<double>::quiet_NaN();
}

std::optional<double> unless_nan(double v) {
  return std::isnan(v) ? std::nullopt : std::optional<double>(v);
}

void write_analytics(records::Analytics::Builder b, const twins::analytics_state& a) {
  auto trends = b.initTrends(static_cast<unsigned>(a.trends.size()));
  unsigned i = 0;
  for (auto& [channel, trend] : a.trends) {
    auto s = trend.save();
    auto t = trends[i++];
    t.setChannel(channel);
    t.setLastMs(s.last_ms);
    t.setFirstMs(s.first_ms);
    t.setS0(s.s0);
    t.setSt(s.st);
    t.setSy(s.sy);
    t.setStt(s.stt);
    t.setSty(s.sty);
    t.setSyy(s.syy);
    t.setSww(s.sww);
    t.setResets(s.resets);
    auto held = t.initHeld(static_cast<unsigned>(s.held.size()));
    for (unsigned h = 0; h < s.held.size(); ++h) {
      held[h].setTimestampMs(s.held[h].first);
      held[h].setValue(s.held[h].second);
    }
  }
  auto& p = a.production;
  b.setWindowStartMs(p.window_start_ms);
  auto contributors = b.initContributors(static_cast<unsigned>(p.contributors.size()));
  i = 0;
  for (auto& [id, c] : p.contributors) {
    auto t = contributors[i++];
    t.setId(id);
    t.setAnchorMs(c.anchor.ts_ms);
    t.setAnchorParts(c.anchor.parts);
    t.setAnchorEnergyKwh(c.anchor.energy_kwh);
    t.setAnchorIdleEnergyKwh(c.anchor.idle_energy_kwh);
    t.setHasRate(c.has_rate);
    t.setPartsPerH(c.parts_per_h);
    t.setEnergyKwhPerH(c.energy_kwh_per_h);
    t.setIdleEnergyKwhPerH(c.idle_energy_kwh_per_h);
  }
  write_baseline(b.initThroughput(), p.throughput);
  write_baseline(b.initBusyEnergy(), p.busy_energy);
  write_baseline(b.initIdleEnergy(), p.idle_energy);
  if (p.last) {
    b.setHasLast(true);
    auto r = b.initLast();
    r.setThroughputPerH(p.last->throughput_per_h);
    r.setThroughputBaselinePerH(or_nan(p.last->throughput_baseline_per_h));
    r.setThroughputDeviationPct(or_nan(p.last->throughput_deviation_pct));
    r.setEnergyPerUnitKwh(or_nan(p.last->energy_per_unit_kwh));
    r.setEnergyPerUnitBaselineKwh(or_nan(p.last->energy_per_unit_baseline_kwh));
    r.setIdleEnergyKwhPerH(p.last->idle_energy_kwh_per_h);
    r.setIdleEnergyBaselineKwhPerH(or_nan(p.last->idle_energy_baseline_kwh_per_h));
    r.setEnergyWastePct(or_nan(p.last->energy_waste_pct));
  }
  b.setParts(a.parts);
  b.setLastPartsCounter(a.last_parts_counter);
  b.setIdleEnergyKwh(a.idle_energy_kwh);
  auto derived = b.initDerived(static_cast<unsigned>(a.derived.size()));
  i = 0;
  for (auto& [name, v] : a.derived) {
    derived[i].setKey(name);
    derived[i].setValue(v);
    ++i;
  }
  auto warnings = b.initWarnings(static_cast<unsigned>(a.warnings.size()));
  for (i = 0; i < a.warnings.size(); ++i)
    warnings.set(i, a.warnings[i]);
}

twins::analytics_state read_analytics(records::Analytics::Reader r) {
  twins::analytics_state a;
  for (auto t : r.getTrends()) {
    twins::degradation_trend::sums s;
    s.last_ms = t.getLastMs();
    s.first_ms = t.getFirstMs();
    s.s0 = t.getS0(), s.st = t.getSt(), s.sy = t.getSy();
    s.stt = t.getStt(), s.sty = t.getSty(), s.syy = t.getSyy(), s.sww = t.getSww();
    s.resets = t.getResets();
    for (auto h : t.getHeld())
      s.held.emplace_back(h.getTimestampMs(), h.getValue());
    a.trends.emplace(t.getChannel().cStr(), twins::degradation_trend::restore(s));
  }
  auto& p = a.production;
  p.window_start_ms = r.getWindowStartMs();
  for (auto t : r.getContributors()) {
    twins::contributor_track c;
    c.anchor = {t.getAnchorMs(), t.getAnchorParts(), t.getAnchorEnergyKwh(),
                t.getAnchorIdleEnergyKwh()};
    c.has_rate = t.getHasRate();
    c.parts_per_h = t.getPartsPerH();
    c.energy_kwh_per_h = t.getEnergyKwhPerH();
    c.idle_energy_kwh_per_h = t.getIdleEnergyKwhPerH();
    p.contributors.emplace(t.getId().cStr(), c);
  }
  p.throughput = read_baseline(r.getThroughput());
  p.busy_energy = read_baseline(r.getBusyEnergy());
  p.idle_energy = read_baseline(r.getIdleEnergy());
  if (r.getHasLast()) {
    auto l = r.getLast();
    twins::production_report rep;
    rep.throughput_per_h = l.getThroughputPerH();
    rep.throughput_baseline_per_h = unless_nan(l.getThroughputBaselinePerH());
    rep.throughput_deviation_pct = unless_nan(l.getThroughputDeviationPct());
    rep.energy_per_unit_kwh = unless_nan(l.getEnergyPerUnitKwh());
    rep.energy_per_unit_baseline_kwh = unless_nan(l.getEnergyPerUnitBaselineKwh());
    rep.idle_energy_kwh_per_h = l.getIdleEnergyKwhPerH();
    rep.idle_energy_baseline_kwh_per_h = unless_nan(l.getIdleEnergyBaselineKwhPerH());
    rep.energy_waste_pct = unless_nan(l.getEnergyWastePct());
    p.last = rep;
  }
  a.parts = r.getParts();
  a.last_parts_counter = r.getLastPartsCounter();
  a.idle_energy_kwh = r.getIdleEnergyKwh();
  for (auto d : r.getDerived())
    a.derived.emplace(d.getKey().cStr(), d.getValue());
  for (auto w : r.getWarnings())
    a.warnings.emplace_back(w.cStr());
  return a;
}

void write_alert_tracks(records::TwinState::Builder b, const twins::alert_tracks& tracks) {
  if (tracks.empty())
    return;
  auto l = b.initAlerts(static_cast<unsigned>(tracks.size()));
  unsigned i = 0;
  for (auto& [rule, t] : tracks) {
    auto a = l[i++];
    a.setRule(rule);
    a.setPhase(static_cast<uint8_t>(t.phase));
    a.setSinceMs(t.since_ms);
    a.setAlertId(t.alert_id);
    a.setValue(t.value);
    a.setAckedMs(t.acked_ms);
    a.setAckedBy(t.acked_by);
    a.setNote(t.note);
  }
}

twins::alert_tracks read_alert_tracks(records::TwinState::Reader r) {
  twins::alert_tracks out;
  for (auto a : r.getAlerts()) {
    twins::alert_track t;
    t.phase = static_cast<twins::alert_phase>(std::min<uint8_t>(a.getPhase(), 3));
    t.since_ms = a.getSinceMs();
    t.alert_id = a.getAlertId();
    t.value = a.getValue();
    t.acked_ms = a.getAckedMs();
    t.acked_by = a.getAckedBy().cStr();
    t.note = a.getNote().cStr();
    out.emplace(a.getRule().cStr(), std::move(t));
  }
  return out;
}

twins::severity read_severity(uint8_t v) {
  return static_cast<twins::severity>(std::min<uint8_t>(v, 2));
}

} // namespace

namespace records_io {

std::string encode_event(const event& e) {
  capnp::MallocMessageBuilder msg(64);
  auto b = msg.initRoot<records::Event>();
  b.setId(e.id);
  b.setType(e.type);
  b.setTwin(e.twin);
  b.setKind(e.kind);
  b.setSeverity(static_cast<uint8_t>(e.sev));
  b.setTimeMs(e.ts_ms);
  b.setDetails(e.details);
  return to_bytes(msg);
}

std::string encode_meta(const twin_meta& m) {
  capnp::MallocMessageBuilder msg(64);
  auto b = msg.initRoot<records::TwinMeta>();
  b.setId(m.id);
  b.setNumber(m.number);
  b.setKind(m.kind);
  b.setParent(m.parent);
  return to_bytes(msg);
}

std::string encode_history_point(double value, uint32_t model_version, const std::string& source,
                                 uint64_t seq) {
  capnp::MallocMessageBuilder msg(16);
  auto b = msg.initRoot<records::HistoryPoint>();
  b.setValue(value);
  b.setModelVersion(model_version);
  if (!source.empty())
    b.setSource(source);
  b.setSeq(seq);
  return to_bytes(msg);
}

std::string encode_model(const stored_model& m) {
  capnp::MallocMessageBuilder msg;
  auto b = msg.initRoot<records::ModelText>();
  b.setKind(m.kind);
  b.setVersion(m.version);
  b.setText(m.text);
  return to_bytes(msg);
}

std::string encode_alert(const alert_record& a) {
  capnp::MallocMessageBuilder msg(64);
  auto b = msg.initRoot<records::Alert>();
  b.setId(a.id);
  b.setTwin(a.twin);
  b.setKind(a.kind);
  b.setRule(a.rule);
  b.setValue(a.value);
  b.setSeverity(static_cast<uint8_t>(a.sev));
  b.setState(static_cast<uint8_t>(a.state));
  b.setRaisedMs(a.raised_ms);
  b.setRaisedValue(a.raised_value);
  b.setAckedMs(a.acked_ms);
  b.setAckedBy(a.acked_by);
  b.setNote(a.note);
  b.setClearedMs(a.cleared_ms);
  b.setClearedValue(a.cleared_value);
  b.setMessage(a.message);
  b.setEvent(a.event);
  return to_bytes(msg);
}

} // namespace records_io

caf::expected<event> storage::decode_event(std::string_view bytes) {
  return decode_record<records::Event>(bytes, "Event", [](records::Event::Reader e) {
    return caf::expected<event>(event{e.getId(), e.getType().cStr(), e.getTwin().cStr(),
                                      e.getKind().cStr(), read_severity(e.getSeverity()),
                                      e.getTimeMs(), e.getDetails().cStr()});
  });
}

caf::expected<alert_record> storage::decode_alert(std::string_view bytes) {
  return decode_record<records::Alert>(bytes, "Alert", [](records::Alert::Reader a) {
  alert_record out;
  out.id = a.getId();
  out.twin = a.getTwin().cStr();
  out.kind = a.getKind().cStr();
  out.rule = a.getRule().cStr();
  out.value = a.getValue().cStr();
  out.message = a.getMessage().cStr();
  out.event = a.getEvent().cStr();
  out.sev = read_severity(a.getSeverity());
  out.state = static_cast<twins::alert_phase>(std::min<uint8_t>(a.getState(), 3));
  out.raised_ms = a.getRaisedMs();
  out.raised_value = a.getRaisedValue();
  out.acked_ms = a.getAckedMs();
  out.acked_by = a.getAckedBy().cStr();
  out.note = a.getNote().cStr();
  out.cleared_ms = a.getClearedMs();
  out.cleared_value = a.getClearedValue();
  return caf::expected<alert_record>(std::move(out));
  });
}

caf::expected<twin_meta> storage::decode_meta(std::string_view bytes) {
  return decode_record<records::TwinMeta>(bytes, "TwinMeta", [](records::TwinMeta::Reader m) {
    return caf::expected<twin_meta>(
      twin_meta{m.getId().cStr(), m.getNumber(), m.getKind().cStr(), m.getParent().cStr()});
  });
}

caf::expected<history_point> storage::decode_history_point(std::string_view bytes) {
  return decode_record<records::HistoryPoint>(
    bytes, "HistoryPoint", [](records::HistoryPoint::Reader p) {
      return caf::expected<history_point>(
        history_point{0, p.getValue(), p.getModelVersion(), p.getSource().cStr(), p.getSeq()});
    });
}

caf::expected<stored_model> storage::decode_model(std::string_view bytes) {
  return decode_record<records::ModelText>(bytes, "ModelText", [](records::ModelText::Reader m) {
    return caf::expected<stored_model>(
      stored_model{m.getKind().cStr(), m.getVersion(), m.getText().cStr()});
  });
}

std::string storage::encode_state(const twins::twin_state& st) {
  capnp::MallocMessageBuilder msg(256);
  auto b = msg.initRoot<records::TwinState>();
  b.setVersion(st.version);
  b.setModelVersion(st.model_version);
  auto ch = b.initChannels(static_cast<unsigned>(st.channels.size()));
  unsigned i = 0;
  for (auto& [name, v] : st.channels) {
    ch[i].setName(name);
    ch[i].setValue(v.value);
    ch[i].setTimestampMs(v.ts_ms);
    ++i;
  }
  auto src = b.initSources(static_cast<unsigned>(st.sources.size()));
  i = 0;
  for (auto& [key, seq] : st.sources) {
    src[i].setChannel(key.first);
    src[i].setSource(key.second);
    src[i].setSeq(seq);
    ++i;
  }
  b.setEnergyKwh(st.energy_kwh);
  b.setEnergyTodayKwh(st.energy_today_kwh);
  b.setEnergyDay(st.energy_day);
  b.setLastPowerKw(st.last_power_kw);
  b.setLastPowerMs(st.last_power_ms);
  b.setLastCounterKwh(st.last_counter_kwh);
  auto stock = b.initStock(static_cast<unsigned>(st.stock.size()));
  i = 0;
  for (auto& [sku, units] : st.stock) {
    stock[i].setKey(sku);
    stock[i].setValue(static_cast<double>(units));
    ++i;
  }
  b.setStatus(static_cast<uint8_t>(st.status));
  b.setScore(st.score);
  b.setLastDataMs(st.last_data_ms);
  b.setCreatedMs(st.created_ms);
  b.setDataClock(1);
  b.setOffline(st.offline);
  write_contribution(b.initContribution(), st.own);
  write_alert_tracks(b, st.alerts);
  write_analytics(b.initAnalytics(), st.analytics);
  return to_bytes(msg);
}

caf::expected<twins::twin_state> storage::decode_state(std::string_view bytes) {
  return decode_record<records::TwinState>(bytes, "TwinState", [](records::TwinState::Reader s)
                                                                  -> caf::expected<twins::twin_state> {
  twins::twin_state st;
  st.version = s.getVersion();
  st.model_version = s.getModelVersion();
  for (auto c : s.getChannels())
    st.channels.emplace(c.getName().cStr(), twins::channel_value{c.getValue(), c.getTimestampMs()});
  for (auto c : s.getSources())
    st.sources.emplace(std::make_pair(std::string(c.getChannel().cStr()),
                                      std::string(c.getSource().cStr())),
                       c.getSeq());
  st.energy_kwh = s.getEnergyKwh();
  st.energy_today_kwh = s.getEnergyTodayKwh();
  st.energy_day = s.getEnergyDay();
  st.last_power_kw = s.getLastPowerKw();
  st.last_power_ms = s.getLastPowerMs();
  st.last_counter_kwh = s.getLastCounterKwh();
  for (auto c : s.getStock()) {
    // Units are whole; a double outside int64's range has no int64 value.
    double units = c.getValue();
    if (!(units >= -0x1p63 && units < 0x1p63) || units != std::trunc(units))
      return corrupt("TwinState", "stock of " + twins::printable(c.getKey().cStr()) + " is "
                                    + std::to_string(units) + ", not a whole number of units");
    st.stock.emplace(c.getKey().cStr(), static_cast<int64_t>(units));
  }
  st.status = static_cast<twins::health_status>(std::min<uint8_t>(s.getStatus(), 3));
  st.score = s.getScore();
  st.last_data_ms = s.getLastDataMs();
  st.created_ms = s.getCreatedMs();
  if (s.getDataClock() == 0) {
    // Written when lastDataMs was an arrival time: the newest sample time is
    // the newest channel time; a twin without channels had only its creation.
    st.created_ms = st.last_data_ms;
    st.last_data_ms = 0;
    for (auto& [name, v] : st.channels)
      st.last_data_ms = std::max(st.last_data_ms, v.ts_ms);
  }
  st.offline = s.getOffline();
  st.own = read_contribution(s.getContribution());
  st.alerts = read_alert_tracks(s);
  st.analytics = read_analytics(s.getAnalytics());
  return st;
  });
}

} // namespace twinrt::runtime
