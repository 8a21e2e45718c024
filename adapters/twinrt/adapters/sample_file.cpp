#include "twinrt/adapters/sample_file.hpp"
#include "twinrt/adapters/strict_json.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace twinrt::adapters {

namespace {

using nlohmann::json;

sample_line bad(std::string why) {
  sample_line out;
  out.what = sample_line::kind::bad;
  out.error = std::move(why);
  return out;
}

template <class T>
bool whole(std::string_view s, T& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

bool real(std::string_view s, double& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

sample_line parse_json(std::string_view line, int64_t now_ms) {
  auto parsed = parse_strict_json(line);
  if (!parsed.refusal.empty())
    return bad(parsed.refusal);
  auto& j = parsed.doc;
  if (!j.is_object())
    return bad("a JSON line must be an object");
  sample_line out;
  auto& s = out.sample;
  auto text = [&](const char* key, std::string& to, bool required) -> std::string {
    auto i = j.find(key);
    if (i == j.end())
      return required ? std::string("missing \"") + key + "\"" : "";
    if (!i->is_string() || i->get_ref<const std::string&>().empty())
      return std::string("\"") + key + "\" must be a non-empty string";
    to = i->get<std::string>();
    return "";
  };
  for (auto err : {text("twin", s.twin, true), text("channel", s.channel, true),
                   text("source", s.source, false)})
    if (!err.empty())
      return bad(err);
  auto v = j.find("value");
  if (v == j.end())
    return bad("missing \"value\"");
  if (!v->is_number())
    return bad("\"value\" must be a number");
  s.value = v->get<double>();
  if (auto ts = j.find("ts"); ts != j.end()) {
    if (!ts->is_number_integer())
      return bad("\"ts\" must be a whole number of milliseconds since the epoch");
    s.ts_ms = ts->get<int64_t>();
    out.has_ts = true;
  } else {
    s.ts_ms = now_ms;
  }
  if (auto seq = j.find("seq"); seq != j.end()) {
    if (!seq->is_number_unsigned())
      return bad("\"seq\" must be a whole number >= 0");
    s.seq = seq->get<uint64_t>();
    out.has_seq = true;
  }
  out.what = sample_line::kind::sample;
  return out;
}

sample_line parse_csv(std::string_view line) {
  std::string_view f[7];
  size_t n = 0;
  size_t start = 0;
  for (;;) {
    auto comma = line.find(',', start);
    if (n == 7)
      return bad("expected twin,channel,ts,value[,source,seq]: too many fields");
    f[n++] = line.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (comma == std::string_view::npos)
      break;
    start = comma + 1;
  }
  if (n >= 1 && f[0] == "twin")
    return {}; // header
  if (n < 4 || n > 6)
    return bad("expected twin,channel,ts,value[,source,seq]");
  sample_line out;
  auto& s = out.sample;
  if (f[0].empty() || f[1].empty())
    return bad("twin and channel must not be empty");
  s.twin = std::string(f[0]);
  s.channel = std::string(f[1]);
  if (!whole(f[2], s.ts_ms))
    return bad("ts '" + std::string(f[2]) + "' is not a whole number of milliseconds");
  out.has_ts = true;
  if (!real(f[3], s.value))
    return bad("value '" + std::string(f[3]) + "' is not a number");
  if (n > 4)
    s.source = std::string(f[4]);
  if (n > 5 && !f[5].empty()) {
    if (!whole(f[5], s.seq))
      return bad("seq '" + std::string(f[5]) + "' is not a whole number >= 0");
    out.has_seq = true;
  }
  out.what = sample_line::kind::sample;
  return out;
}

} // namespace

sample_line parse_sample_line(std::string_view line, int64_t now_ms) {
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  auto first = line.find_first_not_of(" \t");
  if (first == std::string_view::npos || line[first] == '#')
    return {};
  if (line[first] == '{')
    return parse_json(line.substr(first), now_ms);
  return parse_csv(line);
}

sample_file_reader::sample_file_reader(std::string path) : path_(std::move(path)) {}

std::string sample_file_reader::open() {
  in_.open(path_, std::ios::binary);
  if (!in_)
    return "cannot read " + path_ + ": " + std::strerror(errno);
  std::error_code ec;
  size_ = std::filesystem::file_size(path_, ec);
  if (ec)
    return "cannot read " + path_ + ": " + ec.message();
  offset_ = 0;
  line_ = 0;
  return "";
}

std::string sample_file_reader::seek(uint64_t offset, uint64_t line_number) {
  std::error_code ec;
  auto now = std::filesystem::file_size(path_, ec);
  if (ec)
    return "cannot read " + path_ + ": " + ec.message();
  if (offset > now)
    return path_ + " has " + std::to_string(now) + " bytes, fewer than the "
           + std::to_string(offset) + " already replayed: the file was changed";
  size_ = now;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  if (!in_)
    return "cannot seek in " + path_;
  offset_ = offset;
  line_ = line_number;
  return "";
}

bool sample_file_reader::next(line& out, int64_t now_ms) {
  if (!std::getline(in_, buf_))
    return false;
  offset_ += buf_.size() + (in_.eof() ? 0 : 1);
  out.number = ++line_;
  out.end = offset_;
  out.parsed = parse_sample_line(buf_, now_ms);
  return true;
}

sample_file read_sample_file(const std::string& path, int64_t now_ms) {
  sample_file out;
  sample_file_reader r(path);
  if (auto err = r.open(); !err.empty()) {
    out.errors.push_back(err);
    return out;
  }
  sample_file_reader::line l;
  while (r.next(l, now_ms)) {
    if (l.parsed.what == sample_line::kind::bad)
      out.errors.push_back(path + ":" + std::to_string(l.number) + ": " + l.parsed.error);
    else if (l.parsed.what == sample_line::kind::sample) {
      out.samples.push_back(std::move(l.parsed.sample));
      out.lines.push_back(l.number);
    }
  }
  return out;
}

} // namespace twinrt::adapters
