#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace twinrt::cluster {

/// What went wrong talking to the cluster's coordination store (etcd),
/// classified by what the caller should do next.
enum class errc : uint8_t {
  none = 0,
  unreachable,   // retry later: etcd did not answer (connection refused, timeout)
  refused,       // give up: etcd answered with an error (the message has its words)
  conflict,      // re-read and decide again: a compare-and-swap found another revision
  lease_expired, // the lease is gone: whatever was bound to it is gone too
  bad_reply,     // etcd's answer (or a stored value) does not read as expected
  compacted,     // a watch asked for revisions etcd no longer keeps: read again
  bad_argument,  // give up: a name or setting is wrong (the message names it)
};

const char* to_string(errc x);

inline constexpr caf::atom_value errc_category = caf::atom("tw_cluster");

/// An error of the cluster's category whose context names the input.
inline caf::error make_error(errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), errc_category, caf::make_message(std::move(what))};
}

/// The code of `e` when it is one of ours, errc::none otherwise.
errc code_of(const caf::error& e);

/// "conflict: shard 17 has epoch 57, not 42" for our errors, the runtime's
/// rendering for the others.
std::string describe(const caf::error& e);

} // namespace twinrt::cluster
