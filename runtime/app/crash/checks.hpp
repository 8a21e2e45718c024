#pragma once

// What the crash loop checks after a restart, from the node's answers over
// RPC and the loop's own log (ack_log.hpp).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ack_log.hpp"
#include "node_client.hpp"

namespace twinrt::crash_loop {

/// What the checks found, by what it means.
struct findings {
  uint64_t lost = 0;       // acknowledged samples missing from the history
  uint64_t duplicated = 0; // samples stored or applied more than once
  uint64_t unexpected = 0; // history points no acknowledged batch had (or with another value)
  uint64_t rollup = 0;     // leaves that do not hold what the log says; parents not the fold of their children
  uint64_t lost_ops = 0;   // acknowledged reparents or model loads not in force
  std::vector<std::string> details; // the first 20, for the report

  bool clean() const { return lost + duplicated + unexpected + rollup + lost_ops == 0; }
  void note(uint64_t& counter, uint64_t n, std::string what);
};

/// What the checks need to know of the checker's own tree and models.
struct tree_facts {
  std::string root;                          // its rollup holds the total stock
  std::set<std::string> folding_kinds;       // kinds whose rollup is the fold of their children alone
  std::string stock_kind;                    // the kind that keeps stock from movements
  std::map<std::string, int> movement_sign;  // "receipt" -> +1, "pick" -> -1
};

/// Every acknowledged sample is in its channel's history once, with its
/// value, and nothing else is there. Adds to `f`; returns "" or, when a call
/// failed, why the check could not be made.
std::string check_history(node_client& node, const expectations& e, findings& f);

struct problem {
  uint64_t findings::*counter; // what it counts as
  std::string text;
};

struct state_problems {
  /// Final once the node answers: leaves (stock, latest values) against the
  /// log, parents of twins, model versions in force.
  std::vector<problem> settled;
  /// Parents that are not the fold of their children's rollups as the node
  /// reports them now; these converge once ingest stops, so a caller waits.
  std::vector<problem> folds;
};

/// Reads every twin of the log and the models in force once, and compares.
/// Fails with the reason when a call failed.
result<state_problems> check_state(node_client& node, const expectations& e, const tree_facts& t);

} // namespace twinrt::crash_loop
