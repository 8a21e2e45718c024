// Layout 1 -> 2: layout 1 kept each twin's records at the top of the key
// space ('M' id, 'S' number, 'H' number ..., 'A' alert id); layout 2 puts
// the same key behind its virtual shard's prefix (keys::shard_begin), so a
// shard's data is one range. The node-wide records (models, events,
// cursors, properties) keep their keys.

#include "twinrt/runtime/storage/migrate.hpp"

#include <chrono>
#include <cstdio>
#include <unordered_map>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "twinrt/runtime/sharding.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/runtime/storage/keys.hpp"

namespace twinrt::runtime::layout {

namespace {

std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

bool has_twin_data(rocksdb::DB& db) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (it->key()[0] != 'P') // properties alone: a directory that was just created
      return true;
  return false;
}

bool put_version(rocksdb::DB& db, const std::string& path, std::string& error) {
  std::string bytes;
  keys::append_be32(bytes, keys::current_layout);
  rocksdb::WriteOptions wo;
  wo.sync = true; // and with it every batch the migration wrote
  auto s = db.Put(wo, keys::layout_version(), bytes);
  if (!s.ok())
    error = "data directory " + path + ": cannot store the storage layout version: " + s.ToString();
  return s.ok();
}

// Writes what `wb` moved; counts a chunk.
class mover {
public:
  mover(rocksdb::DB& db, const migration_limits& limits) : db_(db), limits_(limits) {}

  // False once the limit of chunks is reached (a test's "kill").
  bool move(std::string_view old_key, std::string_view value, uint32_t shard) {
    auto key = keys::shard_begin(shard);
    key += old_key;
    wb_.Put(key, rocksdb::Slice(value.data(), value.size()));
    wb_.Delete(rocksdb::Slice(old_key.data(), old_key.size()));
    ++moved_;
    if (static_cast<size_t>(wb_.Count()) >= 2 * limits_.chunk)
      return flush();
    return true;
  }

  bool flush() {
    if (wb_.Count() == 0)
      return ok_;
    if (chunks_ >= limits_.max_chunks)
      return ok_ = false;
    auto s = db_.Write(rocksdb::WriteOptions(), &wb_);
    wb_.Clear();
    ++chunks_;
    if (!s.ok()) {
      failure_ = s.ToString();
      return ok_ = false;
    }
    return ok_;
  }

  bool stopped() const { return !ok_; }
  const std::string& failure() const { return failure_; }
  uint64_t moved() const { return moved_; }

private:
  rocksdb::DB& db_;
  migration_limits limits_;
  rocksdb::WriteBatch wb_;
  size_t chunks_ = 0;
  uint64_t moved_ = 0;
  bool ok_ = true;
  std::string failure_;
};

} // namespace

bool move_v1_records(rocksdb::DB& db, uint32_t virtual_shards, const std::string& path,
                     std::string& error, const migration_limits& limits) {
  auto started = std::chrono::steady_clock::now();
  // Number -> shard, from every meta: those not moved yet and those moved
  // by an earlier, interrupted run. Metas move last.
  std::unordered_map<uint32_t, uint32_t> shard_of_number;
  auto note_meta = [&](std::string_view value) {
    if (auto m = storage::decode_meta(value))
      shard_of_number[m->number] = shard_of(m->id, virtual_shards);
  };
  {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("M"); it->Valid() && it->key().starts_with("M"); it->Next())
      note_meta(view(it->value()));
    for (uint32_t s = 0; s < virtual_shards; ++s) {
      auto prefix = keys::meta_prefix(s);
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
        note_meta(view(it->value()));
    }
  }
  mover m(db, limits);
  uint64_t left = 0; // records no meta or alert places: kept under their old keys
  auto move_all = [&](char tag, auto&& shard_for) {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
    std::string prefix(1, tag);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && !m.stopped();
         it->Next()) {
      uint32_t shard = 0;
      if (shard_for(view(it->key()), view(it->value()), shard))
        m.move(view(it->key()), view(it->value()), shard);
      else
        ++left;
    }
  };
  auto by_number = [&](std::string_view key, std::string_view, uint32_t& shard) {
    if (key.size() < 5)
      return false;
    auto i = shard_of_number.find(keys::read_be32(key.data() + 1));
    if (i == shard_of_number.end())
      return false;
    shard = i->second;
    return true;
  };
  move_all('S', by_number);
  move_all('H', by_number);
  move_all('A', [&](std::string_view, std::string_view value, uint32_t& shard) {
    auto a = storage::decode_alert(value);
    if (!a)
      return false;
    shard = shard_of(a->twin, virtual_shards);
    return true;
  });
  move_all('M', [&](std::string_view key, std::string_view, uint32_t& shard) {
    shard = shard_of(key.substr(1), virtual_shards);
    return true;
  });
  if (!m.flush() || m.stopped()) {
    error = "data directory " + path + ": migrating to storage layout "
            + std::to_string(keys::current_layout) + " stopped"
            + (m.failure().empty() ? std::string() : ": " + m.failure())
            + "; the next start resumes it";
    return false;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - started)
              .count();
  std::fprintf(stderr,
               "twinrt: data directory %s: storage layout 1 -> %u: %llu records of %zu twins "
               "moved into %u virtual shards in %lld ms",
               path.c_str(), keys::current_layout, static_cast<unsigned long long>(m.moved()),
               shard_of_number.size(), virtual_shards, static_cast<long long>(ms));
  if (left > 0)
    std::fprintf(stderr, "; %llu records of twins without a readable meta left as they were",
                 static_cast<unsigned long long>(left));
  std::fprintf(stderr, "\n");
  return true;
}

bool settle(rocksdb::DB& db, uint32_t virtual_shards, const std::string& path, std::string& error,
            const migration_limits& limits) {
  std::string value;
  auto s = db.Get(rocksdb::ReadOptions(), keys::layout_version(), &value);
  if (!s.ok() && !s.IsNotFound()) {
    error = "data directory " + path + ": cannot read the storage layout version: " + s.ToString();
    return false;
  }
  uint32_t version = 1; // no version stored: layout 1, or new data
  if (s.ok()) {
    if (value.size() != 4 || keys::read_be32(value.data()) == 0) {
      error = "data directory " + path + ": the stored storage layout version is unreadable ("
              + std::to_string(value.size()) + " bytes)";
      return false;
    }
    version = keys::read_be32(value.data());
  }
  if (version == keys::current_layout)
    return true;
  if (version > keys::current_layout) {
    error = "data directory " + path + " has storage layout " + std::to_string(version)
            + ", written by a newer twinrt; this one reads layouts 1.."
            + std::to_string(keys::current_layout) + " (start it with that newer twinrt)";
    return false;
  }
  if (!s.ok() && !has_twin_data(db))
    return put_version(db, path, error); // new data
  return move_v1_records(db, virtual_shards, path, error, limits)
         && put_version(db, path, error);
}

} // namespace twinrt::runtime::layout
