// The shard log: its records' encoding (storage/shard_log.hpp), the
// committer's numbering and trimming, and the reads a replica makes.

#include "twinrt/runtime/storage/shard_log.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <boost/crc.hpp>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/records.hpp"
#include "twinrt/twins/varint.hpp"

namespace twinrt::runtime {

namespace shard_log {

namespace {

using twins::put_varint;

void put_name(std::string& out, std::string_view name) {
  put_varint(out, name.size());
  out += name;
}

uint32_t crc_of(std::string_view a, std::string_view b = {}) {
  boost::crc_32_type crc;
  crc.process_bytes(a.data(), a.size());
  crc.process_bytes(b.data(), b.size());
  return crc.checksum();
}

// Reads a body; every read is bounded by the bytes left, and a read past
// the end or a malformed varint sets `bad` (the reads then return 0).
struct reader {
  const char* p;
  const char* end;
  const char* bad = nullptr; // what went wrong first

  uint64_t varint(const char* what) {
    auto v = twins::read_varint(p, static_cast<size_t>(end - p));
    if (v.bytes == 0)
      return fail(what);
    p += v.bytes;
    return v.value;
  }

  // A count of entries of at least `min_bytes` each: no more than fit.
  uint64_t count(const char* what, size_t min_bytes) {
    auto n = varint(what);
    if (!bad && n > static_cast<size_t>(end - p) / min_bytes)
      return fail(what);
    return n;
  }

  std::string name(const char* what) {
    auto n = varint(what);
    if (bad || n > static_cast<size_t>(end - p)) {
      fail(what);
      return {};
    }
    std::string s(p, n);
    p += n;
    return s;
  }

  uint64_t fixed64(const char* what) {
    if (end - p < 8)
      return fail(what);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
      v = (v << 8) | static_cast<uint8_t>(p[i]);
    p += 8;
    return v;
  }

  uint64_t fail(const char* what) {
    if (!bad)
      bad = what;
    p = end;
    return 0;
  }
};

caf::error corrupt(const std::string& why) {
  return records_io::corrupt("shard log record", why);
}

// The CRC, format and header of `bytes`; empty when they hold.
std::string check_frame(std::string_view bytes) {
  if (bytes.size() < header_size + 4 + trailer_size) // four empty tables
    return std::to_string(bytes.size()) + " bytes, fewer than a record has";
  auto body_end = bytes.size() - trailer_size;
  auto stored = keys::read_be32(bytes.data() + body_end);
  auto computed = crc_of(bytes.substr(0, body_end));
  if (stored != computed) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "CRC-32 mismatch (stored %08x, computed %08x) over %zu bytes",
                  stored, computed, body_end);
    return buf;
  }
  if (static_cast<uint8_t>(bytes[0]) != format)
    return "format " + std::to_string(static_cast<uint8_t>(bytes[0])) + ", this build reads "
           + std::to_string(format);
  return {};
}

} // namespace

uint32_t builder::table::of(const std::string& name) {
  if (last < names.size() && names[last] == name)
    return last;
  auto [i, added] = index.emplace(name, static_cast<uint32_t>(names.size()));
  if (added)
    names.push_back(name);
  return last = i->second;
}

void builder::add(std::string_view twin, uint32_t model_version, const std::string& channel,
                  int64_t ts_ms, double value, const std::string& source, uint64_t seq) {
  // A batch applies one twin's samples together: look back one entry only.
  if (last_twin_ >= twins_.size() || twins_[last_twin_].id != twin
      || twins_[last_twin_].model_version != model_version) {
    last_twin_ = static_cast<uint32_t>(twins_.size());
    twins_.push_back({std::string(twin), model_version});
  }
  put_varint(samples_, last_twin_);
  put_varint(samples_, channels_.of(channel));
  put_varint(samples_, source.empty() ? 0 : sources_.of(source) + 1);
  put_varint(samples_, seq);
  put_varint(samples_,
             twins::zigzag(static_cast<uint64_t>(ts_ms) - static_cast<uint64_t>(prev_ts_)));
  prev_ts_ = ts_ms;
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  for (int i = 0; i < 8; ++i)
    samples_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  ++count_;
}

std::string builder::body() const {
  std::string out;
  out.reserve(samples_.size() + 16 * (twins_.size() + channels_.names.size() + 1));
  put_varint(out, twins_.size());
  for (auto& t : twins_) {
    put_name(out, t.id);
    put_varint(out, t.model_version);
  }
  for (auto* t : {&channels_, &sources_}) {
    put_varint(out, t->names.size());
    for (auto& n : t->names)
      put_name(out, n);
  }
  put_varint(out, count_);
  out += samples_;
  return out;
}

std::string header(uint32_t shard, uint64_t seq) {
  std::string h(1, static_cast<char>(format));
  keys::append_be32(h, shard);
  keys::append_be64(h, seq);
  return h;
}

std::string trailer(std::string_view header, std::string_view body) {
  std::string t;
  keys::append_be32(t, crc_of(header, body));
  return t;
}

caf::error check(std::string_view bytes, uint32_t shard, uint64_t seq) {
  if (auto why = check_frame(bytes); !why.empty())
    return corrupt(why);
  auto s = keys::read_be32(bytes.data() + 1);
  auto q = keys::read_be64(bytes.data() + 5);
  if (s != shard || q != seq)
    return corrupt("it says it is record " + std::to_string(q) + " of virtual shard "
                   + std::to_string(s));
  return {};
}

} // namespace shard_log

bool log_sample::operator==(const log_sample& o) const {
  return twin == o.twin && channel == o.channel && ts_ms == o.ts_ms
         && std::memcmp(&value, &o.value, sizeof value) == 0 && model_version == o.model_version
         && source == o.source && seq == o.seq;
}

caf::expected<log_record> storage::decode_log_record(std::string_view bytes) {
  if (auto why = shard_log::check_frame(bytes); !why.empty())
    return shard_log::corrupt(why);
  log_record out;
  out.shard = keys::read_be32(bytes.data() + 1);
  out.seq = keys::read_be64(bytes.data() + 5);
  auto body = bytes.substr(shard_log::header_size,
                           bytes.size() - shard_log::header_size - shard_log::trailer_size);
  shard_log::reader r{body.data(), body.data() + body.size()};
  struct twin_entry {
    std::string id;
    uint32_t model_version;
  };
  std::vector<twin_entry> twins(r.count("twins", 2));
  for (auto& t : twins) {
    t.id = r.name("a twin id");
    auto v = r.varint("a model version");
    if (v > ~uint32_t{0})
      r.fail("a model version");
    t.model_version = static_cast<uint32_t>(v);
  }
  std::vector<std::string> channels(r.count("channels", 1));
  for (auto& c : channels)
    c = r.name("a channel");
  std::vector<std::string> sources(r.count("sources", 1));
  for (auto& s : sources)
    s = r.name("a source");
  auto n = r.count("samples", 5 + 8);
  out.samples.reserve(n);
  int64_t ts = 0;
  for (uint64_t i = 0; i < n && !r.bad; ++i) {
    auto twin = r.varint("a sample's twin");
    auto channel = r.varint("a sample's channel");
    auto source = r.varint("a sample's source");
    log_sample s;
    s.seq = r.varint("a sample's seq");
    ts = static_cast<int64_t>(static_cast<uint64_t>(ts) + twins::unzigzag(r.varint("a time")));
    auto bits = r.fixed64("a value");
    if (r.bad)
      break;
    if (twin >= twins.size() || channel >= channels.size() || source > sources.size())
      return shard_log::corrupt("sample " + std::to_string(i) + " names twin "
                                + std::to_string(twin) + ", channel " + std::to_string(channel)
                                + ", source " + std::to_string(source) + " of tables of "
                                + std::to_string(twins.size()) + ", "
                                + std::to_string(channels.size()) + ", "
                                + std::to_string(sources.size()));
    s.twin = twins[twin].id;
    s.model_version = twins[twin].model_version;
    s.channel = channels[channel];
    if (source > 0)
      s.source = sources[source - 1];
    s.ts_ms = ts;
    std::memcpy(&s.value, &bits, sizeof bits);
    out.samples.push_back(std::move(s));
  }
  if (r.bad)
    return shard_log::corrupt(std::string("cut short or malformed at ") + r.bad);
  if (r.p != r.end)
    return shard_log::corrupt(std::to_string(r.end - r.p) + " bytes after the last sample");
  return out;
}

// -- the committer's side -----------------------------------------------------------

void storage::impl::load_log() {
  log_last.assign(virtual_shards, 0);
  log_trimmed.assign(virtual_shards, 0);
  log_durable = std::make_unique<std::atomic<uint64_t>[]>(virtual_shards);
  log_trimmed_durable = std::make_unique<std::atomic<uint64_t>[]>(virtual_shards);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (uint32_t s = 0; s < virtual_shards; ++s) {
    auto trim_key = keys::log_prefix(s);
    if (auto v = get(trim_key, "shard log trim point")) {
      if (v->size() == 8)
        log_trimmed[s] = keys::read_be64(v->data());
      else
        refuse(trim_key, records_io::corrupt("shard log trim point",
                                             std::to_string(v->size()) + " bytes, not 8"));
    }
    uint64_t last = 0;
    it->SeekForPrev(keys::log_record(s, ~uint64_t{0}));
    if (it->Valid())
      keys::log_seq_of(view(it->key()), s, last);
    // Trimmed records count: a sequence is never used twice.
    log_last[s] = std::max(last, log_trimmed[s]);
    log_durable[s] = log_last[s];
    log_trimmed_durable[s] = log_trimmed[s];
  }
}

void storage::impl::append_log(rocksdb::WriteBatch& wb, shard_log::pending& log) {
  for (auto s : log.restarted) {
    log_last[s] = log_trimmed[s] = 0;
    log_touched.push_back(s);
  }
  for (auto& [s, body] : log.bodies) {
    auto seq = ++log_last[s];
    auto key = keys::log_record(s, seq);
    auto head = shard_log::header(s, seq);
    auto tail = shard_log::trailer(head, body);
    rocksdb::Slice k(key);
    rocksdb::Slice parts[] = {head, body, tail};
    wb.Put(rocksdb::SliceParts(&k, 1), rocksdb::SliceParts(parts, 3));
    log_touched.push_back(s);
  }
  for (auto [s, through] : log.trims) {
    through = std::min(through, log_last[s]);
    if (through <= log_trimmed[s])
      continue;
    wb.DeleteRange(keys::log_record(s, 0), keys::log_record(s, through + 1));
    std::string v;
    keys::append_be64(v, through);
    wb.Put(keys::log_prefix(s), v);
    log_trimmed[s] = through;
    log_touched.push_back(s);
  }
}

void storage::impl::publish_log() {
  for (auto s : log_touched) {
    log_trimmed_durable[s].store(log_trimmed[s], std::memory_order_release);
    log_durable[s].store(log_last[s], std::memory_order_release);
  }
  log_touched.clear();
}

shard_log::pending storage::batch::impl::take_log() {
  auto out = std::move(log_ops);
  log_ops = {};
  out.bodies.reserve(log.size());
  for (auto& [shard, b] : log)
    out.bodies.emplace_back(shard, b.body());
  std::sort(out.bodies.begin(), out.bodies.end(),
            [](auto& a, auto& b) { return a.first < b.first; });
  log.clear();
  return out;
}

// -- reads ---------------------------------------------------------------------------

uint64_t storage::last_log_seq(uint32_t shard) const {
  return shard < virtual_shards_ ? impl_->log_durable[shard].load(std::memory_order_acquire) : 0;
}

uint64_t storage::log_trimmed_through(uint32_t shard) const {
  return shard < virtual_shards_
           ? impl_->log_trimmed_durable[shard].load(std::memory_order_acquire)
           : 0;
}

log_page storage::read_log(uint32_t shard, uint64_t from, size_t max_bytes) const {
  log_page out;
  out.next = from;
  if (shard >= virtual_shards_) {
    out.error = make_error(errc::bad_request, "shard log: virtual shard " + std::to_string(shard)
                                                + " is out of range 0.."
                                                + std::to_string(virtual_shards_ - 1));
    return out;
  }
  auto trimmed_error = [&](uint64_t trimmed) {
    return make_error(errc::bad_request,
                      "shard log of virtual shard " + std::to_string(shard) + " is trimmed through "
                        + std::to_string(trimmed) + ": record " + std::to_string(out.next)
                        + " is gone (read from " + std::to_string(trimmed + 1)
                        + " on, or copy the shard)");
  };
  // Durable first, then the iterator: it sees every record up to durable
  // that no trim deleted meanwhile.
  auto trimmed = log_trimmed_through(shard);
  auto durable = last_log_seq(shard);
  if (from == 0)
    out.next = trimmed + 1;
  else if (from <= trimmed) {
    out.error = trimmed_error(trimmed);
    return out;
  }
  if (out.next > durable)
    return out;
  auto upper_key = keys::log_record(shard, durable + 1);
  rocksdb::Slice upper(upper_key);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  size_t bytes = 0;
  for (it->Seek(keys::log_record(shard, out.next)); out.next <= durable; it->Next()) {
    uint64_t seq = 0;
    if (!it->Valid() || !keys::log_seq_of(view(it->key()), shard, seq) || seq != out.next) {
      if (auto now = log_trimmed_through(shard); now >= out.next) {
        out.error = trimmed_error(now); // trimmed while we read
        break;
      }
      auto why = shard_log::corrupt(it->status().ok() ? std::string("missing")
                                                      : "unreadable: " + it->status().ToString());
      auto key = keys::log_record(shard, out.next);
      impl_->refuse(key, why);
      out.error = make_error(errc::corrupt_record, keys::describe(key) + ": " + describe(why));
      break;
    }
    auto v = view(it->value());
    if (!out.records.empty() && bytes + v.size() > max_bytes)
      break;
    if (auto why = shard_log::check(v, shard, seq)) {
      impl_->refuse(view(it->key()), why);
      out.error = make_error(errc::corrupt_record,
                             keys::describe(view(it->key())) + ": " + describe(why));
      break;
    }
    bytes += v.size();
    out.records.emplace_back(v);
    ++out.next;
  }
  return out;
}

} // namespace twinrt::runtime
