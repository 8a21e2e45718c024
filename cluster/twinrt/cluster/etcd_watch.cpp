#include "twinrt/cluster/etcd_watch.hpp"

#include <algorithm>

#include <curl/curl.h>

#include "twinrt/cluster/etcd_json.hpp"

namespace twinrt::cluster::etcd {

namespace {

struct stream_state {
  watch* self;
  std::function<void(const char*, size_t)> feed;
  const std::atomic<bool>* stop;
};

size_t on_data(char* data, size_t size, size_t n, void* p) {
  static_cast<stream_state*>(p)->feed(data, size * n);
  return size * n;
}

int on_progress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<stream_state*>(p)->stop->load() ? 1 : 0; // non-zero aborts the transfer
}

} // namespace

watch::watch(std::string endpoint, std::string key, std::string range_end, int64_t start_revision,
             events_handler on_events, error_handler on_error)
  : endpoint_(std::move(endpoint)),
    key_(std::move(key)),
    range_end_(std::move(range_end)),
    on_events_(std::move(on_events)),
    on_error_(std::move(on_error)),
    next_revision_(start_revision) {
  while (!endpoint_.empty() && endpoint_.back() == '/')
    endpoint_.pop_back();
  wire::curl_init();
  worker_.start([this] { run(); });
}

watch::~watch() { worker_.stop(); }

void watch::handle_line(const std::string& line) {
  auto fail = [this](caf::error e) {
    worker_.request_stop();
    if (on_error_)
      on_error_(e);
  };
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(make_error(errc::bad_reply, "watch stream line is not JSON: " + line.substr(0, 120)));
  if (auto e = j.find("error"); e != j.end()) {
    established_ = false; // etcd ends the stream; run() connects again
    return;
  }
  auto& r = j.contains("result") ? j["result"] : j;
  if (r.value("canceled", false)) {
    auto compact = wire::int_field(r, "compact_revision");
    if (compact && *compact > 0)
      return fail(make_error(errc::compacted, "watch of revision " + std::to_string(next_revision_)
                                                + ": etcd compacted up to revision "
                                                + std::to_string(*compact)));
    return fail(make_error(errc::refused, "watch canceled: " + r.value("cancel_reason", line)));
  }
  if (r.value("created", false)) {
    // Watching from "now" (revision 0): pin it, so that a reconnect goes on
    // from here rather than from a later "now".
    auto rev = wire::int_field(r.value("header", nlohmann::json::object()), "revision");
    if (next_revision_ == 0 && rev)
      next_revision_ = *rev + 1;
    established_ = true;
    return;
  }
  auto ev = r.find("events");
  if (ev == r.end() || !ev->is_array() || ev->empty()) {
    // A progress notification: every event up to the header's revision was sent.
    auto rev = wire::int_field(r.value("header", nlohmann::json::object()), "revision");
    if (rev && *rev + 1 > next_revision_)
      next_revision_ = *rev + 1;
    return;
  }
  std::vector<watch_event> out;
  int64_t last = 0;
  for (auto& e : *ev) {
    watch_event we;
    we.what = e.value("type", "PUT") == "DELETE" ? watch_event::kind::del : watch_event::kind::put;
    auto cur = wire::read_kv(e.value("kv", nlohmann::json::object()));
    if (!cur)
      return fail(cur.error());
    we.current = std::move(*cur);
    if (auto p = e.find("prev_kv"); p != e.end()) {
      auto prev = wire::read_kv(*p);
      if (!prev)
        return fail(prev.error());
      we.prev = std::move(*prev);
    }
    last = std::max(last, we.current.mod_revision);
    // A reconnect asks from next_revision_, so nothing before it comes twice;
    // this guards against a server that sends it anyway.
    if (we.current.mod_revision >= next_revision_)
      out.push_back(std::move(we));
  }
  if (!out.empty() && on_events_)
    on_events_(out);
  if (last + 1 > next_revision_)
    next_revision_ = last + 1;
}

void watch::run() {
  auto backoff = std::chrono::milliseconds{50};
  while (!worker_.stopping()) {
    ++connects_;
    nlohmann::json create{{"key", wire::encode64(key_)},
                          {"prev_kv", true},
                          {"progress_notify", true},
                          {"start_revision", std::to_string(next_revision_.load())}};
    if (!range_end_.empty())
      create["range_end"] = wire::encode64(range_end_);
    auto body = nlohmann::json{{"create_request", create}}.dump();
    auto url = endpoint_ + "/v3/watch";
    buffer_.clear();
    stream_state st{this, {}, &worker_.stop_flag()};
    bool got_data = false;
    st.feed = [this, &got_data](const char* p, size_t n) {
      got_data = true;
      buffer_.append(p, n);
      size_t start = 0;
      for (size_t nl; !worker_.stopping() && (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1)
        if (nl > start)
          handle_line(buffer_.substr(start, nl - start));
      buffer_.erase(0, start);
    };
    CURL* c = curl_easy_init();
    if (c) {
      auto* headers = wire::json_post(c, url, body, on_data, &st);
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, &st);
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
      // A peer that vanished without closing the connection is noticed by TCP keepalive.
      curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
      curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 5L);
      curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 2L);
      curl_easy_perform(c); // returns when the stream ends, breaks or is stopped
      curl_slist_free_all(headers);
      curl_easy_cleanup(c);
    }
    established_ = false;
    if (got_data)
      backoff = std::chrono::milliseconds{50};
    worker_.pause(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
  }
}

} // namespace twinrt::cluster::etcd
