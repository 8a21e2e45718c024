#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "twinrt/runtime/change_feed.hpp"
#include "twinrt/runtime/config.hpp"
#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/events.hpp"
#include "twinrt/runtime/probe.hpp"
#include "twinrt/runtime/query.hpp"
#include "twinrt/runtime/shard_directory.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/runtime/twin_view.hpp"
#include "twinrt/twins/model.hpp"
#include "twinrt/twins/sample.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace caf {
class actor_system;
class actor_system_config;
} // namespace caf

namespace twinrt::runtime {


/// What loading model files did.
struct model_load {
  std::vector<std::string> refused;  // "file:line: reason"; none taken when any
  std::vector<std::string> warnings; // "machine v3: acme/m1 temp_c = 130, outside [0, 120] C"
};

/// A page of a query's answer.
struct query_result {
  std::vector<twin_view> twins;
  size_t total = 0;            // twins that match, on every page
  std::string next_page_token; // empty: this is the last page
};

/// A twin to create.
struct twin_spec {
  std::string id;
  std::string kind;
  std::string parent; // empty for a root
};

/// One twinrt node: the actor system, the shards that own twins, storage and
/// the models in force. All methods are thread-safe and block the calling
/// thread until the answer is there; call them from outside actors (CLI,
/// tests, adapters' own threads). A call that addresses a twin by id fails
/// with errc::unavailable, changing nothing, when the directory knows no
/// owner for the twin's shard right now (never with the local directory):
/// retry later.
class node {
public:
  /// Opens the data directory, loads the models (built-in, `models_dir`, and
  /// those stored), brings every parent's rollup up to date with its
  /// children, starts the shards and, when `metrics_address` is set, serves
  /// Prometheus metrics there (metrics.hpp) and, when `rpc_address` is set
  /// and `serve_rpc` is true, the operator API. Fails with a reason naming
  /// the file, directory or address at fault.
  ///
  /// Every twin is routed through the directory that `make_directory` builds
  /// from the data's virtual shard count and the node's shard actors
  /// (shard_directory.hpp); none: a local_shard_directory, where this node
  /// owns every virtual shard. The virtual shard count is
  /// cfg.virtual_shards for a new data directory and the stored count after
  /// (a different configured count is logged and ignored).
  static caf::expected<std::unique_ptr<node>> start(const node_config& cfg,
                                                    directory_factory make_directory = {},
                                                    bool serve_rpc = true);

  /// Serves the operator API at config().rpc_address, for a node started
  /// with serve_rpc = false (the demo opens it once its simulated history is
  /// stored, so that no answer comes before it). Does nothing when the
  /// address is empty or the API is served already; fails naming the address.
  /// Unlike the other methods, not to be called while another thread calls
  /// serve_rpc() or rpc_address().
  caf::error serve_rpc();

  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Creates twins (parents first within the list). Refuses, without
  /// creating any, an id that exists, an unknown kind, a missing parent or
  /// one whose kind the child's model does not allow.
  caf::error create(const std::vector<twin_spec>& twins);

  /// Moves a twin under another parent; both parents' rollups follow.
  /// Refuses a move that would make a cycle or a parent of the wrong kind.
  caf::error reparent(const std::string& id, const std::string& new_parent);

  /// Ingests one batch. Returns once every accepted sample is durable, with
  /// the refused ones and why. Fails with errc::overloaded when the node has
  /// max_inflight_batches in flight (back off and retry), errc::bad_request
  /// for a batch larger than max_batch_samples.
  caf::expected<twins::ingest_result> ingest(std::vector<twins::sample> batch);

  /// As ingest(), but waits (with growing pauses) while overloaded.
  caf::expected<twins::ingest_result> ingest_waiting(std::vector<twins::sample> batch);

  /// The twin's current state; activates it if it was passivated.
  caf::expected<twin_view> get(const std::string& id);

  /// get() for many twins at once, all asked before any answer is awaited;
  /// one answer per id, in order.
  std::vector<caf::expected<twin_view>> get_many(const std::vector<std::string>& ids);

  /// As get() and ingest(), without blocking the caller: `done` runs later
  /// on an actor thread (or at once for an input refused up front). For
  /// event loops such as the RPC server's.
  void get_async(const std::string& id, std::function<void(caf::expected<twin_view>)> done);
  void ingest_async(std::vector<twins::sample> batch,
                    std::function<void(caf::expected<twins::ingest_result>)> done);

  /// The twin's view, answered on the calling thread without asking its
  /// actor, when a recent get left it in the node's read cache (kept for
  /// live twins while the node serves RPC, up to config().rpc_read_cache of
  /// them; every change of the twin replaces it). nullptr: ask get() or
  /// get_async().
  std::shared_ptr<const twin_view> cached(const std::string& id) const;

  /// True when `id` is `root` or below it in the rollup tree: the twins
  /// whose contributions roll up into `root` ("" holds every twin). Follows
  /// a reparent at once; ids play no part. False for an id that does not
  /// exist (other than `root`).
  bool in_tree(const std::string& root, const std::string& id) const;
  /// in_tree() for many ids under one lock (a batch's twins), one answer per id.
  std::vector<bool> in_tree(const std::string& root,
                            const std::vector<std::string_view>& ids) const;

  /// The twins that match `q`, one page of them: the order, the paging and
  /// the refusals (errc::bad_request) are query_index::run()'s. Each twin
  /// comes with the state the query matched: its stored one, or, while a
  /// newer one is not stored yet, its actor's. Reads no other twin's state
  /// and activates no passivated twin. Blocks: call it off event loops.
  caf::expected<query_result> query(const query_request& q);

  /// The last committed state of every twin in the rollup tree of `subtree`
  /// ("" = all; see in_tree) of `kind` ("" = any), read from storage without
  /// activating anyone, in id order.
  std::vector<twin_view> stored(const std::string& subtree, const std::string& kind);

  /// Deletes a twin that has no children: its state, history and place in
  /// its parent's rollup. Refuses a twin with children.
  caf::error remove(const std::string& id);

  /// Changes from now on, coalesced per twin, of the twins in the rollup
  /// trees of both `subtree` and `scope` ("" = all; see in_tree). Each
  /// change is checked against the tree as it is when the change is made
  /// and again when it is taken: a twin moved out is no longer delivered,
  /// one moved in is delivered from its move on.
  std::shared_ptr<change_subscription> watch(const std::string& subtree,
                                             const std::string& scope = "");

  /// Stored samples of one channel, from_ms <= ts < to_ms, oldest first.
  caf::expected<std::vector<history_point>>
  history(const std::string& id, const std::string& channel, int64_t from_ms,
          int64_t to_ms, size_t limit = 100'000);
  /// The same read as `r` asks it, raw or downsampled (see downsample());
  /// refuses what checked() refuses, an unknown twin or channel as above.
  caf::expected<std::vector<history_step>> history(const history_request& r);

  /// Loads new model versions (from a directory, or from file texts). Live
  /// twins of a changed kind apply the new version at once. Returns the
  /// refusals (file:line: reason; nothing is taken when there is one) and
  /// the warnings about what was taken (twins holding values outside a
  /// range the new version narrowed).
  model_load reload_models(const std::string& dir);
  model_load reload_model_texts(const std::vector<std::pair<std::string, std::string>>& files);

  /// The models in force.
  std::vector<twins::model_set::model_ptr> models() const;
  /// The model in force for `kind`; nullptr when there is none.
  twins::model_set::model_ptr model(const std::string& kind) const;

  /// Every twin's meta data.
  std::vector<twin_meta> twins() const;

  /// How many twins exist (cheap).
  size_t twin_count() const;

  /// Asks every shard to passivate its idle leaf twins now, regardless of
  /// the idle time (used by tests and at shutdown).
  void passivate_all();

  /// Twins in memory right now.
  int64_t active_twins() const;

  /// Where /metrics is served ("HOST:PORT", the port actually bound), empty
  /// when config().metrics_address is empty.
  std::string metrics_address() const;

  /// Where the operator API (schemas/rpc.capnp) is served ("HOST:PORT", the
  /// port actually bound), empty when config().rpc_address is empty.
  std::string rpc_address() const;

  /// Stored alerts of twins in the rollup tree of `subtree` ("" = all, with
  /// those of deleted twins; see in_tree), newest first; `state`
  /// keeps only alerts in that state (raised, acknowledged, or idle for
  /// cleared); nullopt keeps all.
  std::vector<alert_record> alerts(const std::string& subtree,
                                   std::optional<twins::alert_phase> state) const;

  /// Acknowledges the open alert `id` as `by` (the token name) with `note`.
  /// `done` gets the updated record once it and its `*.acknowledged` event
  /// are durable; or errc::unknown_twin ("no alert 12"), errc::conflict
  /// ("alert 12 is cleared"), errc::unavailable (the twin's shard has no
  /// owner now). Does not check access: callers do (see the
  /// alert's twin).
  void ack_alert_async(uint64_t id, const std::string& by, const std::string& note,
                       std::function<void(caf::expected<alert_record>)> done);
  caf::expected<alert_record> ack_alert(uint64_t id, const std::string& by,
                                        const std::string& note);

  /// Adds a sink fed by `routes` (see events.hpp); its thread starts at once
  /// and carries on from its stored cursor.
  void add_event_sink(sink_settings settings, std::unique_ptr<event_sink> sink,
                      std::vector<event_filter> routes);
  /// The sinks' cursors, counts and lag.
  std::vector<sink_status> event_sinks() const;

  runtime_probe& probe();
  const node_config& config() const;
  /// Where this node routes twins (shard_directory.hpp); lives as long as
  /// the node.
  const shard_directory& directory() const;
  storage& store();
  caf::actor_system& system();

private:
  struct impl;
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace twinrt::runtime
