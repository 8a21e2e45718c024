#pragma once

// The query unit: which twins match a query, in which order, one page at a
// time, without reading any twin's stored state; and history downsampling.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/twins/twin_state.hpp"

namespace twinrt::runtime {

/// A query as a caller asks it, texts not yet parsed.
struct query_request {
  std::string subtree;                       // a twin and all below it in the rollup tree; "" = all
  std::string kind;                          // "" = any
  std::vector<twins::health_status> health;  // empty = any
  std::string where;                         // twins::predicate text; "" = all
  std::string sort_by;                       // "" or "id": by id; else a name value_of() reads
  bool descending = false;
  uint32_t limit = 0;                        // page size; 0 = default_page
  std::string page_token;                    // a page's next_page_token; "" = first page

  static constexpr uint32_t default_page = 100;
  static constexpr uint32_t max_page = 1000;
};

/// One twin of a page: which one, and the state version the index matched.
struct query_hit {
  std::string id;
  uint32_t number = 0;  // storage number (twin_meta::number)
  uint64_t version = 0; // twin_state::version when it matched
};

/// One page of an answer, in order: by the sort value (ascending or
/// descending; twins without the value last, ties by id ascending), or by id.
struct query_page {
  std::vector<query_hit> hits;
  size_t total = 0;            // twins that match, on every page
  std::string next_page_token; // empty: this is the last page
};

/// What queries filter and sort on, for every twin of the node, passivated
/// or not: its place in the rollup tree, its kind, health, state version and
/// every value twins::value_of() reads (twins::visit_values()). Answers a
/// query by scanning the candidates of the asked kind (all kinds when none)
/// in memory, keeping the page in a bounded heap.
///
/// Values are kept in columns per kind and name, in chunks of twins; the
/// names are interned. Thread-safe: queries run side by side; update() (from
/// twin actors) runs beside queries, locking one chunk at a time; insert(),
/// erase(), reparent() and load() wait for running queries.
///
/// Paging is by position, not offset: a page token names the last twin of a
/// page (`i:ID` in id order, `v:VALUE:ID` or `n:ID` when sorted by a value)
/// and the next page starts after it, so twins created or deleted between
/// two pages shift nothing.
class query_index {
public:
  query_index();
  ~query_index();
  query_index(const query_index&) = delete;
  query_index& operator=(const query_index&) = delete;

  /// Fills the index with twins in any order (at start-up); their values
  /// follow through update(). A parent missing from `metas` makes its
  /// children roots here.
  void load(const std::vector<twin_meta>& metas);

  /// Adds a twin (its parent, if any, first) with its first state; an id
  /// already present is replaced.
  void insert(const twin_meta& m, const twins::twin_state& st);

  /// Removes a twin; nothing when it is not there.
  void erase(const std::string& id);

  /// Moves `id` under `new_parent` ("" = root); its subtree moves with it.
  void reparent(const std::string& id, const std::string& new_parent);

  /// Records the twin's state: health, version and every value. Ignored when
  /// `id` is not indexed or is indexed under another number (an actor of a
  /// deleted twin that the new twin of the same id replaced).
  void update(const std::string& id, uint32_t number, const twins::twin_state& st);

  /// The page of twins that match `q`. Fails with errc::bad_request naming
  /// the input: a bad predicate (twins::predicate::parse's message), "page
  /// size 5000 is over the limit of 1000", "bad page token 'abc'". A subtree
  /// or kind that does not exist matches nothing.
  caf::expected<query_page> run(const query_request& q) const;

  /// Twins indexed.
  size_t size() const;

  /// Bytes the index holds (rows, id map, chunks, names), counted from its
  /// structures' sizes and capacities; the allocator's own overhead aside.
  size_t memory_bytes() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

// -- history -----------------------------------------------------------------------

/// A read of one channel's history.
struct history_request {
  std::string id;
  std::string channel;
  int64_t from_ms = 0;
  int64_t to_ms = 0;   // exclusive; 0 = no end
  int64_t step_ms = 0; // 0 = raw points; else one point per step
  uint32_t limit = 0;  // points answered at most; 0 = default_points

  static constexpr uint32_t default_points = 10'000;
  static constexpr uint32_t max_points = 100'000;
  /// Raw points a downsampled read looks at, at most.
  static constexpr size_t max_raw_points = 10'000'000;
};

/// The request with its defaults filled in (to_ms, limit), or errc::bad_request:
/// "limit 200000 is over the limit of 100000 points", "bad time range: from 5
/// to 1 step 0".
caf::expected<history_request> checked(history_request r);

/// One point of a history answer: a raw point (count 1), or a step's
/// summary.
struct history_step {
  int64_t ts_ms = 0; // the point's time, or the step's start
  double mean = 0, min = 0, max = 0, last = 0;
  uint32_t count = 0;
  uint32_t model_version = 0; // of the step's last point
};

/// `points` (oldest first) as they are (step_ms 0), or one summary per step
/// that holds any: steps start on multiples of step_ms (round minutes for 1
/// min, as Prometheus and Grafana place them), so the first may start before
/// the first point. Steps without points are left out. At most `limit`.
std::vector<history_step> downsample(const std::vector<history_point>& points, int64_t step_ms,
                                     size_t limit);

} // namespace twinrt::runtime
