#include "twinrt/cluster/errc.hpp"

#include "twinrt/runtime/errc.hpp"

namespace twinrt::cluster {

const char* to_string(errc x) {
  switch (x) {
    case errc::none:
      return "none";
    case errc::unreachable:
      return "etcd unreachable";
    case errc::refused:
      return "refused by etcd";
    case errc::conflict:
      return "conflict";
    case errc::lease_expired:
      return "lease expired";
    case errc::bad_reply:
      return "bad reply";
    case errc::compacted:
      return "compacted";
    case errc::bad_argument:
      return "bad argument";
  }
  return "unknown";
}

errc code_of(const caf::error& e) {
  if (!e || e.category() != errc_category)
    return errc::none;
  return static_cast<errc>(e.code());
}

std::string describe(const caf::error& e) {
  if (!e || e.category() != errc_category)
    return runtime::describe(e);
  std::string what;
  if (e.context().match_elements<std::string>())
    what = e.context().get_as<std::string>(0);
  auto code = to_string(static_cast<errc>(e.code()));
  return what.empty() ? std::string{code} : std::string{code} + ": " + what;
}

} // namespace twinrt::cluster
