#include "twinrt/adapters/mqtt_sink.hpp"

#include <chrono>
#include <condition_variable>

namespace twinrt::adapters {

struct mqtt_sink::attempt {
  uint64_t first = 0, last = 0;
  std::mutex m;
  std::condition_variable cv;
  size_t left = 0;
  bool failed = false;
};

namespace {

mqtt::client_options client_opts(const mqtt_sink_options& o) {
  mqtt::client_options c;
  c.host = o.host;
  c.port = o.port;
  c.client_id = o.client_id;
  c.clean_session = true; // the router retries what the broker did not acknowledge
  c.tls = o.tls;
  return c;
}

} // namespace

mqtt_sink::mqtt_sink(mqtt_sink_options opts)
  : opts_(std::move(opts)), client_(client_opts(opts_)) {
  mqtt::report_connect_failures(client_, "twinrt sink " + opts_.client_id);
  client_.start();
}

mqtt_sink::~mqtt_sink() {
  cancel();
  client_.stop();
}

void mqtt_sink::cancel() {
  cancelled_ = true;
  std::shared_ptr<attempt> a;
  {
    std::lock_guard<std::mutex> g(mtx_);
    a = current_;
  }
  if (a) {
    std::lock_guard<std::mutex> g(a->m);
    a->cv.notify_all();
  }
}

bool mqtt_sink::deliver(const std::vector<runtime::event>& events, std::string& error) {
  if (events.empty())
    return true;
  std::shared_ptr<attempt> a;
  {
    std::lock_guard<std::mutex> g(mtx_);
    if (current_ && current_->first == events.front().id && current_->last == events.back().id
        && !current_->failed) {
      a = current_; // a retry: its messages are still queued in the client
    } else {
      a = std::make_shared<attempt>();
      a->first = events.front().id;
      a->last = events.back().id;
      a->left = events.size();
      current_ = a;
      for (auto& e : events)
        client_.publish(opts_.topic, runtime::to_json(e), 1, false, [a](bool ok) {
          std::lock_guard<std::mutex> g(a->m);
          if (!ok)
            a->failed = true;
          --a->left;
          a->cv.notify_all();
        });
    }
  }
  std::unique_lock<std::mutex> g(a->m);
  a->cv.wait_for(g, std::chrono::milliseconds(opts_.timeout_ms),
                 [&] { return a->left == 0 || cancelled_.load(); });
  if (a->left == 0 && !a->failed) {
    g.unlock();
    std::lock_guard<std::mutex> cg(mtx_);
    if (current_ == a)
      current_.reset();
    return true;
  }
  error = "mqtt " + opts_.host + ":" + std::to_string(opts_.port) + " topic " + opts_.topic
          + ": " + std::to_string(a->left) + " of " + std::to_string(events.size())
          + " events not acknowledged within " + std::to_string(opts_.timeout_ms) + " ms"
          + (client_.connected() ? "" : " (not connected)");
  return false;
}

} // namespace twinrt::adapters
