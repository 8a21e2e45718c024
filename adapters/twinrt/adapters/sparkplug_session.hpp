#pragma once

// What a Sparkplug B host application keeps per edge node (births, aliases,
// bdSeq, seq), and the rules that map edge nodes and devices to twins. Plain
// classes without sockets or a node; sparkplug_adapter.hpp drives them.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "twinrt/adapters/sparkplug.hpp"
#include "twinrt/runtime/config.hpp"

namespace twinrt::adapters::sparkplug {

/// One refused input: why, and a message naming it.
struct refusal {
  reason why = reason::malformed;
  std::string message;
};

/// A numeric metric value the edge node reported (birth or data).
struct metric_update {
  std::string device; // empty: the edge node itself
  std::string metric; // the metric's name as declared in the birth
  double value = 0;
  int64_t ts_ms = 0;  // metric timestamp, else payload timestamp, else arrival
};

/// What one message means for the twins.
struct outcome {
  std::vector<std::string> born;  // "" = the edge node, else a device id
  std::vector<metric_update> updates;
  std::vector<std::string> died;  // NDEATH: "" then every device that was born
  bool rebirth = false;           // ask the edge node for its births (NCMD) now
  std::vector<refusal> refused;
  uint32_t ignored = 0;           // null, non-numeric and protocol metrics
};

/// The host-application side of one edge node (spBv1.0/{group}/+/{node}/#),
/// following Sparkplug 3.0:
/// - NBIRTH starts a session: seq restarts from the birth's, the node's
///   metric declarations (name, alias, datatype) and bdSeq are kept, device
///   sessions end (their DBIRTHs follow).
/// - NDATA, DBIRTH, DDATA and DDEATH must carry seq = previous + 1 (mod 256);
///   a gap refuses the message, ends the session and asks for a rebirth.
/// - Data from an edge node or device without a birth is refused and asks for
///   a rebirth. Rebirth requests are sent at most once per
///   `rebirth_interval_ms` per edge node.
/// - NDEATH whose bdSeq is not the birth's is an old session's will: ignored.
/// - NCMD, DCMD and STATE change nothing.
/// Not thread-safe: one owner feeds it messages in arrival order.
class edge_node_session {
public:
  edge_node_session(std::string group, std::string edge_node, int64_t rebirth_interval_ms);

  /// Applies one message of this edge node (`device` empty for node messages).
  outcome handle(message_type type, const std::string& device, const payload& p,
                 int64_t now_ms);

  bool born() const { return born_; }
  bool device_born(const std::string& device) const;
  /// Devices born in the current session.
  std::vector<std::string> devices() const;

private:
  struct declaration {
    std::string name;
    uint32_t datatype = 0;
  };
  struct declarations {
    std::map<uint64_t, declaration> by_alias;
    std::map<std::string, uint32_t> by_name; // name -> datatype
  };

  std::string describe(const std::string& device) const;
  void declare(declarations& into, const std::string& device, const payload& p,
               int64_t now_ms, outcome& out);
  void report(const declarations& from, const std::string& device, const payload& p,
              int64_t now_ms, outcome& out, bool birth);
  bool check_seq(message_type type, const std::string& device, const payload& p,
                 int64_t now_ms, outcome& out);
  void ask_rebirth(int64_t now_ms, outcome& out);

  std::string group_, edge_node_;
  int64_t rebirth_interval_ms_;
  bool born_ = false;
  uint8_t seq_ = 0;
  std::optional<uint64_t> bd_seq_;
  declarations node_;
  std::map<std::string, declarations> devices_; // born in the current session
  std::set<std::string> alive_; // born and not dead, across sessions: NDEATH ends them
  std::optional<int64_t> last_rebirth_ms_;
};

/// Where an edge node or device lives among the twins.
struct twin_target {
  std::string id;
  std::string kind;
  std::string parent; // empty: a root
  const runtime::node_config::sparkplug_rule* rule = nullptr;
};

/// The [[sparkplug.devices]] rules. The first rule whose group, node and
/// device patterns match decides; patterns are globs (`*`, `?`, `[...]`). A
/// device pattern "" matches the edge node itself (NBIRTH/NDATA metrics),
/// any other pattern only devices. `{group}`, `{node}` and `{device}` in the
/// twin and parent patterns are replaced by the message's ids.
class mapping {
public:
  explicit mapping(std::vector<runtime::node_config::sparkplug_rule> rules);

  /// The twin of an edge node (`device` empty) or device; nullopt when no
  /// rule matches.
  std::optional<twin_target> find(const std::string& group, const std::string& edge_node,
                                   const std::string& device) const;

  /// The channel a metric feeds: the rule's rename, else the metric name.
  static std::string channel(const twin_target& t, const std::string& metric);

private:
  std::vector<runtime::node_config::sparkplug_rule> rules_;
};

} // namespace twinrt::adapters::sparkplug
