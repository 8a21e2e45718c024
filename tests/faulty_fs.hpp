#pragma once

// A RocksDB file system that fails on command: the storage-fault tests put
// it under a node (node_config::file_system) and arm one fault at a time.

#include <atomic>
#include <memory>
#include <string>

#include <rocksdb/file_system.h>

namespace twinrt::testing {

enum class fault {
  none,
  write,    // appending to any file fails with an I/O error
  sync,     // syncing any file fails with an I/O error
  no_space, // appending fails as on a full disk (ENOSPC)
  rename,   // renaming a file fails (RocksDB renames to install CURRENT and others)
};

class faulty_fs final : public rocksdb::FileSystemWrapper {
public:
  faulty_fs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

  const char* Name() const override { return "faulty_fs"; }

  void arm(fault f) { armed_.store(f); }
  fault armed() const { return armed_.load(); }
  /// How many operations failed because of an armed fault.
  uint64_t injected() const { return injected_.load(); }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* out,
                                    rocksdb::IODebugContext* dbg) override {
    auto s = target()->NewWritableFile(name, opts, out, dbg);
    if (s.ok())
      *out = std::make_unique<file>(std::move(*out), *this);
    return s;
  }

  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* out,
                                       rocksdb::IODebugContext* dbg) override {
    auto s = target()->ReopenWritableFile(name, opts, out, dbg);
    if (s.ok())
      *out = std::make_unique<file>(std::move(*out), *this);
    return s;
  }

  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& opts,
                               rocksdb::IODebugContext* dbg) override {
    if (armed() == fault::rename)
      return failed(rocksdb::IOStatus::IOError("injected rename failure", from));
    return target()->RenameFile(from, to, opts, dbg);
  }

private:
  rocksdb::IOStatus failed(rocksdb::IOStatus s) {
    ++injected_;
    return s;
  }

  class file final : public rocksdb::FSWritableFileOwnerWrapper {
  public:
    file(std::unique_ptr<rocksdb::FSWritableFile> f, faulty_fs& fs)
      : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& opts,
                             rocksdb::IODebugContext* dbg) override {
      if (auto s = append_fault(); !s.ok())
        return s;
      return FSWritableFileOwnerWrapper::Append(data, opts, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& opts,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (auto s = append_fault(); !s.ok())
        return s;
      return FSWritableFileOwnerWrapper::Append(data, opts, info, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& opts, rocksdb::IODebugContext* dbg) override {
      if (fs_.armed() == fault::sync)
        return fs_.failed(rocksdb::IOStatus::IOError("injected fsync failure"));
      return FSWritableFileOwnerWrapper::Sync(opts, dbg);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& opts,
                            rocksdb::IODebugContext* dbg) override {
      if (fs_.armed() == fault::sync)
        return fs_.failed(rocksdb::IOStatus::IOError("injected fsync failure"));
      return FSWritableFileOwnerWrapper::Fsync(opts, dbg);
    }

  private:
    rocksdb::IOStatus append_fault() {
      switch (fs_.armed()) {
        case fault::write:
          return fs_.failed(rocksdb::IOStatus::IOError("injected write failure"));
        case fault::no_space:
          return fs_.failed(rocksdb::IOStatus::NoSpace("injected: no space left on device"));
        default:
          return rocksdb::IOStatus::OK();
      }
    }
    faulty_fs& fs_;
  };

  std::atomic<fault> armed_{fault::none};
  std::atomic<uint64_t> injected_{0};
};

} // namespace twinrt::testing
