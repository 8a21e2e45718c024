#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace twinrt::runtime {

/// What went wrong, classified by what the caller should do next (KJ's
/// failed / overloaded / disconnected).
enum class errc : uint8_t {
  none = 0,
  overloaded,      // back off and retry: ingest is at its bound
  unknown_twin,    // give up: no such twin
  bad_request,     // give up: the request itself is wrong (message says why)
  conflict,        // give up: twin exists, cycle, kind not allowed as parent
  storage_failure, // the node cannot read or write its data directory
  bad_model,       // a model file was refused
  unavailable,     // retry later: no node owns the twin's shard right now (shard_directory.hpp)
  corrupt_record,  // a stored value does not read back as its record: refused, skipped
  permission_denied, // give up: the caller's token does not allow it
};

const char* to_string(errc x);

inline constexpr caf::atom_value errc_category = caf::atom("twinrt");

/// An error of our category whose context is a message naming the input.
inline caf::error make_error(errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), errc_category,
                    caf::make_message(std::move(what))};
}

/// The code of `e` when it is one of ours, errc::none otherwise.
errc code_of(const caf::error& e);

/// "overloaded: ingest has 16 batches in flight" for our errors, CAF's own
/// rendering for the others.
std::string describe(const caf::error& e);

} // namespace twinrt::runtime
