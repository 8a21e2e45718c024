#include "twinrt/adapters/edge.hpp"

#include <fnmatch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "twinrt/adapters/batch_queue.hpp"
#include "twinrt/adapters/mqtt_client.hpp"
#include "twinrt/adapters/mqtt_json.hpp"
#include "twinrt/adapters/rate_limited_log.hpp"
#include "twinrt/adapters/rpc_ingest.hpp"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::adapters::edge {

namespace {

using steady = std::chrono::steady_clock;

using twins::wall_ms;

bool matches(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

// -- buffer records -------------------------------------------------------------

// Keys: 'q' + big-endian seq -> a sample; 'm' + name -> a counter; 'd' + mark
// -> the last sequence seen of a (source, twin, channel).
constexpr char queue_prefix = 'q';
const std::string next_key = "mnext";
const std::string dropped_key = "mdropped";

std::string seq_key(uint64_t seq) {
  std::string k(9, '\0');
  k[0] = queue_prefix;
  for (int i = 0; i < 8; ++i)
    k[static_cast<size_t>(1 + i)] = static_cast<char>((seq >> (56 - 8 * i)) & 0xff);
  return k;
}

uint64_t key_seq(const rocksdb::Slice& k) {
  uint64_t v = 0;
  for (size_t i = 1; i < 9 && i < k.size(); ++i)
    v = (v << 8) | static_cast<uint8_t>(k[i]);
  return v;
}

std::string u64_value(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

uint64_t value_u64(const rocksdb::Slice& s) {
  uint64_t v = 0;
  if (s.size() == 8)
    std::memcpy(&v, s.data(), 8);
  return v;
}

void put_text(std::string& out, const std::string& t) {
  auto n = static_cast<uint32_t>(t.size());
  out.append(reinterpret_cast<const char*>(&n), 4);
  out += t;
}


} // namespace

std::string encode_buffered(const twins::sample& s) {
  std::string out;
  out.reserve(s.twin.size() + s.channel.size() + 24);
  put_text(out, s.twin);
  put_text(out, s.channel);
  out.append(reinterpret_cast<const char*>(&s.ts_ms), 8);
  out.append(reinterpret_cast<const char*>(&s.value), 8);
  return out;
}

caf::expected<twins::sample> decode_buffered(std::string_view in) {
  auto corrupt = [&](const std::string& why) {
    return runtime::make_error(runtime::errc::corrupt_record,
                               "buffered sample of " + std::to_string(in.size())
                                 + " bytes: " + why);
  };
  twins::sample s;
  size_t at = 0;
  for (auto* t : {&s.twin, &s.channel}) {
    uint32_t n = 0;
    if (in.size() - at < 4)
      return corrupt("cut short in a length");
    std::memcpy(&n, in.data() + at, 4);
    at += 4;
    if (in.size() - at < n)
      return corrupt("a text of " + std::to_string(n) + " bytes runs past the end");
    t->assign(in.data() + at, n);
    at += n;
  }
  if (in.size() - at != 16)
    return corrupt(std::to_string(in.size() - at) + " bytes where the time and value (16) belong");
  std::memcpy(&s.ts_ms, in.data() + at, 8);
  std::memcpy(&s.value, in.data() + at + 8, 8);
  return s;
}

// -- sample_filter ------------------------------------------------------------------

sample_filter::sample_filter(std::vector<runtime::node_config::edge_channel_rule> rules)
  : rules_(std::move(rules)) {}

sample_filter::channel_state& sample_filter::state_of(const std::string& twin,
                                                     const std::string& channel) {
  std::string key;
  key.reserve(twin.size() + channel.size() + 1);
  key += twin;
  key += '\0';
  key += channel;
  auto [it, fresh] = channels_.try_emplace(std::move(key));
  auto& st = it->second;
  if (fresh) {
    for (size_t i = 0; i < rules_.size(); ++i)
      if (matches(rules_[i].twin, twin) && matches(rules_[i].channel, channel)) {
        st.rule = static_cast<int>(i);
        break;
      }
  }
  return st;
}

void sample_filter::restore(const std::string& twin, const std::string& channel, double value,
                            int64_t ts_ms) {
  auto& st = state_of(twin, channel);
  st.seen = true;
  st.value = value;
  st.ts_ms = ts_ms;
}

sample_filter::verdict sample_filter::pass(const twins::sample& s) {
  auto& st = state_of(s.twin, s.channel);
  if (st.rule < 0)
    return verdict::forward;
  if (!st.seen) {
    st.seen = true;
    st.value = s.value;
    st.ts_ms = s.ts_ms;
    return verdict::new_reference;
  }
  if (s.ts_ms < st.ts_ms)
    return verdict::forward; // a backfill: forwarded, not the reference for what follows
  auto& r = rules_[static_cast<size_t>(st.rule)];
  double change = std::fabs(s.value - st.value);
  bool banded = r.deadband > 0 || r.deadband_percent > 0;
  bool moved = !banded
               || (change > r.deadband
                   && (r.deadband_percent <= 0
                       || change > r.deadband_percent / 100.0 * std::fabs(st.value)));
  int64_t gap = 0; // s.ts_ms >= st.ts_ms here; a gap too wide for int64 is spaced enough
  bool spaced = __builtin_sub_overflow(s.ts_ms, st.ts_ms, &gap) || gap >= r.min_interval_ms;
  if (!moved || !spaced)
    return verdict::drop;
  st.value = s.value;
  st.ts_ms = s.ts_ms;
  return verdict::new_reference;
}

// -- sample_buffer ------------------------------------------------------------------

struct sample_buffer::impl {
  std::unique_ptr<rocksdb::DB> db;
  mutable std::mutex mtx;
  uint64_t next = 1;   // seq of the next sample
  uint64_t first = 1;  // no sample below this seq
  uint64_t count = 0, bytes = 0, dropped = 0;

  static uint64_t size_of(const rocksdb::Slice& k, const rocksdb::Slice& v) {
    return k.size() + v.size();
  }

  // Deletes (in `wb`) the oldest samples until `need` more bytes fit in
  // `budget`; returns how many.
  uint64_t make_room(rocksdb::WriteBatch& wb, uint64_t need, uint64_t budget) {
    uint64_t n = 0;
    if (count == 0 || bytes + need <= budget)
      return 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(seq_key(first)); it->Valid() && it->key()[0] == queue_prefix; it->Next()) {
      if (bytes + need <= budget)
        break;
      wb.Delete(it->key());
      bytes -= size_of(it->key(), it->value());
      --count;
      ++n;
      first = key_seq(it->key()) + 1;
    }
    return n;
  }
};

std::unique_ptr<sample_buffer> sample_buffer::open(const std::string& dir, uint64_t budget_bytes,
                                                   std::string& error) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.max_open_files = 64;
  o.write_buffer_size = 8 << 20;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(o, dir, &raw);
  if (!st.ok()) {
    error = "cannot open the edge buffer in " + dir + ": " + st.ToString();
    return nullptr;
  }
  std::unique_ptr<sample_buffer> b(new sample_buffer());
  b->budget_ = budget_bytes;
  b->impl_ = std::make_unique<impl>();
  auto& d = *b->impl_;
  d.db.reset(raw);
  std::string v;
  if (d.db->Get(rocksdb::ReadOptions(), next_key, &v).ok())
    d.next = std::max<uint64_t>(1, value_u64(v));
  else // a new buffer starts above any seq an earlier one (since wiped) can have used
    d.next = static_cast<uint64_t>(std::max<int64_t>(1, wall_ms())) * 1000;
  if (d.db->Get(rocksdb::ReadOptions(), dropped_key, &v).ok())
    d.dropped = value_u64(v);
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(rocksdb::ReadOptions()));
  bool any = false;
  for (it->Seek(seq_key(0)); it->Valid() && it->key()[0] == queue_prefix; it->Next()) {
    auto seq = key_seq(it->key());
    if (!any)
      d.first = seq;
    any = true;
    ++d.count;
    d.bytes += impl::size_of(it->key(), it->value());
    d.next = std::max(d.next, seq + 1);
  }
  if (!any)
    d.first = d.next;
  return b;
}

sample_buffer::~sample_buffer() = default;

std::string sample_buffer::append(const std::vector<twins::sample>& samples,
                                  const std::vector<std::pair<std::string, std::string>>& marks) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> g(d.mtx);
  std::vector<std::pair<std::string, std::string>> records;
  records.reserve(samples.size());
  uint64_t need = 0;
  for (auto& s : samples) {
    records.emplace_back(seq_key(d.next + records.size()), encode_buffered(s));
    need += records.back().first.size() + records.back().second.size();
  }
  rocksdb::WriteBatch wb;
  auto old_first = d.first;
  auto old_count = d.count, old_bytes = d.bytes, old_dropped = d.dropped;
  uint64_t dropped = d.make_room(wb, need, budget_);
  // What does not fit even in an empty buffer: the oldest of the new ones go.
  size_t skip = 0;
  while (skip < records.size() && d.bytes + need > budget_) {
    need -= records[skip].first.size() + records[skip].second.size();
    ++skip;
    ++dropped;
  }
  for (size_t i = skip; i < records.size(); ++i)
    wb.Put(records[i].first, records[i].second);
  auto new_next = d.next + records.size();
  wb.Put(next_key, u64_value(new_next));
  if (dropped > 0)
    wb.Put(dropped_key, u64_value(d.dropped + dropped));
  for (auto& [k, v] : marks)
    wb.Put("d" + k, v);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto st = d.db->Write(wo, &wb);
  if (!st.ok()) {
    d.first = old_first;
    d.count = old_count;
    d.bytes = old_bytes;
    d.dropped = old_dropped;
    return "edge buffer write failed: " + st.ToString();
  }
  if (d.count == 0)
    d.first = d.next + skip;
  d.next = new_next;
  d.count += records.size() - skip;
  d.bytes += need;
  d.dropped += dropped;
  return "";
}

std::vector<buffered> sample_buffer::oldest(uint64_t after, size_t n) const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> g(d.mtx);
  std::vector<buffered> out;
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(seq_key(std::max(after + 1, d.first)));
       it->Valid() && it->key()[0] == queue_prefix && out.size() < n; it->Next()) {
    buffered b;
    b.seq = key_seq(it->key());
    if (auto s = decode_buffered({it->value().data(), it->value().size()}))
      b.sample = std::move(*s);
    else
      b.corrupt = runtime::describe(s.error());
    out.push_back(std::move(b));
  }
  return out;
}

std::string sample_buffer::remove_through(uint64_t seq) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> g(d.mtx);
  if (seq < d.first)
    return "";
  uint64_t n = 0, bytes = 0;
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(seq_key(d.first)); it->Valid() && it->key()[0] == queue_prefix; it->Next()) {
    if (key_seq(it->key()) > seq)
      break;
    ++n;
    bytes += impl::size_of(it->key(), it->value());
  }
  rocksdb::WriteBatch wb;
  wb.DeleteRange(seq_key(d.first), seq_key(seq + 1));
  // No sync: if the deletion is lost the samples are sent again, and the
  // central node refuses them as already applied.
  auto st = d.db->Write(rocksdb::WriteOptions(), &wb);
  if (!st.ok())
    return "edge buffer delete failed: " + st.ToString();
  d.first = seq + 1;
  d.count -= std::min(d.count, n);
  d.bytes -= std::min(d.bytes, bytes);
  return "";
}

std::unordered_map<std::string, std::string> sample_buffer::marks() const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> g(d.mtx);
  std::unordered_map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("d"); it->Valid() && it->key()[0] == 'd'; it->Next())
    out[it->key().ToString().substr(1)] = it->value().ToString();
  return out;
}

uint64_t sample_buffer::queued() const {
  std::lock_guard<std::mutex> g(impl_->mtx);
  return impl_->count;
}

uint64_t sample_buffer::queued_bytes() const {
  std::lock_guard<std::mutex> g(impl_->mtx);
  return impl_->bytes;
}

uint64_t sample_buffer::dropped() const {
  std::lock_guard<std::mutex> g(impl_->mtx);
  return impl_->dropped;
}

// -- edge_node ----------------------------------------------------------------------

struct edge_node::impl {
  runtime::node_config::edge_settings cfg;
  runtime::node_config::mqtt_settings mqtt_cfg;
  mqtt::router routes;
  std::unique_ptr<sample_buffer> buffer;
  std::unique_ptr<mqtt::client> client;
  rate_limited_log log{"twinrt edge"};

  // MQTT I/O thread -> writer thread.
  struct taken {
    uint16_t packet_id = 0; // 0: QoS 0
    std::vector<twins::sample> samples;
  };
  // Closed first when stopping: the writer drains it and ends.
  batch_queue<taken> queue{batch_limits{10'000, 1'000, std::numeric_limits<size_t>::max(),
                                        std::chrono::milliseconds(2)}};
  std::mutex mtx;
  std::condition_variable wake_forwarder;
  bool stopping = false; // forwarder: end

  std::thread writer, forwarder;
  std::atomic<uint64_t> messages{0}, rejected{0}, samples{0}, redelivered{0}, filtered{0},
    buffered{0}, forwarded{0}, refused{0}, already{0}, corrupt{0};
  std::atomic<bool> central_up{false};

  void on_message(const mqtt::message& m) {
    messages.fetch_add(1, std::memory_order_relaxed);
    auto refuse = [&](const std::string& why) {
      rejected.fetch_add(1, std::memory_order_relaxed);
      log.line(why);
      if (m.packet_id != 0)
        client->ack(m.packet_id);
    };
    // A payload above the client's packet limit arrives empty, with its size.
    auto bytes = m.dropped_bytes > 0 ? m.dropped_bytes : m.payload.size();
    if (bytes > mqtt_cfg.max_payload_bytes)
      return refuse("topic " + m.topic + ": payload of " + std::to_string(bytes)
                    + " bytes is above max_payload_bytes");
    auto twin = routes.twin_for(m.topic);
    if (!twin)
      return refuse("topic " + m.topic + " matches no [[mqtt.routes]] pattern");
    taken t;
    t.packet_id = m.packet_id;
    if (auto err = mqtt::parse_json_payload(m.topic, m.payload, *twin, wall_ms(), t.samples))
      return refuse(err->message);
    queue.push(std::move(t)); // waits for room; refused once closing (not acknowledged:
                              // the broker re-delivers it)
  }

  // Writer thread: dedup, filter, buffer durably, then acknowledge.
  void write_loop() {
    // Marks, saved with the samples: "s" + source, twin, channel -> the last
    // seq seen (a redelivery is recognised); "f" + twin, channel -> the
    // filter's reference (a restart filters as an uninterrupted run would).
    sample_filter filter(cfg.channels);
    std::unordered_map<std::string, uint64_t> seen;
    for (auto& [k, v] : buffer->marks()) {
      if (k.empty())
        continue;
      if (k[0] == 's' && v.size() == 8) {
        seen[k.substr(1)] = value_u64(v);
      } else if (k[0] == 'f' && v.size() == 16) {
        auto sep = k.find('\0');
        double value = 0;
        int64_t ts = 0;
        std::memcpy(&value, v.data(), 8);
        std::memcpy(&ts, v.data() + 8, 8);
        if (sep != std::string::npos)
          filter.restore(k.substr(1, sep - 1), k.substr(sep + 1), value, ts);
      }
    }
    for (;;) {
      auto batch = queue.take();
      if (batch.empty())
        return; // closed and drained
      std::vector<twins::sample> keep;
      std::vector<std::pair<std::string, std::string>> changed;
      for (auto& t : batch)
        for (auto& s : t.samples) {
          samples.fetch_add(1, std::memory_order_relaxed);
          auto key = s.source + '\0' + s.twin + '\0' + s.channel;
          auto& last = seen[key];
          if (s.seq != 0 && s.seq <= last) {
            redelivered.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          last = s.seq;
          changed.emplace_back("s" + key, u64_value(s.seq));
          auto verdict = filter.pass(s);
          if (verdict == sample_filter::verdict::drop) {
            filtered.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          if (verdict == sample_filter::verdict::new_reference) {
            std::string ref(16, '\0');
            std::memcpy(ref.data(), &s.value, 8);
            std::memcpy(ref.data() + 8, &s.ts_ms, 8);
            changed.emplace_back("f" + s.twin + '\0' + s.channel, std::move(ref));
          }
          s.source.clear();
          s.seq = 0;
          keep.push_back(std::move(s));
        }
      for (int64_t pause_ms = 50;; pause_ms = std::min<int64_t>(pause_ms * 2, 2'000)) {
        auto err = buffer->append(keep, changed);
        if (err.empty())
          break;
        log.line(err + "; retrying");
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      }
      buffered.fetch_add(keep.size(), std::memory_order_relaxed);
      for (auto& t : batch)
        if (t.packet_id != 0)
          client->ack(t.packet_id);
      wake_forwarder.notify_one();
    }
  }

  // Waits up to `ms` or until stopping; false when stopping.
  bool pause(int64_t ms) {
    std::unique_lock<std::mutex> g(mtx);
    return !wake_forwarder.wait_for(g, std::chrono::milliseconds(ms), [&] { return stopping; });
  }

  // Forwarder thread: the oldest buffered samples to the central node, one
  // batch at a time (so they arrive in order), deleted once acknowledged.
  void forward_loop() {
    rpc_ingest rpc(cfg.central, cfg.token,
                   rpc_transport{cfg.central_tls, cfg.central_ca, cfg.central_tls_name});
    int64_t backoff_ms = 100;
    std::string last_error;
    auto back_off = [&](const std::string& why) {
      if (why != last_error)
        log.line(why);
      last_error = why;
      bool go_on = pause(backoff_ms);
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 5'000);
      return go_on;
    };
    for (;;) {
      {
        std::lock_guard<std::mutex> g(mtx);
        if (stopping)
          return;
      }
      if (!rpc.connected()) {
        central_up = false;
        if (auto err = rpc.connect(); !err.empty()) {
          if (!back_off("central node unreachable, buffering: " + err))
            return;
          continue;
        }
        central_up = true;
        last_error.clear();
        std::fprintf(stderr, "twinrt edge: connected to the central node at %s%s\n",
                     cfg.central.c_str(), cfg.central_tls ? " over TLS" : "");
      }
      auto batch = buffer->oldest(0, cfg.forward_batch);
      if (batch.empty()) {
        std::unique_lock<std::mutex> g(mtx);
        wake_forwarder.wait_for(g, std::chrono::milliseconds(200));
        continue;
      }
      std::vector<twins::sample> out;
      out.reserve(batch.size());
      for (auto& b : batch) {
        if (!b.corrupt.empty()) {
          corrupt.fetch_add(1, std::memory_order_relaxed);
          log.line("corrupt record refused: buffered sample " + std::to_string(b.seq) + ": "
                   + b.corrupt + "; skipped");
          continue;
        }
        out.push_back(std::move(b.sample));
        out.back().source = cfg.id;
        out.back().seq = b.seq;
      }
      if (out.empty()) { // only corrupt records: nothing to send, remove them
        if (auto err = buffer->remove_through(batch.back().seq); !err.empty())
          log.line(err);
        continue;
      }
      auto timeout = rpc.timer().afterDelay(10 * kj::SECONDS).then([] {
        return batch_outcome{batch_status::disconnected, "no answer within 10 s", 0, {}};
      });
      auto r = rpc.send(out).exclusiveJoin(kj::mv(timeout)).wait(rpc.wait_scope());
      if (r.status == batch_status::done) {
        for (auto& rej : r.rejected) {
          if (rej.reason == "duplicate_sequence") {
            already.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          refused.fetch_add(1, std::memory_order_relaxed);
          log.line("the central node refused a sample: " + rej.message);
        }
        forwarded.fetch_add(out.size(), std::memory_order_relaxed);
        if (auto err = buffer->remove_through(batch.back().seq); !err.empty())
          log.line(err);
        backoff_ms = 100;
        continue;
      }
      if (r.status == batch_status::disconnected) {
        rpc.disconnect();
        central_up = false;
        if (!back_off("lost the central node (" + r.message + "), buffering"))
          return;
        continue;
      }
      if (!back_off("the central node refused a batch (" + r.message + "); retrying"))
        return;
    }
  }
};

edge_node::edge_node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

std::unique_ptr<edge_node> edge_node::start(const runtime::node_config& cfg, std::string& error) {
  auto p = std::make_unique<impl>();
  p->cfg = cfg.edge;
  p->mqtt_cfg = cfg.mqtt;
  if (!cfg.mqtt.enabled || cfg.mqtt.routes.empty()) {
    error = "edge mode needs an [mqtt] section with at least one [[mqtt.routes]] entry";
    return nullptr;
  }
  if (cfg.edge.central.empty()) {
    error = "edge mode needs [edge] central = \"HOST:PORT\" of the central node";
    return nullptr;
  }
  for (auto& r : cfg.mqtt.routes) {
    mqtt::route compiled;
    if (auto err = mqtt::route::compile(r.topic, r.twin, compiled)) {
      error = *err;
      return nullptr;
    }
    p->routes.routes.push_back(std::move(compiled));
  }
  p->buffer = sample_buffer::open(cfg.edge.buffer_dir, cfg.edge.disk_budget_mb << 20, error);
  if (!p->buffer)
    return nullptr;
  auto opts = mqtt::options_for(cfg.mqtt);
  if (!opts) {
    error = runtime::describe(opts.error());
    return nullptr;
  }
  auto& o = *opts;
  o.max_packet_bytes = std::max<size_t>(size_t{cfg.mqtt.max_payload_bytes} * 2 + 65'536, 1 << 20);
  p->client = std::make_unique<mqtt::client>(o);
  auto raw = p.get();
  p->client->on_message([raw](const mqtt::message& m) { raw->on_message(m); });
  p->client->on_connection([raw](bool up) {
    std::fprintf(stderr, "twinrt edge: %s the broker at %s%s:%u\n", up ? "connected to" : "lost",
                 raw->mqtt_cfg.tls.enabled ? "mqtts://" : "", raw->mqtt_cfg.host.c_str(),
                 static_cast<unsigned>(raw->mqtt_cfg.port));
  });
  mqtt::report_connect_failures(*p->client, "twinrt edge");
  for (auto& r : p->routes.routes)
    p->client->subscribe(r.filter(), cfg.mqtt.qos);
  p->writer = std::thread([raw] { raw->write_loop(); });
  p->forwarder = std::thread([raw] { raw->forward_loop(); });
  p->client->start();
  return std::unique_ptr<edge_node>(new edge_node(std::move(p)));
}

edge_node::~edge_node() {
  auto& d = *impl_;
  d.queue.close(); // no more messages; the writer buffers those queued, then ends
  d.client->stop();
  {
    std::lock_guard<std::mutex> g(d.mtx);
    d.stopping = true;
  }
  d.wake_forwarder.notify_all();
  d.writer.join();
  d.forwarder.join();
}

edge_stats edge_node::stats() const {
  auto& d = *impl_;
  edge_stats s;
  s.messages = d.messages.load();
  s.rejected = d.rejected.load();
  s.samples = d.samples.load();
  s.redelivered = d.redelivered.load();
  s.filtered = d.filtered.load();
  s.buffered = d.buffered.load();
  s.forwarded = d.forwarded.load();
  s.refused = d.refused.load();
  s.already_applied = d.already.load();
  s.corrupt = d.corrupt.load();
  s.queued = d.buffer->queued();
  s.queued_bytes = d.buffer->queued_bytes();
  s.dropped = d.buffer->dropped();
  s.broker_connected = d.client->wait_connected(0); // connected, and subscribed
  s.central_connected = d.central_up.load();
  return s;
}

} // namespace twinrt::adapters::edge
