// The event log the router reads ('E' keys) and the sinks' cursors.

#include "twinrt/runtime/storage/impl.hpp"
#include "twinrt/runtime/storage/keys.hpp"
#include "twinrt/runtime/storage/records.hpp"

namespace twinrt::runtime {

void storage::impl::append_events(rocksdb::WriteBatch& wb, std::vector<event>& events) {
  for (auto& e : events) {
    e.id = ++last_event_id;
    wb.Put(keys::event(e.id), records_io::encode_event(e));
  }
}

void storage::impl::publish_events() {
  if (durable_event_id.load() == last_event_id)
    return;
  {
    std::lock_guard<std::mutex> g(events_mtx);
    durable_event_id = last_event_id;
  }
  events_cv.notify_all();
}

uint64_t storage::durable_event_id() const {
  return impl_->durable_event_id.load();
}

event_page storage::read_events(uint64_t after, size_t limit) const {
  event_page out;
  out.last_id = after;
  auto durable = impl_->durable_event_id.load();
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keys::event(after + 1)); it->Valid() && out.events.size() < limit; it->Next()) {
    uint64_t id = 0;
    if (!keys::event_id(view(it->key()), id) || id > durable)
      break;
    out.last_id = id;
    auto e = decode_event(view(it->value()));
    if (e && e->id != id)
      e = records_io::corrupt("Event", "id " + std::to_string(e->id) + " under the key of event "
                                         + std::to_string(id));
    if (e)
      out.events.push_back(std::move(*e));
    else
      impl_->refuse(view(it->key()), e.error());
  }
  return out;
}

bool storage::wait_for_events(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> g(impl_->events_mtx);
  return impl_->events_cv.wait_for(g, timeout, [&] {
    return impl_->waiters_stopped || impl_->durable_event_id.load() > after;
  }) && impl_->durable_event_id.load() > after;
}

void storage::stop_waiters() {
  {
    std::lock_guard<std::mutex> g(impl_->events_mtx);
    impl_->waiters_stopped = true;
  }
  impl_->events_cv.notify_all();
}

uint64_t storage::load_cursor(const std::string& sink) const {
  auto key = keys::cursor(sink);
  auto value = impl_->get(key, "cursor");
  if (!value)
    return 0;
  if (value->size() != 8) {
    impl_->refuse(key, records_io::corrupt("cursor", std::to_string(value->size()) + " bytes, not 8"));
    return 0;
  }
  return keys::read_be64(value->data());
}

void storage::trim_events(uint64_t below) {
  if (below <= 1)
    return;
  auto b = new_batch();
  b.internals().wb.DeleteRange(keys::event(0), keys::event(below));
  commit(std::move(b), {});
}

} // namespace twinrt::runtime
