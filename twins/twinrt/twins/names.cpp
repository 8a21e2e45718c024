#include "twinrt/twins/names.hpp"

#include <cstdio>

namespace twinrt::twins {

namespace {

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
         || c == '_' || c == '.';
}

bool sku_char(char c) {
  return id_char(c) || c == ':' || c == '#';
}

std::string over_limit(const char* what, std::size_t size, std::size_t limit) {
  return std::string(what) + " of " + std::to_string(size) + " bytes is over the limit of "
         + std::to_string(limit);
}

} // namespace

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > max)
    out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::optional<std::string> twin_id_refusal(std::string_view id) {
  if (id.empty())
    return "twin id is empty";
  if (id.size() > max_twin_id_bytes)
    return over_limit("twin id", id.size(), max_twin_id_bytes);
  std::size_t start = 0;
  while (start <= id.size()) {
    auto end = id.find('/', start);
    if (end == std::string_view::npos)
      end = id.size();
    auto part = id.substr(start, end - start);
    if (part.empty())
      return "twin id '" + printable(id) + "' has an empty part (a leading, trailing or double '/')";
    if (part == "." || part == "..")
      return "twin id '" + printable(id) + "' has a '" + std::string(part)
             + "' part (parts are names, not paths)";
    for (char c : part)
      if (!id_char(c))
        return "twin id '" + printable(id) + "' has the byte '" + printable({&c, 1})
               + "': parts are letters, digits, - _ and . joined by /";
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> channel_refusal(std::string_view channel) {
  auto slash = channel.find('/');
  auto name = channel.substr(0, slash);
  if (name.empty())
    return "channel name is empty";
  if (name.size() > max_channel_bytes)
    return over_limit("channel name", name.size(), max_channel_bytes);
  for (char c : name)
    if (!id_char(c) && c != '$')
      return "channel '" + printable(channel) + "' has the byte '" + printable({&c, 1})
             + "' in its name";
  if (slash == std::string_view::npos)
    return std::nullopt;
  auto sku = channel.substr(slash + 1); // an empty one is the model's to refuse
  if (sku.size() > max_sku_bytes)
    return over_limit("SKU", sku.size(), max_sku_bytes);
  for (char c : sku)
    if (!sku_char(c) && c != '/') // a further '/' is the model's to refuse
      return "SKU '" + printable(sku) + "' has the byte '" + printable({&c, 1})
             + "': SKUs are letters, digits and - _ . : #";
  return std::nullopt;
}

} // namespace twinrt::twins
