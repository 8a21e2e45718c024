#include "twinrt/runtime/storage.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <rocksdb/table.h>
#include <rocksdb/cache.h>

#include "records.capnp.h"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/sharding.hpp"
#include "twinrt/twins/names.hpp"

namespace twinrt::runtime {

namespace {

void append_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i)
    s.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

void append_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i)
    s.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

uint32_t read_be32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t read_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Signed timestamps sort correctly as unsigned once the sign bit is flipped.
uint64_t ts_key(int64_t ts) {
  return static_cast<uint64_t>(ts) ^ (uint64_t{1} << 63);
}

std::string state_key(uint32_t number) {
  std::string k("S");
  append_be32(k, number);
  return k;
}

std::string history_prefix(uint32_t number, const std::string& channel) {
  std::string k("H");
  append_be32(k, number);
  k += channel;
  k.push_back('\0');
  return k;
}

std::string to_bytes(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

caf::error corrupt(const char* type, const std::string& why) {
  return make_error(errc::corrupt_record, std::string("stored ") + type + ": " + why);
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

// What a key holds, for a log line: "state of twin #7".
std::string describe_key(std::string_view k) {
  if (k.empty())
    return "an empty key";
  auto rest = k.substr(1);
  switch (k[0]) {
    case 'S':
      if (rest.size() == 4)
        return "state of twin #" + std::to_string(read_be32(rest.data()));
      break;
    case 'M':
      return "meta of twin " + twins::printable(rest);
    case 'H':
      if (rest.size() > 4 + 1 + 12) {
        auto channel = rest.substr(4, rest.size() - 4 - 1 - 12);
        auto ts = static_cast<int64_t>(read_be64(rest.data() + rest.size() - 12)
                                       ^ (uint64_t{1} << 63));
        return "history of twin #" + std::to_string(read_be32(rest.data())) + " channel "
               + twins::printable(channel) + " at " + std::to_string(ts) + " ms";
      }
      break;
    case 'D':
      if (auto nul = rest.find('\0'); nul != std::string_view::npos && rest.size() == nul + 5)
        return "model " + twins::printable(rest.substr(0, nul)) + " v"
               + std::to_string(read_be32(rest.data() + nul + 1));
      break;
    case 'A':
    case 'E':
      if (rest.size() == 8)
        return std::string(k[0] == 'A' ? "alert " : "event ")
               + std::to_string(read_be64(rest.data()));
      break;
    case 'C':
      return "cursor of sink " + twins::printable(rest);
  }
  return "key " + twins::printable(k);
}

void fatal(const char* what, const rocksdb::Status& s) {
  std::fprintf(stderr, "twinrt: fatal storage error in %s: %s\n", what,
               s.ToString().c_str());
  std::abort();
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

std::string id_key(char prefix, uint64_t id) {
  std::string k(1, prefix);
  append_be64(k, id);
  return k;
}

twins::severity read_severity(uint8_t v) {
  return static_cast<twins::severity>(std::min<uint8_t>(v, 2));
}

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

// The highest id under a one-letter prefix of 8-byte ids; 0 when none.
uint64_t last_id(rocksdb::DB& db, char prefix) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(id_key(prefix, ~uint64_t{0}));
  if (!it->Valid() || it->key().size() != 9 || it->key()[0] != prefix)
    return 0;
  return read_be64(it->key().data() + 1);
}

} // namespace

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

namespace {

const char* const virtual_shards_key = "Pvirtual_shards";

// The stored virtual shard count; when there is none, stores `for_new_data`
// in an empty database and the default in data written before the count was
// kept. Returns 0 and sets `error` when it cannot.
uint32_t settle_virtual_shards(rocksdb::DB& db, const storage_options& opts, std::string& error) {
  std::string value;
  auto s = db.Get(rocksdb::ReadOptions(), virtual_shards_key, &value);
  if (s.ok()) {
    auto n = value.size() == 4 ? read_be32(value.data()) : 0;
    if (n > 0 && n <= max_virtual_shards)
      return n;
    error = "data directory " + opts.path + ": the stored number of virtual shards is "
            + (value.size() == 4 ? std::to_string(n) : std::to_string(value.size()) + " bytes long")
            + ", not 1.." + std::to_string(max_virtual_shards);
    return 0;
  }
  if (!s.IsNotFound()) {
    error = "data directory " + opts.path + ": cannot read the number of virtual shards: "
            + s.ToString();
    return 0;
  }
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  it->SeekToFirst();
  uint32_t n = it->Valid() ? default_virtual_shards : opts.virtual_shards;
  if (n == 0 || n > max_virtual_shards) {
    error = "data directory " + opts.path + ": virtual_shards = " + std::to_string(n)
            + " is outside 1.." + std::to_string(max_virtual_shards);
    return 0;
  }
  std::string bytes;
  append_be32(bytes, n);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db.Put(wo, virtual_shards_key, bytes);
  if (!s.ok()) {
    error = "data directory " + opts.path + ": cannot store the number of virtual shards: "
            + s.ToString();
    return 0;
  }
  return n;
}

} // namespace

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

void storage::refuse(std::string_view key, const caf::error& why) const {
  {
    std::lock_guard<std::mutex> g(corrupt_mtx_);
    if (!corrupt_keys_.emplace(key).second)
      return;
  }
  corrupt_records_.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "twinrt: corrupt record refused: %s: %s; skipped\n",
               describe_key(key).c_str(), describe(why).c_str());
}

uint64_t storage::corrupt_records() const {
  return corrupt_records_.load(std::memory_order_relaxed);
}

std::unique_ptr<storage> storage::open(const storage_options& opts, std::string& error) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.IncreaseParallelism(2);
  o.max_background_jobs = 2;
  o.write_buffer_size = opts.write_buffer_mb << 20;
  o.max_write_buffer_number = 4;
  o.compression = rocksdb::kLZ4Compression;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(opts.block_cache_mb << 20);
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  std::unique_ptr<rocksdb::Env> env;
  if (opts.file_system) {
    env = rocksdb::NewCompositeEnv(opts.file_system);
    o.env = env.get();
  }
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, opts.path, &raw);
  if (!s.ok() && s.IsInvalidArgument()) {
    o.compression = rocksdb::kSnappyCompression; // LZ4 not built in
    s = rocksdb::DB::Open(o, opts.path, &raw);
  }
  if (!s.ok()) {
    error = "cannot open data directory " + opts.path + ": " + s.ToString();
    return nullptr;
  }
  std::unique_ptr<storage> st(new storage());
  st->env_ = std::move(env);
  st->db_.reset(raw);
  st->sync_wal_ = opts.sync_wal;
  st->virtual_shards_ = settle_virtual_shards(*st->db_, opts, error);
  if (st->virtual_shards_ == 0)
    return nullptr; // closes the database; no committer runs yet
  st->last_event_id_ = last_id(*st->db_, 'E');
  st->durable_event_id_ = st->last_event_id_;
  st->committer_ = std::thread([p = st.get()] { p->run_committer(); });
  return st;
}

storage::~storage() {
  {
    std::lock_guard<std::mutex> g(mtx_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (committer_.joinable())
    committer_.join();
  if (db_) {
    if (!failed())
      db_->FlushWAL(true);
    db_->Close();
    db_.reset(); // before env_
  }
}

std::string storage::fail(const char* what, const rocksdb::Status& s) {
  std::lock_guard<std::mutex> g(failure_mtx_);
  if (failure_.empty()) {
    failure_ = std::string("storage_failed: ") + what + ": " + s.ToString();
    std::fprintf(stderr, "twinrt: %s; nothing more is acknowledged until a restart\n",
                 failure_.c_str());
    failed_.store(true, std::memory_order_release);
  }
  return failure_;
}

std::string storage::failure() const {
  std::lock_guard<std::mutex> g(failure_mtx_);
  return failure_;
}

void storage::run_committer() {
  std::deque<pending> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(mtx_);
      cv_.wait(g, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_)
        return;
      work.swap(queue_);
    }
    rocksdb::WriteOptions wo;
    wo.sync = false;
    std::string failure = this->failure(); // once failed, nothing is written
    auto first_event = last_event_id_;
    for (auto& p : work) {
      if (!failure.empty())
        break;
      for (auto& e : p.events) {
        e.id = ++last_event_id_;
        p.batch.Put(id_key('E', e.id), encode_event(e));
      }
      auto s = db_->Write(wo, &p.batch);
      if (!s.ok())
        failure = fail("write", s);
    }
    if (failure.empty() && sync_wal_) {
      auto s = db_->SyncWAL();
      if (!s.ok())
        failure = fail("WAL sync", s);
      else
        wal_syncs_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!failure.empty()) {
      last_event_id_ = first_event; // none of the group's events is durable
      for (auto& p : work)
        if (p.done)
          p.done(failure);
      work.clear();
      continue;
    }
    commit_groups_.fetch_add(1, std::memory_order_relaxed);
    if (durable_event_id_.load() != last_event_id_) {
      {
        std::lock_guard<std::mutex> g(events_mtx_);
        durable_event_id_ = last_event_id_;
      }
      events_cv_.notify_all();
    }
    static const std::string durable;
    for (auto& p : work)
      if (p.done)
        p.done(durable);
    work.clear();
  }
}

void storage::commit(rocksdb::WriteBatch wb, commit_done done) {
  commit(std::move(wb), {}, std::move(done));
}

void storage::commit(rocksdb::WriteBatch wb, std::vector<event> events, commit_done done) {
  {
    std::lock_guard<std::mutex> g(mtx_);
    queue_.push_back({std::move(wb), std::move(done), std::move(events)});
  }
  cv_.notify_one();
}

std::string storage::commit_and_wait(rocksdb::WriteBatch wb) {
  std::mutex m;
  std::condition_variable cv;
  bool ready = false;
  std::string failure;
  commit(std::move(wb), [&](const std::string& why) {
    std::lock_guard<std::mutex> g(m);
    failure = why;
    ready = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> g(m);
  cv.wait(g, [&] { return ready; });
  return failure;
}

void storage::put_meta(rocksdb::WriteBatch& wb, const twin_meta& m) {
  capnp::MallocMessageBuilder msg(64);
  auto b = msg.initRoot<records::TwinMeta>();
  b.setId(m.id);
  b.setNumber(m.number);
  b.setKind(m.kind);
  b.setParent(m.parent);
  wb.Put("M" + m.id, to_bytes(msg));
}

void storage::delete_meta(rocksdb::WriteBatch& wb, const std::string& id) {
  wb.Delete("M" + id);
}

void storage::delete_twin_data(rocksdb::WriteBatch& wb, uint32_t number) {
  wb.Delete(state_key(number));
  std::string from("H");
  append_be32(from, number);
  std::string to("H");
  append_be32(to, number + 1);
  wb.DeleteRange(from, to);
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

caf::expected<twins::twin_state> storage::checked_state(uint32_t number,
                                                        std::string_view bytes) const {
  auto st = decode_state(bytes);
  if (!st)
    refuse(state_key(number), st.error());
  return st;
}

void storage::put_state(rocksdb::WriteBatch& wb, uint32_t number, const twins::twin_state& st) {
  wb.Put(state_key(number), encode_state(st));
}

void storage::put_state_bytes(rocksdb::WriteBatch& wb, uint32_t number, const std::string& bytes) {
  wb.Put(state_key(number), bytes);
}

void storage::put_history(rocksdb::WriteBatch& wb, uint32_t number, const std::string& channel,
                          int64_t ts_ms, double value, uint32_t model_version,
                          const std::string& source, uint64_t seq) {
  auto key = history_prefix(number, channel);
  append_be64(key, ts_key(ts_ms));
  // Two sources may report the same channel in the same millisecond: a
  // suffix from (source, seq) keeps both, while a redelivery of the same
  // sample lands on the same key.
  uint32_t suffix = 0;
  if (!source.empty() || seq != 0) {
    auto h = stable_hash(source) ^ (seq * 0x9e3779b97f4a7c15ull);
    suffix = static_cast<uint32_t>(h ^ (h >> 32));
  }
  append_be32(key, suffix);
  capnp::MallocMessageBuilder msg(16);
  auto b = msg.initRoot<records::HistoryPoint>();
  b.setValue(value);
  b.setModelVersion(model_version);
  if (!source.empty())
    b.setSource(source);
  b.setSeq(seq);
  wb.Put(key, to_bytes(msg));
}

void storage::put_model(rocksdb::WriteBatch& wb, const stored_model& m) {
  std::string key("D");
  key += m.kind;
  key.push_back('\0');
  append_be32(key, m.version);
  capnp::MallocMessageBuilder msg;
  auto b = msg.initRoot<records::ModelText>();
  b.setKind(m.kind);
  b.setVersion(m.version);
  b.setText(m.text);
  wb.Put(key, to_bytes(msg));
}

std::vector<twin_meta> storage::load_metas() const {
  std::vector<twin_meta> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("M"); it->Valid() && it->key().starts_with("M"); it->Next()) {
    if (auto m = decode_meta(view(it->value())))
      out.push_back(std::move(*m));
    else
      refuse(view(it->key()), m.error());
  }
  return out;
}

std::optional<twins::twin_state> storage::load_state(uint32_t number) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), state_key(number), &value);
  if (s.IsNotFound())
    return std::nullopt;
  if (s.IsCorruption()) {
    refuse(state_key(number), corrupt("TwinState", s.ToString()));
    return std::nullopt;
  }
  if (!s.ok())
    fatal("state read", s);
  if (auto st = checked_state(number, value))
    return std::move(*st);
  return std::nullopt;
}

std::vector<history_point> storage::read_history(uint32_t number, const std::string& channel,
                                                 int64_t from_ms, int64_t to_ms,
                                                 size_t limit) const {
  std::vector<history_point> out;
  auto prefix = history_prefix(number, channel);
  auto start = prefix;
  append_be64(start, ts_key(from_ms));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(start); it->Valid() && out.size() < limit; it->Next()) {
    auto k = it->key();
    if (!k.starts_with(prefix) || k.size() != prefix.size() + 12)
      break;
    auto ts = static_cast<int64_t>(read_be64(k.data() + prefix.size()) ^ (uint64_t{1} << 63));
    if (ts >= to_ms)
      break;
    auto p = decode_history_point(view(it->value()));
    if (!p) {
      refuse(view(k), p.error());
      continue;
    }
    p->ts_ms = ts;
    out.push_back(std::move(*p));
  }
  return out;
}

std::vector<stored_model> storage::load_models() const {
  std::vector<stored_model> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("D"); it->Valid() && it->key().starts_with("D"); it->Next()) {
    if (auto m = decode_model(view(it->value())))
      out.push_back(std::move(*m));
    else
      refuse(view(it->key()), m.error());
  }
  return out;
}

void storage::put_alert(rocksdb::WriteBatch& wb, const alert_record& a) {
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
  wb.Put(id_key('A', a.id), to_bytes(msg));
}

void storage::put_cursor(rocksdb::WriteBatch& wb, const std::string& sink, uint64_t event_id) {
  std::string v;
  append_be64(v, event_id);
  wb.Put("C" + sink, v);
}

std::optional<alert_record> storage::load_alert(uint64_t id) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), id_key('A', id), &value);
  if (s.IsNotFound())
    return std::nullopt;
  if (s.IsCorruption()) {
    refuse(id_key('A', id), corrupt("Alert", s.ToString()));
    return std::nullopt;
  }
  if (!s.ok())
    fatal("alert read", s);
  auto a = decode_alert(value);
  if (!a) {
    refuse(id_key('A', id), a.error());
    return std::nullopt;
  }
  return std::move(*a);
}

std::vector<alert_record> storage::load_alerts() const {
  std::vector<alert_record> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("A"); it->Valid() && it->key().starts_with("A"); it->Next()) {
    if (auto a = decode_alert(view(it->value())))
      out.push_back(std::move(*a));
    else
      refuse(view(it->key()), a.error());
  }
  return out;
}

uint64_t storage::last_alert_id() const {
  return last_id(*db_, 'A');
}

event_page storage::read_events(uint64_t after, size_t limit) const {
  event_page out;
  out.last_id = after;
  auto durable = durable_event_id_.load();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(id_key('E', after + 1)); it->Valid() && out.events.size() < limit; it->Next()) {
    auto k = it->key();
    if (k.size() != 9 || k[0] != 'E' || read_be64(k.data() + 1) > durable)
      break;
    out.last_id = read_be64(k.data() + 1);
    auto e = decode_event(view(it->value()));
    if (e && e->id != out.last_id)
      e = corrupt("Event", "id " + std::to_string(e->id) + " under the key of event "
                             + std::to_string(out.last_id));
    if (e)
      out.events.push_back(std::move(*e));
    else
      refuse(view(k), e.error());
  }
  return out;
}

bool storage::wait_for_events(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> g(events_mtx_);
  return events_cv_.wait_for(g, timeout, [&] {
    return waiters_stopped_ || durable_event_id_.load() > after;
  }) && durable_event_id_.load() > after;
}

void storage::stop_waiters() {
  {
    std::lock_guard<std::mutex> g(events_mtx_);
    waiters_stopped_ = true;
  }
  events_cv_.notify_all();
}

uint64_t storage::load_cursor(const std::string& sink) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), "C" + sink, &value);
  if (s.IsNotFound())
    return 0;
  if (s.IsCorruption()) {
    refuse("C" + sink, corrupt("cursor", s.ToString()));
    return 0;
  }
  if (!s.ok())
    fatal("cursor read", s);
  if (value.size() != 8) {
    refuse("C" + sink, corrupt("cursor", std::to_string(value.size()) + " bytes, not 8"));
    return 0;
  }
  return read_be64(value.data());
}

void storage::trim_events(uint64_t below) {
  if (below <= 1)
    return;
  rocksdb::WriteBatch wb;
  wb.DeleteRange(id_key('E', 0), id_key('E', below));
  commit(std::move(wb), {});
}

uint64_t storage::int_property(const std::string& name) const {
  uint64_t v = 0;
  db_->GetIntProperty(name, &v);
  return v;
}

double storage::map_property(const std::string& name, const std::string& key) const {
  std::map<std::string, std::string> m;
  if (!db_->GetMapProperty(name, &m))
    return 0;
  auto i = m.find(key);
  if (i == m.end())
    return 0;
  char* end = nullptr;
  double v = std::strtod(i->second.c_str(), &end);
  return end == i->second.c_str() ? 0 : v; // not a number: 0
}

} // namespace twinrt::runtime
