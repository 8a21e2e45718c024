#include "ack_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace twinrt::crash_loop {

namespace {

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v); // reads back to the same double
  return buf;
}

} // namespace

result<std::unique_ptr<ack_log>> ack_log::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return result<std::unique_ptr<ack_log>>::fail("cannot open " + path + ": "
                                                  + std::strerror(errno));
  return {std::unique_ptr<ack_log>(new ack_log(path, fd)), ""};
}

ack_log::~ack_log() {
  if (fd_ >= 0)
    ::close(fd_);
}

std::string ack_log::append(const std::string& line) {
  std::string rec = line + "\n";
  const char* p = rec.data();
  size_t left = rec.size();
  while (left > 0) {
    auto n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return "write " + path_ + ": " + std::strerror(errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd_) != 0)
    return "fsync " + path_ + ": " + std::strerror(errno);
  return "";
}

std::string ack_log::append_twin(const std::string& id, const std::string& kind,
                                 const std::string& parent) {
  return append("twin " + id + " " + kind + " " + (parent.empty() ? "-" : parent));
}

std::string ack_log::append_batch(const batch& b) {
  std::string line = "batch " + (b.empty() ? std::string("-") : b.front().source) + " "
                     + std::to_string(b.size());
  for (auto& s : b)
    line += " " + s.twin + " " + s.channel + " " + std::to_string(s.ts_ms) + " " + number(s.value)
            + " " + std::to_string(s.seq);
  return append(line);
}

std::string ack_log::append_reparent(const std::string& id, const std::string& parent) {
  return append("reparent " + id + " " + parent);
}

std::string ack_log::append_model(const std::string& kind, uint32_t version) {
  return append("model " + kind + " " + std::to_string(version));
}

result<expectations> ack_log::read(const std::string& path) {
  using out_type = result<expectations>;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return out_type::fail("cannot read " + path + ": " + std::strerror(errno));
  std::stringstream whole;
  whole << in.rdbuf();
  std::string text = whole.str();
  expectations e;
  size_t line_no = 0;
  size_t at = 0;
  for (auto nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', at)) {
    std::istringstream line(text.substr(at, nl - at));
    at = nl + 1;
    ++line_no;
    auto bad = [&](const std::string& why) {
      return out_type::fail(path + ":" + std::to_string(line_no) + ": " + why);
    };
    std::string type;
    line >> type;
    if (type == "twin") {
      std::string id, kind, parent;
      if (!(line >> id >> kind >> parent))
        return bad("a twin record needs ID KIND PARENT");
      e.twins[id] = {kind, parent == "-" ? "" : parent};
    } else if (type == "batch") {
      std::string source;
      size_t n = 0;
      if (!(line >> source >> n))
        return bad("a batch record needs SOURCE N");
      batch b;
      for (size_t i = 0; i < n; ++i) {
        sample s;
        s.source = source;
        std::string value;
        if (!(line >> s.twin >> s.channel >> s.ts_ms >> value >> s.seq))
          return bad("sample " + std::to_string(i) + " of " + std::to_string(n)
                     + " is incomplete");
        s.value = std::strtod(value.c_str(), nullptr);
        e.history[{s.twin, s.channel}].push_back({s.ts_ms, s.value});
        b.push_back(std::move(s));
      }
      e.samples += n;
      ++e.batches;
      e.last_batch = std::move(b);
    } else if (type == "reparent") {
      std::string id, parent;
      if (!(line >> id >> parent))
        return bad("a reparent record needs ID PARENT");
      auto t = e.twins.find(id);
      if (t == e.twins.end())
        return bad("reparent of " + id + ", which no record created");
      t->second.parent = parent;
    } else if (type == "model") {
      std::string kind;
      uint32_t version = 0;
      if (!(line >> kind >> version))
        return bad("a model record needs KIND VERSION");
      e.model_versions[kind] = version;
    } else {
      return bad("unknown record '" + type + "'");
    }
  }
  return {std::move(e), ""};
}

} // namespace twinrt::crash_loop
