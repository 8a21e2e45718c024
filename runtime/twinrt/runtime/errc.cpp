#include "twinrt/runtime/errc.hpp"

#include <caf/error.hpp>

namespace twinrt::runtime {

const char* to_string(errc x) {
  switch (x) {
    case errc::none:
      return "none";
    case errc::overloaded:
      return "overloaded";
    case errc::unknown_twin:
      return "unknown twin";
    case errc::bad_request:
      return "bad request";
    case errc::conflict:
      return "conflict";
    case errc::storage_failure:
      return "storage failure";
    case errc::bad_model:
      return "bad model";
    case errc::unavailable:
      return "unavailable";
    case errc::corrupt_record:
      return "corrupt record";
    case errc::permission_denied:
      return "permission denied";
  }
  return "unknown";
}

errc code_of(const caf::error& e) {
  if (!e || e.category() != errc_category)
    return errc::none;
  return static_cast<errc>(e.code());
}

std::string describe(const caf::error& e) {
  if (!e)
    return "no error";
  if (e.category() == errc_category) {
    std::string what;
    if (e.context().match_elements<std::string>())
      what = e.context().get_as<std::string>(0);
    return what.empty() ? to_string(static_cast<errc>(e.code())) : what;
  }
  return caf::to_string(e);
}

} // namespace twinrt::runtime
