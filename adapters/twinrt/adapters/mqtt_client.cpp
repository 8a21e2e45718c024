#include "twinrt/adapters/mqtt_client.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <csignal>
#include <cstdio>

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace twinrt::adapters::mqtt {

namespace {

using clock = std::chrono::steady_clock;

// Control packet types (MQTT 3.1.1 section 2.2.1), already shifted into the high nibble.
constexpr uint8_t connect_type = 0x10, connack_type = 0x20, publish_type = 0x30,
                  puback_type = 0x40, subscribe_type = 0x82, suback_type = 0x90,
                  pingreq_type = 0xC0, pingresp_type = 0xD0, disconnect_type = 0xE0;

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

void put_str(std::string& out, const std::string& s) {
  put_u16(out, static_cast<uint16_t>(std::min<size_t>(s.size(), 0xFFFF)));
  out.append(s, 0, std::min<size_t>(s.size(), 0xFFFF));
}

// Fixed header + body. The remaining length is a base-128 varint of at most 4 bytes.
void put_packet(std::string& out, uint8_t first, const std::string& body) {
  out.push_back(static_cast<char>(first));
  size_t n = body.size();
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n > 0)
      b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (n > 0);
  out += body;
}

std::string publish_packet(const std::string& topic, const std::string& payload, uint8_t qos,
                           bool retain, bool dup, uint16_t pid) {
  std::string body;
  body.reserve(topic.size() + payload.size() + 4);
  put_str(body, topic);
  if (qos > 0)
    put_u16(body, pid);
  body += payload;
  std::string out;
  out.reserve(body.size() + 5);
  put_packet(out, static_cast<uint8_t>(publish_type | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0)),
             body);
  return out;
}

std::string puback_packet(uint16_t pid) {
  std::string body;
  put_u16(body, pid);
  std::string out;
  put_packet(out, puback_type, body);
  return out;
}

struct outgoing {
  std::string topic, payload;
  bool retain = false;
  bool sent = false; // a re-send carries DUP only when the message went out before
  std::function<void(bool)> done;
};

struct inbound_ack {
  uint16_t pid = 0;
  bool acked = false;
};

} // namespace

struct client::impl {
  client_options opts;
  std::function<void(const message&)> on_message;
  std::function<void(bool)> on_connection;
  std::function<void(connect_failure, const std::string&)> on_connect_failure;

  mutable std::mutex mtx;
  mutable std::condition_variable connected_cv;
  std::condition_variable room_cv; // an unacked QoS 1 publish was acknowledged
  std::vector<std::pair<std::string, uint8_t>> subscriptions;
  std::string out_buf;                     // bytes waiting for the socket (current connection)
  std::deque<inbound_ack> inbound;         // QoS 1 PUBLISHes of this connection, arrival order
  uint64_t inbound_front = 0;              // arrival number of inbound.front()
  std::unordered_map<uint16_t, uint64_t> inbound_unacked; // packet id -> arrival number
  std::map<uint64_t, uint16_t> out_order;  // publish order -> packet id (QoS 1, unacked)
  std::map<uint16_t, std::pair<uint64_t, outgoing>> out_pending; // packet id -> (order, message)
  uint64_t out_seq = 0;
  uint16_t next_pid = 1;
  bool is_connected = false;
  int pending_subacks = 0; // SUBSCRIBEs of this connection not yet answered
  size_t skipping = 0;     // bytes of an oversized PUBLISH still to read and drop (I/O thread)
  size_t dropping = 0;     // payload bytes dropped from the PUBLISH being handled (I/O thread)
  std::vector<std::pair<std::function<void(bool)>, bool>> qos0_done; // run by the I/O thread after a write
  client_stats st;

  static constexpr size_t max_unacked = 60'000;
  std::atomic<bool> stopping{false};
  bool started = false;
  int wake_fd = -1;
  std::thread io;

  explicit impl(client_options o) : opts(std::move(o)) {
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~impl() {
    if (wake_fd >= 0)
      ::close(wake_fd);
  }

  // Queues bytes for the socket (under mtx). Only the append that finds the buffer empty
  // wakes the I/O thread: it takes the whole buffer at once.
  void send_later(const std::string& bytes) {
    bool was_empty = out_buf.empty();
    out_buf += bytes;
    if (was_empty)
      wake();
  }

  void clear_inbound() { // under mtx
    inbound.clear();
    inbound_unacked.clear();
    inbound_front = 0;
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd, &one, sizeof one);
  }
  void drain_wake() {
    uint64_t v;
    [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
  }

  uint16_t take_pid() { // under mtx; a packet id not in use by an unacked publish
    while (next_pid == 0 || out_pending.count(next_pid) > 0)
      ++next_pid;
    return next_pid++;
  }

  // Sleeps up to `ms`, waking early on stop(). Returns false when stopping.
  bool pause(int64_t ms) {
    auto until = clock::now() + std::chrono::milliseconds(ms);
    while (!stopping.load()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()).count();
      if (left <= 0)
        return true;
      pollfd p{wake_fd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (p.revents & POLLIN)
        drain_wake();
    }
    return false;
  }

  std::string connect_packet() const {
    std::string body;
    put_str(body, "MQTT");
    body.push_back(4); // protocol level 3.1.1
    uint8_t flags = opts.clean_session ? 0x02 : 0;
    if (opts.last_will)
      flags |= static_cast<uint8_t>(0x04 | (opts.last_will->qos << 3) | (opts.last_will->retain ? 0x20 : 0));
    if (!opts.username.empty())
      flags |= 0x80;
    if (!opts.password.empty())
      flags |= 0x40;
    body.push_back(static_cast<char>(flags));
    put_u16(body, opts.keep_alive_s);
    put_str(body, opts.client_id);
    if (opts.last_will) {
      put_str(body, opts.last_will->topic);
      put_str(body, opts.last_will->payload);
    }
    if (!opts.username.empty())
      put_str(body, opts.username);
    if (!opts.password.empty())
      put_str(body, opts.password);
    std::string out;
    put_packet(out, connect_type, body);
    return out;
  }

  // CONNECT and wait for a CONNACK accepting us. On success the connection is live:
  // subscriptions and unacked QoS 1 publishes (DUP) are queued for sending.
  // On failure sets `why` and `error`.
  bool handshake(transport& t, connect_failure& why, std::string& error) {
    char ack[4];
    if (!t.write_all(connect_packet(), 10'000, stopping) || !t.read_exact(ack, 4, 10'000, stopping)) {
      why = t.tls_failed() ? connect_failure::tls_handshake : connect_failure::no_connack;
      error = (t.tls_failed() ? "TLS with " + broker_name() + " failed: "
                              : "no CONNACK from " + broker_name() + ": ")
              + (t.error().empty() ? std::string("no answer within 10 s") : t.error());
      return false;
    }
    if (static_cast<uint8_t>(ack[0]) != connack_type || ack[1] != 2 || ack[3] != 0) {
      static const char* codes[] = {"accepted", "unacceptable protocol version",
                                    "identifier rejected", "server unavailable",
                                    "bad user name or password", "not authorized"};
      auto code = static_cast<uint8_t>(ack[3]);
      why = connect_failure::refused;
      error = broker_name() + " refused CONNECT: "
              + (static_cast<uint8_t>(ack[0]) != connack_type ? std::string("no CONNACK")
                 : code < 6                                  ? std::string(codes[code])
                                                              : "code " + std::to_string(code));
      return false;
    }
    std::lock_guard<std::mutex> g(mtx);
    out_buf.clear();
    clear_inbound();
    if (!subscriptions.empty()) {
      std::string body;
      put_u16(body, take_pid_for_control());
      for (auto& [filter, qos] : subscriptions) {
        put_str(body, filter);
        body.push_back(static_cast<char>(std::min<uint8_t>(qos, 1)));
      }
      put_packet(out_buf, subscribe_type, body);
      pending_subacks = 1;
    }
    for (auto& [order, pid] : out_order) {
      auto& o = out_pending.at(pid).second;
      out_buf += publish_packet(o.topic, o.payload, 1, o.retain, o.sent, pid);
      st.resent += o.sent ? 1 : 0;
      o.sent = true;
    }
    is_connected = true;
    ++st.connects;
    st.last_connect_error.clear();
    return true;
  }

  std::string broker_name() const {
    return std::string(opts.tls ? "mqtts://" : "") + opts.host + ":" + std::to_string(opts.port);
  }

  // Packet id for SUBSCRIBE; the SUBACK is only checked for refusals.
  uint16_t take_pid_for_control() { return take_pid(); }

  // Handles one complete packet from the broker. Returns false on a protocol error.
  bool handle(uint8_t first, const char* body, size_t len) {
    uint8_t type = first & 0xF0;
    if (type == (publish_type & 0xF0)) {
      if (len < 2)
        return false;
      uint8_t qos = (first >> 1) & 0x03;
      if (qos > 1)
        return false; // we subscribe with QoS <= 1; QoS 2 would need PUBREC
      size_t tlen = (static_cast<uint8_t>(body[0]) << 8) | static_cast<uint8_t>(body[1]);
      size_t off = 2 + tlen;
      if (off > len || (qos > 0 && off + 2 > len))
        return false;
      message m;
      m.topic.assign(body + 2, tlen);
      m.qos = qos;
      m.retain = (first & 1) != 0;
      m.dup = (first & 0x08) != 0;
      if (qos > 0) {
        m.packet_id = static_cast<uint16_t>((static_cast<uint8_t>(body[off]) << 8)
                                            | static_cast<uint8_t>(body[off + 1]));
        off += 2;
        if (m.packet_id == 0)
          return false;
      }
      m.payload.assign(body + off, len - off);
      m.dropped_bytes = dropping;
      {
        std::lock_guard<std::mutex> g(mtx);
        ++st.messages_in;
        if (qos == 1 && inbound_unacked.count(m.packet_id) == 0) {
          inbound_unacked.emplace(m.packet_id, inbound_front + inbound.size());
          inbound.push_back({m.packet_id, false});
        }
      }
      if (on_message)
        on_message(m);
      return true;
    }
    if (type == puback_type) {
      if (len < 2)
        return false;
      uint16_t pid = static_cast<uint16_t>((static_cast<uint8_t>(body[0]) << 8) | static_cast<uint8_t>(body[1]));
      std::function<void(bool)> done;
      {
        std::lock_guard<std::mutex> g(mtx);
        auto it = out_pending.find(pid);
        if (it == out_pending.end())
          return true; // a late PUBACK for a message already acknowledged
        out_order.erase(it->second.first);
        done = std::move(it->second.second.done);
        out_pending.erase(it);
      }
      room_cv.notify_all();
      if (done)
        done(true);
      return true;
    }
    if (type == suback_type) {
      {
        std::lock_guard<std::mutex> g(mtx);
        for (size_t i = 2; i < len; ++i)
          if (static_cast<uint8_t>(body[i]) == 0x80)
            ++st.subscribe_refusals;
        pending_subacks = std::max(0, pending_subacks - 1);
      }
      connected_cv.notify_all();
      return true;
    }
    if (type == pingresp_type)
      return true;
    return false; // CONNACK twice, PUBREL, or something a client never receives
  }

  // Runs one connection until it breaks or stop() is called.
  void session(transport& t) {
    std::string in;
    skipping = 0;
    std::string sending;
    size_t sent = 0;
    auto last_out = clock::now(), last_in = clock::now();
    bool ping_waiting = false;
    clock::time_point ping_sent;
    const auto keep = std::chrono::milliseconds(int64_t{opts.keep_alive_s} * 1000);
    // Wake often enough to ping well inside the broker's 1.5 periods.
    const int timeout = opts.keep_alive_s > 0 ? static_cast<int>(std::min<int64_t>(500, keep.count() / 4))
                                              : 1000;
    while (!stopping.load()) {
      std::vector<std::pair<std::function<void(bool)>, bool>> finished;
      if (sent == sending.size()) {
        std::lock_guard<std::mutex> g(mtx);
        sending.clear();
        sent = 0;
        sending.swap(out_buf);
        finished.swap(qos0_done);
      }
      for (auto& [f, ok] : finished)
        if (f)
          f(ok);
      auto now = clock::now();
      if (opts.keep_alive_s > 0) {
        if (ping_waiting && now - ping_sent > keep)
          break; // no answer to a PINGREQ within a period: the connection is dead
        // A PINGREQ when we were silent for a period (the broker's rule), or the broker was
        // (a publisher of QoS 0 hears nothing back, and silence would look like death).
        if ((now - last_out >= keep || now - last_in >= keep) && !ping_waiting) {
          sending.push_back(static_cast<char>(pingreq_type));
          sending.push_back(0);
          ping_waiting = true;
          ping_sent = now;
        }
      }
      // TLS may hold decrypted bytes already read from the socket: no waiting then.
      bool buffered = t.buffered();
      bool read_wants_out = t.wants_write();
      bool want_out = sent < sending.size() || t.wants_write();
      pollfd p[2] = {{t.fd(), static_cast<short>(POLLIN | (want_out ? POLLOUT : 0)), 0},
                     {wake_fd, POLLIN, 0}};
      if (::poll(p, 2, buffered ? 0 : timeout) < 0 && errno != EINTR)
        break;
      if (p[1].revents & POLLIN)
        drain_wake();
      if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL) && !(p[0].revents & POLLIN))
        break;
      if ((p[0].revents & POLLOUT) && sent < sending.size()) {
        auto n = t.write(sending.data() + sent, sending.size() - sent);
        if (n < 0)
          break;
        if (n > 0) {
          sent += static_cast<size_t>(n);
          last_out = clock::now();
        }
      }
      if ((p[0].revents & POLLIN) || buffered || (read_wants_out && (p[0].revents & POLLOUT))) {
        // Until the stream has nothing more now (TLS returns one record per read).
        bool broken = false;
        for (int reads = 0; reads < 64; ++reads) {
          char buf[65536];
          auto n = t.read(buf, sizeof buf);
          if (n < 0) {
            broken = true;
            break;
          }
          if (n == 0)
            break;
          in.append(buf, static_cast<size_t>(n));
          last_in = clock::now();
          ping_waiting = false;
        }
        if (broken || !parse_packets(in))
          break;
      }
    }
    if (stopping.load() && sent == sending.size()) {
      // Graceful: whatever is queued (acks), then DISCONNECT, so the broker drops the will.
      std::string tail;
      {
        std::lock_guard<std::mutex> g(mtx);
        tail.swap(out_buf);
      }
      tail.push_back(static_cast<char>(disconnect_type));
      tail.push_back(0);
      const std::atomic<bool> never{false}; // stopping already: at most 1 s more
      t.write_all(tail, 1'000, never);
    }
  }

  // Consumes every complete packet at the front of `in`.
  bool parse_packets(std::string& in) {
    size_t pos = 0;
    bool ok = true;
    while (ok) {
      if (skipping > 0) { // the rest of an oversized PUBLISH
        auto n = std::min(skipping, in.size() - pos);
        pos += n;
        skipping -= n;
        if (skipping > 0)
          break;
      }
      if (in.size() - pos < 2)
        break;
      size_t len = 0, mult = 1, i = pos + 1;
      bool complete = false;
      for (int k = 0; k < 4 && i < in.size(); ++k, ++i) {
        auto b = static_cast<uint8_t>(in[i]);
        len += (b & 0x7F) * mult;
        mult *= 128;
        if ((b & 0x80) == 0) {
          complete = true;
          ++i;
          break;
        }
        if (k == 3) {
          std::lock_guard<std::mutex> g(mtx);
          ++st.protocol_errors;
          return false; // a fifth length byte: malformed
        }
      }
      if (!complete)
        break;
      if (len > opts.max_packet_bytes) {
        auto first = static_cast<uint8_t>(in[pos]);
        {
          std::lock_guard<std::mutex> g(mtx);
          ++st.oversized_packets;
        }
        if ((first & 0xF0) != publish_type)
          return false; // only a PUBLISH may be large; anything else is broken
        // Deliver the message without its payload (so that it can be refused and
        // acknowledged), and read the payload past without keeping it.
        if (in.size() - i < 2)
          break;
        size_t tlen = (static_cast<uint8_t>(in[i]) << 8) | static_cast<uint8_t>(in[i + 1]);
        size_t header = 2 + tlen + (((first >> 1) & 0x03) > 0 ? 2 : 0);
        if (header > len)
          return false;
        if (in.size() - i < header)
          break;
        dropping = len - header;
        ok = handle(first, in.data() + i, header);
        dropping = 0;
        if (!ok) {
          std::lock_guard<std::mutex> g(mtx);
          ++st.protocol_errors;
        }
        pos = i + header;
        skipping = len - header;
        continue;
      }
      if (in.size() - i < len)
        break;
      ok = handle(static_cast<uint8_t>(in[pos]), in.data() + i, len);
      if (!ok) {
        std::lock_guard<std::mutex> g(mtx);
        ++st.protocol_errors;
      }
      pos = i + len;
    }
    in.erase(0, pos);
    return ok;
  }

  void disconnected() {
    bool was;
    {
      std::lock_guard<std::mutex> g(mtx);
      was = is_connected;
      is_connected = false;
      pending_subacks = 0;
      clear_inbound(); // the broker re-delivers what we did not acknowledge
      out_buf.clear();
    }
    std::vector<std::pair<std::function<void(bool)>, bool>> finished;
    {
      std::lock_guard<std::mutex> g(mtx);
      finished.swap(qos0_done);
    }
    for (auto& [f, ok] : finished)
      if (f)
        f(false);
    if (was && on_connection)
      on_connection(false);
  }

  void run() {
    // A write to a socket the broker closed must fail with EPIPE, not kill the process
    // (OpenSSL writes without MSG_NOSIGNAL). The signal stays pending in this thread only.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    int64_t backoff = opts.reconnect_min_ms;
    while (!stopping.load()) {
      connect_failure why = connect_failure::unreachable;
      std::string error;
      auto t = transport::open(opts.host, opts.port, opts.tls, stopping, why, error);
      bool ok = t && handshake(*t, why, error);
      if (!ok) {
        t.reset();
        if (stopping.load())
          break;
        {
          std::lock_guard<std::mutex> g(mtx);
          ++st.connect_failures;
          st.last_connect_error = error;
        }
        if (on_connect_failure)
          on_connect_failure(why, error);
        if (!pause(backoff))
          break;
        backoff = std::min(backoff * 2, opts.reconnect_max_ms);
        continue;
      }
      backoff = opts.reconnect_min_ms;
      connected_cv.notify_all();
      if (on_connection)
        on_connection(true);
      session(*t);
      t.reset();
      disconnected();
      if (!stopping.load() && !pause(backoff))
        break;
    }
  }
};

client::client(client_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

client::~client() { stop(); }

void client::on_message(std::function<void(const message&)> handler) {
  impl_->on_message = std::move(handler);
}

void client::on_connection(std::function<void(bool)> handler) {
  impl_->on_connection = std::move(handler);
}

void client::on_connect_failure(std::function<void(connect_failure, const std::string&)> handler) {
  impl_->on_connect_failure = std::move(handler);
}

void client::subscribe(std::string filter, uint8_t qos) {
  std::lock_guard<std::mutex> g(impl_->mtx);
  if (impl_->is_connected) {
    std::string body;
    put_u16(body, impl_->take_pid_for_control());
    put_str(body, filter);
    body.push_back(static_cast<char>(std::min<uint8_t>(qos, 1)));
    put_packet(impl_->out_buf, subscribe_type, body);
    ++impl_->pending_subacks;
    impl_->wake();
  }
  impl_->subscriptions.emplace_back(std::move(filter), qos);
}

void client::start() {
  if (impl_->started)
    return;
  impl_->started = true;
  impl_->stopping = false;
  impl_->io = std::thread([this] { impl_->run(); });
}

void client::stop() {
  if (!impl_->started)
    return;
  {
    std::lock_guard<std::mutex> g(impl_->mtx);
    impl_->stopping = true;
  }
  impl_->room_cv.notify_all();
  impl_->wake();
  if (impl_->io.joinable())
    impl_->io.join();
  impl_->started = false;
  std::vector<std::function<void(bool)>> failed;
  {
    std::lock_guard<std::mutex> g(impl_->mtx);
    for (auto& [pid, p] : impl_->out_pending)
      failed.push_back(std::move(p.second.done));
    impl_->out_pending.clear();
    impl_->out_order.clear();
  }
  for (auto& f : failed)
    if (f)
      f(false);
}

void client::ack(uint16_t packet_id) {
  std::lock_guard<std::mutex> g(impl_->mtx);
  auto& q = impl_->inbound;
  auto it = impl_->inbound_unacked.find(packet_id);
  if (it == impl_->inbound_unacked.end())
    return; // from an earlier connection (the broker re-delivers it), or acked already
  q[it->second - impl_->inbound_front].acked = true;
  impl_->inbound_unacked.erase(it);
  std::string acks;
  while (!q.empty() && q.front().acked) {
    acks += puback_packet(q.front().pid);
    ++impl_->st.acks_sent;
    q.pop_front();
    ++impl_->inbound_front;
  }
  if (!acks.empty())
    impl_->send_later(acks);
}

void client::publish(std::string topic, std::string payload, uint8_t qos, bool retain,
                     std::function<void(bool ok)> done) {
  std::unique_lock<std::mutex> g(impl_->mtx);
  if (qos == 0) {
    if (!impl_->is_connected) {
      g.unlock();
      if (done)
        done(false);
      return;
    }
    ++impl_->st.published;
    impl_->qos0_done.emplace_back(std::move(done), true);
    impl_->send_later(publish_packet(topic, payload, 0, retain, false, 0));
    return;
  }
  // Packet ids are 16 bits: beyond max_unacked, wait for acknowledgements (on the I/O thread
  // waiting would block the acknowledgements themselves, so the message is refused instead).
  if (impl_->out_pending.size() >= impl::max_unacked) {
    if (std::this_thread::get_id() == impl_->io.get_id()) {
      g.unlock();
      if (done)
        done(false);
      return;
    }
    impl_->room_cv.wait(g, [&] {
      return impl_->out_pending.size() < impl::max_unacked || impl_->stopping.load();
    });
    if (impl_->stopping.load()) {
      g.unlock();
      if (done)
        done(false);
      return;
    }
  }
  uint16_t pid = impl_->take_pid();
  uint64_t order = impl_->out_seq++;
  bool sent = impl_->is_connected;
  if (sent)
    impl_->send_later(publish_packet(topic, payload, 1, retain, false, pid));
  ++impl_->st.published;
  impl_->out_order.emplace(order, pid);
  impl_->out_pending.emplace(
    pid, std::make_pair(order, outgoing{std::move(topic), std::move(payload), retain, sent,
                                        std::move(done)}));
}

bool client::connected() const {
  std::lock_guard<std::mutex> g(impl_->mtx);
  return impl_->is_connected;
}

bool client::wait_connected(int64_t timeout_ms) const {
  std::unique_lock<std::mutex> g(impl_->mtx);
  return impl_->connected_cv.wait_for(g, std::chrono::milliseconds(timeout_ms),
                                      [&] { return impl_->is_connected && impl_->pending_subacks == 0; });
}

size_t client::pending_publishes() const {
  std::lock_guard<std::mutex> g(impl_->mtx);
  return impl_->out_pending.size();
}

client_stats client::stats() const {
  std::lock_guard<std::mutex> g(impl_->mtx);
  return impl_->st;
}

caf::expected<client_options> options_for(const runtime::node_config::mqtt_settings& s) {
  client_options o;
  o.host = s.host;
  o.port = s.port;
  o.client_id = s.client_id;
  o.clean_session = false;
  o.keep_alive_s = s.keep_alive_s;
  o.username = s.username;
  o.password = s.password;
  if (s.tls.enabled) {
    auto tls = make_tls_context(s.tls, "mqtt.tls");
    if (!tls)
      return std::move(tls.error());
    o.tls = std::move(*tls);
  }
  return o;
}

void report_connect_failures(client& c, std::string prefix,
                             std::function<void(connect_failure)> count) {
  struct last_line {
    std::string text;
    clock::time_point at;
  };
  auto last = std::make_shared<last_line>();
  c.on_connect_failure([prefix = std::move(prefix), count = std::move(count),
                        last](connect_failure why, const std::string& message) {
    if (count)
      count(why);
    auto now = clock::now();
    if (message == last->text && now - last->at < std::chrono::minutes(1))
      return;
    last->text = message;
    last->at = now;
    std::fprintf(stderr, "%s: %s (%s)\n", prefix.c_str(), message.c_str(), to_string(why));
  });
}

} // namespace twinrt::adapters::mqtt
