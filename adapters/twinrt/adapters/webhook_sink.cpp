#include "twinrt/adapters/webhook_sink.hpp"

#include <mutex>

#include <curl/curl.h>

namespace twinrt::adapters {

namespace {

// curl_global_init is not thread-safe; run it once before any handle.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

int progress(void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(cancelled)->load() ? 1 : 0; // non-zero aborts
}

} // namespace

webhook_sink::webhook_sink(webhook_options opts) : opts_(std::move(opts)) {
  init_curl_once();
  curl_ = curl_easy_init();
}

webhook_sink::~webhook_sink() {
  if (curl_)
    curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string webhook_sink::body(const std::vector<runtime::event>& events) {
  std::string out = "{\"events\":[";
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0)
      out += ',';
    out += runtime::to_json(events[i]);
  }
  out += "]}";
  return out;
}

bool webhook_sink::deliver(const std::vector<runtime::event>& events, std::string& error) {
  auto* c = static_cast<CURL*>(curl_);
  if (c == nullptr) {
    error = "webhook " + opts_.url + ": cannot create a curl handle";
    return false;
  }
  auto payload = body(events);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:"); // no 100-continue round trip
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, opts_.url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &cancelled_);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  auto rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    error = "webhook " + opts_.url + ": " + curl_easy_strerror(rc);
    return false;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    error = "webhook " + opts_.url + ": HTTP status " + std::to_string(status);
    return false;
  }
  return true;
}

} // namespace twinrt::adapters
