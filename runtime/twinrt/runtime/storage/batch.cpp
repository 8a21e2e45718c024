#include <stdexcept>

#include "twinrt/runtime/sharding.hpp"
#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/records.hpp"

namespace twinrt::runtime {

namespace {

uint32_t shard_in(const storage::batch::impl& b, std::string_view id) {
  // A caller's bug, not an input: a batch not made by storage::new_batch().
  if (b.virtual_shards == 0)
    throw std::logic_error("storage::batch: a per-twin write into a batch not made by "
                           "storage::new_batch()");
  return runtime::shard_of(id, b.virtual_shards);
}

} // namespace

storage::batch::batch() : impl_(std::make_unique<impl>()) {
}

storage::batch::batch(uint32_t virtual_shards) : impl_(std::make_unique<impl>()) {
  impl_->virtual_shards = virtual_shards;
}

storage::batch::~batch() = default;
storage::batch::batch(batch&&) noexcept = default;
storage::batch& storage::batch::operator=(batch&&) noexcept = default;

storage::batch storage::new_batch() const {
  return batch(virtual_shards_);
}

void storage::batch::put_meta(const twin_meta& m) {
  impl_->wb.Put(keys::meta(shard_in(*impl_, m.id), m.id), records_io::encode_meta(m));
}

void storage::batch::delete_twin(twin_ref twin) {
  auto shard = shard_in(*impl_, twin.id);
  impl_->wb.Delete(keys::meta(shard, twin.id));
  impl_->wb.Delete(keys::state(shard, twin.number));
  impl_->wb.DeleteRange(keys::twin_history_begin(shard, twin.number),
                        keys::twin_history_end(shard, twin.number));
  impl_->wb.DeleteRange(keys::twin_chunks_begin(shard, twin.number),
                        keys::twin_chunks_end(shard, twin.number));
}

void storage::batch::put_state(twin_ref twin, const twins::twin_state& st) {
  impl_->wb.Put(keys::state(shard_in(*impl_, twin.id), twin.number), encode_state(st));
}

void storage::batch::put_encoded_state(twin_ref twin, std::string_view bytes) {
  impl_->wb.Put(keys::state(shard_in(*impl_, twin.id), twin.number),
                rocksdb::Slice(bytes.data(), bytes.size()));
}

void storage::batch::put_history(twin_ref twin, const std::string& channel, int64_t ts_ms,
                                 double value, uint32_t model_version, const std::string& source,
                                 uint64_t seq) {
  impl_->wb.Put(keys::history(shard_in(*impl_, twin.id), twin.number, channel, ts_ms, source, seq),
                records_io::encode_history_point(value, model_version, source, seq));
}

void storage::batch::log_sample(twin_ref twin, const std::string& channel, int64_t ts_ms,
                                double value, uint32_t model_version, const std::string& source,
                                uint64_t seq) {
  impl_->log[shard_in(*impl_, twin.id)].add(twin.id, model_version, channel, ts_ms, value, source,
                                            seq);
}

void storage::batch::trim_log(uint32_t shard, uint64_t through) {
  if (shard < impl_->virtual_shards)
    impl_->log_ops.trims.emplace_back(shard, through);
}

void storage::batch::put_model(const stored_model& m) {
  impl_->wb.Put(keys::model(m.kind, m.version), records_io::encode_model(m));
}

void storage::batch::put_alert(const alert_record& a) {
  impl_->wb.Put(keys::alert(shard_in(*impl_, a.twin), a.id), records_io::encode_alert(a));
}

void storage::batch::put_cursor(const std::string& sink, uint64_t event_id) {
  std::string v;
  keys::append_be64(v, event_id);
  impl_->wb.Put(keys::cursor(sink), v);
}

void storage::batch::delete_shard(uint32_t shard) {
  impl_->wb.DeleteRange(keys::shard_begin(shard), keys::shard_end(shard));
  if (shard < impl_->virtual_shards) {
    impl_->log.erase(shard); // its records would go with the range
    impl_->log_ops.restarted.push_back(shard);
  }
}

size_t storage::batch::count() const {
  return impl_->wb.Count();
}

bool storage::batch::empty() const {
  return count() == 0 && impl_->log.empty() && impl_->log_ops.empty();
}

size_t storage::batch::payload_bytes() const {
  struct counter : rocksdb::WriteBatch::Handler {
    size_t bytes = 0;
    void Put(const rocksdb::Slice& key, const rocksdb::Slice& value) override {
      bytes += key.size() + value.size();
    }
    void Delete(const rocksdb::Slice& key) override { bytes += key.size(); }
  } c;
  impl_->wb.Iterate(&c);
  return c.bytes;
}

} // namespace twinrt::runtime
