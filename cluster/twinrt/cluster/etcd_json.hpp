#pragma once

// The v3 JSON gateway's encoding, shared by the client and the watch:
// base64 keys and values, 64-bit numbers as strings, fields at their
// default value left out.

#include <cstdint>
#include <string>

#include <caf/expected.hpp>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "twinrt/cluster/etcd_client.hpp"

namespace twinrt::cluster::etcd::wire {

/// libcurl's global set-up, once per process (every handle's user calls it).
void curl_init();

/// Sets `c` up for a POST of JSON `body` to `url`, the answer going to
/// `write(…, data)`; the headers list to free after the transfer.
curl_slist* json_post(CURL* c, const std::string& url, const std::string& body,
                      size_t (*write)(char*, size_t, size_t, void*), void* data);

std::string encode64(const std::string& bytes);
/// Strict base64 (standard alphabet, padded); nullopt-like error otherwise.
caf::expected<std::string> decode64(const std::string& text);

/// A 64-bit field: absent means 0 (protobuf's default), a string or a number.
caf::expected<int64_t> int_field(const nlohmann::json& obj, const char* name);

/// An etcd KeyValue object.
caf::expected<kv> read_kv(const nlohmann::json& obj);

/// A RangeResponse object (the header's revision and the keys).
caf::expected<range_result> read_range(const nlohmann::json& obj);

} // namespace twinrt::cluster::etcd::wire
