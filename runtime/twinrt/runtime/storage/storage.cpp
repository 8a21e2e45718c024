// Opening and closing the database, and the typed reads.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>

#include <rocksdb/cache.h>
#include <rocksdb/table.h>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/migrate.hpp"
#include "twinrt/runtime/storage/records.hpp"

namespace twinrt::runtime {

namespace {

[[noreturn]] void fatal(const char* what, const rocksdb::Status& s) {
  std::fprintf(stderr, "twinrt: fatal storage error in %s: %s\n", what, s.ToString().c_str());
  std::abort();
}

// The stored virtual shard count; when there is none, stores `for_new_data`
// in an empty database and the default in data written before the count was
// kept. Returns 0 and sets `error` when it cannot.
uint32_t settle_virtual_shards(rocksdb::DB& db, const storage_options& opts, std::string& error) {
  std::string value;
  auto s = db.Get(rocksdb::ReadOptions(), keys::virtual_shards(), &value);
  if (s.ok()) {
    auto n = value.size() == 4 ? keys::read_be32(value.data()) : 0;
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
  keys::append_be32(bytes, n);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db.Put(wo, keys::virtual_shards(), bytes);
  if (!s.ok()) {
    error = "data directory " + opts.path + ": cannot store the number of virtual shards: "
            + s.ToString();
    return 0;
  }
  return n;
}

// The highest 8-byte id under `prefix`; 0 when none.
uint64_t last_id(rocksdb::DB& db, const std::string& prefix) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  auto top = prefix;
  keys::append_be64(top, ~uint64_t{0});
  it->SeekForPrev(top);
  if (!it->Valid() || it->key().size() != prefix.size() + 8 || !it->key().starts_with(prefix))
    return 0;
  return keys::read_be64(it->key().data() + prefix.size());
}

// Calls `f(key, value)` for every record whose key starts with `prefix`.
template <class F>
void scan(rocksdb::DB& db, const std::string& prefix, F&& f) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    f(view(it->key()), view(it->value()));
}

} // namespace

storage::storage() : impl_(std::make_unique<impl>()) {
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
  auto& in = *st->impl_;
  in.env = std::move(env);
  in.db.reset(raw);
  in.sync_wal = opts.sync_wal;
  st->virtual_shards_ = in.virtual_shards = settle_virtual_shards(*in.db, opts, error);
  if (st->virtual_shards_ == 0)
    return nullptr; // closes the database; no committer runs yet
  if (!layout::settle(*in.db, st->virtual_shards_, opts.path, error))
    return nullptr;
  in.last_event_id = last_id(*in.db, keys::event(0).substr(0, 1));
  in.durable_event_id = in.last_event_id;
  in.load_log();
  in.committer = std::thread([p = &in] { p->run_committer(); });
  return st;
}

storage::~storage() {
  impl_->stop_committer();
  if (impl_->db) {
    if (!failed())
      impl_->db->FlushWAL(true);
    impl_->db->Close();
    impl_->db.reset(); // before env
  }
}

uint32_t storage::shard_of(std::string_view id) const {
  return runtime::shard_of(id, virtual_shards_);
}

void storage::impl::refuse(std::string_view key, const caf::error& why) const {
  {
    std::lock_guard<std::mutex> g(corrupt_mtx);
    if (!corrupt_keys.emplace(key).second)
      return;
  }
  corrupt_records.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "twinrt: corrupt record refused: %s: %s; skipped\n",
               keys::describe(key).c_str(), describe(why).c_str());
}

std::optional<std::string> storage::impl::get(const std::string& key, const char* type) const {
  std::string value;
  auto s = db->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound())
    return std::nullopt;
  if (s.IsCorruption()) {
    refuse(key, records_io::corrupt(type, s.ToString()));
    return std::nullopt;
  }
  if (!s.ok())
    fatal(type, s);
  return value;
}

uint64_t storage::corrupt_records() const {
  return impl_->corrupt_records.load(std::memory_order_relaxed);
}

std::vector<twin_meta> storage::load_metas() const {
  std::vector<twin_meta> out;
  for (uint32_t shard = 0; shard < virtual_shards_; ++shard) {
    auto metas = load_metas(shard);
    out.insert(out.end(), std::make_move_iterator(metas.begin()),
               std::make_move_iterator(metas.end()));
  }
  return out;
}

std::vector<twin_meta> storage::load_metas(uint32_t shard) const {
  std::vector<twin_meta> out;
  scan(*impl_->db, keys::meta_prefix(shard), [&](std::string_view k, std::string_view v) {
    if (auto m = decode_meta(v))
      out.push_back(std::move(*m));
    else
      impl_->refuse(k, m.error());
  });
  return out;
}

std::optional<twins::twin_state> storage::load_state(twin_ref twin) const {
  auto key = keys::state(shard_of(twin.id), twin.number);
  auto value = impl_->get(key, "TwinState");
  if (!value)
    return std::nullopt;
  auto st = decode_state(*value);
  if (!st) {
    impl_->refuse(key, st.error());
    return std::nullopt;
  }
  return std::move(*st);
}

void storage::for_each_state(
  const std::function<void(uint32_t, caf::expected<twins::twin_state>&)>& f) const {
  for (uint32_t shard = 0; shard < virtual_shards_; ++shard) {
    auto prefix = keys::state_prefix(shard);
    scan(*impl_->db, prefix, [&](std::string_view k, std::string_view v) {
      uint32_t number = 0;
      if (!keys::number_of_state(k, prefix, number))
        return;
      auto st = decode_state(v);
      if (!st)
        impl_->refuse(k, st.error());
      f(number, st);
    });
  }
}

std::vector<history_point> storage::read_history(twin_ref twin, const std::string& channel,
                                                 int64_t from_ms, int64_t to_ms,
                                                 size_t limit) const {
  std::vector<history_point> out;
  auto prefix = keys::history_prefix(shard_of(twin.id), twin.number, channel);
  auto start = prefix;
  keys::append_be64(start, keys::ts_key(from_ms));
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(start); it->Valid() && out.size() < limit; it->Next()) {
    auto k = it->key();
    if (!k.starts_with(prefix) || k.size() != prefix.size() + 12)
      break;
    auto ts = keys::ts_of(keys::read_be64(k.data() + prefix.size()));
    if (ts >= to_ms)
      break;
    auto p = decode_history_point(view(it->value()));
    if (!p) {
      impl_->refuse(view(k), p.error());
      continue;
    }
    p->ts_ms = ts;
    out.push_back(std::move(*p));
  }
  auto chunked = internal::read_chunk_points(*impl_, shard_of(twin.id), twin.number, channel,
                                             from_ms, to_ms, limit);
  if (chunked.empty())
    return out;
  out.insert(out.end(), std::make_move_iterator(chunked.begin()),
             std::make_move_iterator(chunked.end()));
  std::stable_sort(out.begin(), out.end(),
                   [](const history_point& a, const history_point& b) { return a.ts_ms < b.ts_ms; });
  if (out.size() > limit)
    out.resize(limit);
  return out;
}

std::vector<stored_model> storage::load_models() const {
  std::vector<stored_model> out;
  scan(*impl_->db, keys::model_prefix(), [&](std::string_view k, std::string_view v) {
    if (auto m = decode_model(v))
      out.push_back(std::move(*m));
    else
      impl_->refuse(k, m.error());
  });
  return out;
}

std::optional<alert_record> storage::load_alert(uint64_t id) const {
  // Stored with its twin, whose shard the id does not tell: one point read
  // per shard.
  for (uint32_t shard = 0; shard < virtual_shards_; ++shard) {
    auto key = keys::alert(shard, id);
    auto value = impl_->get(key, "Alert");
    if (!value)
      continue;
    auto a = decode_alert(*value);
    if (!a) {
      impl_->refuse(key, a.error());
      return std::nullopt;
    }
    return std::move(*a);
  }
  return std::nullopt;
}

std::vector<alert_record> storage::load_alerts() const {
  std::vector<alert_record> out;
  for (uint32_t shard = 0; shard < virtual_shards_; ++shard)
    scan(*impl_->db, keys::alert_prefix(shard), [&](std::string_view k, std::string_view v) {
      if (auto a = decode_alert(v))
        out.push_back(std::move(*a));
      else
        impl_->refuse(k, a.error());
    });
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return out;
}

uint64_t storage::last_alert_id() const {
  uint64_t last = 0;
  for (uint32_t shard = 0; shard < virtual_shards_; ++shard)
    last = std::max(last, last_id(*impl_->db, keys::alert_prefix(shard)));
  return last;
}

// -- one virtual shard's range ------------------------------------------------------

void storage::for_each_record(
  uint32_t shard, const std::function<void(std::string_view key, std::string_view value)>& f) const {
  if (shard >= virtual_shards_)
    return;
  auto end = keys::shard_end(shard);
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  for (it->Seek(keys::shard_begin(shard)); it->Valid(); it->Next())
    f(view(it->key()), view(it->value()));
}

shard_stats storage::shard_size(uint32_t shard) const {
  shard_stats out;
  for_each_record(shard, [&](std::string_view k, std::string_view v) {
    ++out.records;
    out.bytes += k.size() + v.size();
  });
  return out;
}

uint64_t storage::int_property(const std::string& name) const {
  uint64_t v = 0;
  impl_->db->GetIntProperty(name, &v);
  return v;
}

double storage::map_property(const std::string& name, const std::string& key) const {
  std::map<std::string, std::string> m;
  if (!impl_->db->GetMapProperty(name, &m))
    return 0;
  auto i = m.find(key);
  if (i == m.end())
    return 0;
  char* end = nullptr;
  double v = std::strtod(i->second.c_str(), &end);
  return end == i->second.c_str() ? 0 : v; // not a number: 0
}

} // namespace twinrt::runtime
