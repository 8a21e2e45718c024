#include "twinrt/cluster/layout.hpp"

#include <cctype>
#include <cstdio>

#include "twinrt/cluster/errc.hpp"

namespace twinrt::cluster {

caf::expected<void> check_name(const std::string& name, const char* what) {
  if (name.empty() || name.size() > 64)
    return make_error(errc::bad_argument, std::string{what} + " must have 1 to 64 bytes, not "
                                            + std::to_string(name.size()));
  for (unsigned char c : name)
    if (!(std::isalnum(c) && c < 0x80) && c != '-' && c != '_' && c != '.') {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      return make_error(errc::bad_argument,
                        std::string{what} + " '" + name.substr(0, 64) + "' has the byte '" + hex
                          + "' (letters, digits, '-', '_' and '.' only)");
    }
  if (name == "." || name == "..")
    return make_error(errc::bad_argument, std::string{what} + " cannot be '" + name + "'");
  return caf::unit;
}

caf::expected<layout> layout::make(const std::string& cluster) {
  if (auto ok = check_name(cluster, "cluster name"); !ok)
    return ok.error();
  layout out;
  out.cluster_ = cluster;
  out.root_ = "/twinrt/" + cluster + "/";
  return out;
}

std::string layout::shard(uint32_t s) const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05u", s);
  return shards() + buf;
}

int64_t layout::shard_of_key(const std::string& key) const {
  auto prefix = shards();
  if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0)
    return -1;
  int64_t v = 0;
  for (size_t i = prefix.size(); i < key.size(); ++i) {
    if (key[i] < '0' || key[i] > '9' || v > 1'000'000)
      return -1;
    v = v * 10 + (key[i] - '0');
  }
  return v;
}

} // namespace twinrt::cluster
