#pragma once

// Edge mode (`twinrt edge`): near the machines, take telemetry from a local
// MQTT broker, keep only what the per-channel deadband and downsampling rules
// let through, buffer it durably in a RocksDB of its own, and forward it in
// batches to a central node over RPC. While the central node is unreachable
// the buffer grows, up to a disk budget beyond which the oldest samples are
// dropped and counted; when the node returns the buffer drains, and each
// sample is applied there once (source = the edge id, seq = its buffer seq).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/runtime/config.hpp"
#include "twinrt/twins/sample.hpp"

namespace rocksdb {
class DB;
} // namespace rocksdb

namespace twinrt::adapters::edge {

/// Deadband and downsampling per (twin, channel), by the first matching
/// [[edge.channels]] rule (twin and channel patterns as fnmatch(3) without
/// flags: '*' matches any text, '/' included). A channel no rule matches is
/// forwarded whole. A rule forwards a sample when it is the channel's first,
/// or when both hold: its value differs from the last forwarded one by more
/// than `deadband` (and, if set, by more than `deadband_percent` of that value
/// in magnitude), and its timestamp is at least `min_interval_ms` after the
/// last forwarded one. A sample older than the last forwarded one is a
/// backfill: it is forwarded and changes nothing. Plain data; one thread.
class sample_filter {
public:
  enum class verdict : uint8_t {
    drop,          // held back by the channel's rule
    forward,       // forwarded; the channel's reference is unchanged
    new_reference, // forwarded, and now the last forwarded of a ruled channel
  };

  explicit sample_filter(std::vector<runtime::node_config::edge_channel_rule> rules);

  verdict pass(const twins::sample& s);

  /// Sets a channel's last forwarded sample, as saved by an earlier run, so
  /// that a restart filters the way an uninterrupted run would.
  void restore(const std::string& twin, const std::string& channel, double value, int64_t ts_ms);

private:
  struct channel_state {
    int rule = -1;        // index in rules_, -1: none matches
    bool seen = false;
    double value = 0;     // last forwarded
    int64_t ts_ms = 0;
  };
  channel_state& state_of(const std::string& twin, const std::string& channel);

  std::vector<runtime::node_config::edge_channel_rule> rules_;
  std::unordered_map<std::string, channel_state> channels_; // twin + '\0' + channel
};

/// A sample in the buffer and its sequence number.
struct buffered {
  uint64_t seq = 0;
  twins::sample sample; // source and seq empty: the forwarder sets them
  std::string corrupt;  // non-empty: the stored record did not decode (why); no sample
};

/// A buffered sample as stored: twin and channel (each a 4-byte length and
/// its bytes), then ts_ms and value (8 bytes each), in host byte order.
std::string encode_buffered(const twins::sample& s);
/// The reverse: a value that is not exactly one such record fails with
/// runtime::errc::corrupt_record saying what is wrong. Never reads outside `bytes`.
caf::expected<twins::sample> decode_buffered(std::string_view bytes);

/// The edge's durable buffer: samples in RocksDB under a strictly increasing
/// sequence number that never goes back, not even after every sample was
/// forwarded and deleted and the edge restarted. The logical size of the
/// queued records (key + value bytes) is kept under a budget by dropping the
/// oldest, counted. Also keeps the edge's marks (what it has seen of each
/// MQTT source, the filter's references), written with the samples. All
/// members are thread-safe.
class sample_buffer {
public:
  /// Opens (creating) the buffer in `dir`. Empty on failure, with `error` saying why.
  static std::unique_ptr<sample_buffer> open(const std::string& dir, uint64_t budget_bytes,
                                             std::string& error);
  ~sample_buffer();
  sample_buffer(const sample_buffer&) = delete;
  sample_buffer& operator=(const sample_buffer&) = delete;

  /// Appends `samples` and stores `marks` (the caller's key -> value pairs)
  /// in one synced write: when it returns "" they survive a crash. Drops the
  /// oldest samples first when the budget would be exceeded. Returns why on
  /// failure.
  std::string append(const std::vector<twins::sample>& samples,
                     const std::vector<std::pair<std::string, std::string>>& marks);

  /// Up to `n` of the oldest samples with seq > `after`. A record that does
  /// not decode comes back with `corrupt` set (and takes its place in `n`),
  /// so that the caller removes it with the others.
  std::vector<buffered> oldest(uint64_t after, size_t n) const;

  /// Deletes the samples with seq <= `seq` (forwarded and acknowledged).
  std::string remove_through(uint64_t seq);

  /// Every mark stored by append.
  std::unordered_map<std::string, std::string> marks() const;

  uint64_t queued() const;       // samples in the buffer
  uint64_t queued_bytes() const; // their logical size
  uint64_t dropped() const;      // dropped for the budget, over the buffer's life
  uint64_t budget_bytes() const { return budget_; }

private:
  sample_buffer() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
  uint64_t budget_ = 0;
};

/// What the edge did so far.
struct edge_stats {
  uint64_t messages = 0;     // MQTT messages taken
  uint64_t rejected = 0;     // messages refused (unknown topic, bad payload, oversized)
  uint64_t samples = 0;      // samples in the messages taken
  uint64_t redelivered = 0;  // samples seen before (a broker redelivery), not buffered again
  uint64_t filtered = 0;     // samples held back by deadband or downsampling
  uint64_t buffered = 0;     // samples written to the buffer
  uint64_t forwarded = 0;    // samples the central node acknowledged
  uint64_t refused = 0;      // of those, refused by the central node (unknown twin, range, ...)
  uint64_t already_applied = 0; // of those, applied before (an answer lost when the central node died)
  uint64_t queued = 0;       // samples in the buffer now
  uint64_t queued_bytes = 0;
  uint64_t dropped = 0;      // dropped for the disk budget, over the buffer's life
  uint64_t corrupt = 0;      // buffered records that did not read back: logged, skipped, removed
  bool broker_connected = false; // connected, and every subscription acknowledged
  bool central_connected = false;
};

/// The running edge: the MQTT subscriber, the buffer writer and the forwarder,
/// each on its own thread.
class edge_node {
public:
  /// Starts from cfg.mqtt (broker, routes) and cfg.edge. Empty on failure,
  /// with `error` naming what is wrong.
  static std::unique_ptr<edge_node> start(const runtime::node_config& cfg, std::string& error);
  /// Stops taking messages (unacknowledged ones are re-delivered by the broker
  /// to the next session), writes those taken, stops forwarding.
  ~edge_node();
  edge_node(const edge_node&) = delete;
  edge_node& operator=(const edge_node&) = delete;

  edge_stats stats() const;

private:
  struct impl;
  explicit edge_node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::adapters::edge
