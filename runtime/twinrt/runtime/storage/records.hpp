#pragma once

// Every Cap'n Proto record storage writes (schemas/records.capnp): the
// encoders here, the decoders as storage's static decode_* members
// (storage/records.cpp).

#include <string>

#include <caf/error.hpp>

#include "twinrt/runtime/event.hpp"
#include "twinrt/runtime/storage.hpp"

namespace twinrt::runtime::records_io {

std::string encode_meta(const twin_meta& m);
std::string encode_history_point(double value, uint32_t model_version, const std::string& source,
                                 uint64_t seq);
std::string encode_model(const stored_model& m);
std::string encode_alert(const alert_record& a);
std::string encode_event(const event& e);
// (storage::encode_state encodes a TwinState.)

/// errc::corrupt_record, "stored <type>: <why>".
caf::error corrupt(const char* type, const std::string& why);

} // namespace twinrt::runtime::records_io
