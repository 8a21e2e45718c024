#pragma once

// Brings a data directory's key layout up to keys::current_layout when
// storage opens it (storage/migrate.cpp).

#include <cstddef>
#include <cstdint>
#include <string>

namespace rocksdb {
class DB;
} // namespace rocksdb

namespace twinrt::runtime::layout {

/// How a migration moves records: at most `chunk` records per write batch,
/// and (tests only) at most `max_chunks` batches before it stops as if killed.
struct migration_limits {
  size_t chunk = 4096;
  size_t max_chunks = ~size_t{0};
};

/// Checks the stored layout version; migrates layout 1 (no version stored,
/// data present) to the current one and stores the version; stores it for
/// new data. Returns false and sets `error` for a version this build does
/// not know (a newer twinrt wrote the data) or cannot read. `path` names
/// the directory in messages.
bool settle(rocksdb::DB& db, uint32_t virtual_shards, const std::string& path, std::string& error,
            const migration_limits& limits = {});

/// Moves layout-1 records into their virtual shards' ranges; true once
/// nothing is left to move (then the version can be stored). Each batch
/// puts the new keys and deletes the old ones it moved, atomically, so a
/// migration stopped at any point resumes where it stopped. Exposed for
/// tests that stop it midway.
bool move_v1_records(rocksdb::DB& db, uint32_t virtual_shards, const std::string& path,
                     std::string& error, const migration_limits& limits);

} // namespace twinrt::runtime::layout
