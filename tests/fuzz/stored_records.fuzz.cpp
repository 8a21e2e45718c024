// Fuzz target for the decoders of what a node reads back from RocksDB
// (runtime::storage::decode_*): a corrupt value must be refused, not crash
// the node. Input: one byte choosing the record type (modulo 6: TwinState,
// TwinMeta, HistoryPoint, ModelText, Alert, Event), then the stored value.
// Beyond not crashing or throwing: a refusal is errc::corrupt_record naming
// the record type; a TwinState that decodes encodes to bytes that decode
// again and encode to the same bytes.
//
// The seeds in corpus/stored_records/ are real records, made with
//   capnp encode -I/usr/include schemas/records.capnp TYPE < record.txt
// behind their type byte.

#include <cstdint>
#include <string>
#include <string_view>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage.hpp"

using namespace twinrt::runtime;

namespace {

template <class T>
void check(const caf::expected<T>& r, const char* type) {
  if (r)
    return;
  if (code_of(r.error()) != errc::corrupt_record
      || describe(r.error()).rfind(std::string("stored ") + type + ": ", 0) != 0)
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view value(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto st = storage::decode_state(value);
      check(st, "TwinState");
      if (st) {
        auto bytes = storage::encode_state(*st);
        auto again = storage::decode_state(bytes);
        if (!again || storage::encode_state(*again) != bytes)
          __builtin_trap();
      }
      break;
    }
    case 1:
      check(storage::decode_meta(value), "TwinMeta");
      break;
    case 2:
      check(storage::decode_history_point(value), "HistoryPoint");
      break;
    case 3:
      check(storage::decode_model(value), "ModelText");
      break;
    case 4:
      check(storage::decode_alert(value), "Alert");
      break;
    default:
      check(storage::decode_event(value), "Event");
      break;
  }
  return 0;
}
