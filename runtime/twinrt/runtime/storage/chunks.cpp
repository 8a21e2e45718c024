// Sealed history chunks ('K' keys): storing one, and reading their points
// beside the per-sample history points.

#include <algorithm>
#include <stdexcept>
#include <variant>

#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/records.hpp"
#include "twinrt/twins/chunk.hpp"

namespace twinrt::runtime {

std::string storage::batch::put_chunk(twin_ref twin, const std::string& channel,
                                      std::string_view chunk) {
  auto opened = twins::chunk_reader::open(chunk);
  if (auto* why = std::get_if<std::string>(&opened))
    return *why;
  auto& h = std::get<twins::chunk_reader>(opened).header();
  if (keys::chunk_window(h.first_ts_ms) != keys::chunk_window(h.last_ts_ms))
    return "history chunk: its points from " + std::to_string(h.first_ts_ms) + " to "
           + std::to_string(h.last_ts_ms) + " ms lie in two windows of "
           + std::to_string(history_chunk_window_ms) + " ms";
  auto crc = keys::read_be32(chunk.data() + chunk.size() - 4);
  if (impl_->virtual_shards == 0) // a caller's bug, as in every per-twin write
    throw std::logic_error("storage::batch: put_chunk into a batch not made by new_batch()");
  auto shard = runtime::shard_of(twin.id, impl_->virtual_shards);
  impl_->wb.Put(keys::chunk(shard, twin.number, channel, h.first_ts_ms, crc),
                rocksdb::Slice(chunk.data(), chunk.size()));
  return {};
}

namespace {

caf::error corrupt_chunk(const std::string& why) {
  static const std::string codec = "history chunk: "; // the codec names itself
  return records_io::corrupt("history chunk",
                             why.rfind(codec, 0) == 0 ? why.substr(codec.size()) : why);
}

} // namespace

namespace internal {

// The points of `twin`'s chunks of `channel` with from_ms <= ts < to_ms,
// window by window, unordered within a window, stopping after the window
// in which `limit` is reached (every later point is later than all of them).
std::vector<history_point> read_chunk_points(const storage::impl& in, uint32_t shard,
                                             uint32_t number, const std::string& channel,
                                             int64_t from_ms, int64_t to_ms, size_t limit) {
  std::vector<history_point> out;
  if (from_ms >= to_ms || limit == 0)
    return out;
  auto prefix = keys::chunk_prefix(shard, number, channel);
  auto start = prefix;
  keys::append_be64(start, keys::chunk_window(from_ms));
  auto last_window = keys::chunk_window(to_ms - 1);
  std::unique_ptr<rocksdb::Iterator> it(in.db->NewIterator(rocksdb::ReadOptions()));
  uint64_t window = 0;
  bool any = false;
  std::vector<history_point> points;
  for (it->Seek(start); it->Valid(); it->Next()) {
    auto k = view(it->key());
    if (k.size() != prefix.size() + 20 || k.substr(0, prefix.size()) != prefix)
      break;
    auto w = keys::read_be64(k.data() + prefix.size());
    if (w > last_window)
      break;
    if (any && w != window && out.size() >= limit)
      break;
    window = w;
    any = true;
    auto opened = twins::chunk_reader::open(view(it->value()));
    if (auto* why = std::get_if<std::string>(&opened)) {
      in.refuse(k, corrupt_chunk(*why));
      continue;
    }
    auto& r = std::get<twins::chunk_reader>(opened);
    if (r.header().last_ts_ms < from_ms || r.header().first_ts_ms >= to_ms)
      continue;
    points.clear();
    while (auto* p = r.next())
      if (p->ts_ms >= from_ms && p->ts_ms < to_ms)
        points.push_back({p->ts_ms, p->value, p->model_version, p->source, p->seq});
    if (!r.error().empty()) {
      in.refuse(k, corrupt_chunk(r.error()));
      continue;
    }
    out.insert(out.end(), std::make_move_iterator(points.begin()),
               std::make_move_iterator(points.end()));
  }
  return out;
}

} // namespace internal

} // namespace twinrt::runtime
