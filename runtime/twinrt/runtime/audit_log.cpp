#include "twinrt/runtime/audit_log.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "twinrt/twins/clock.hpp"

namespace twinrt::runtime {

namespace {

namespace fs = std::filesystem;

constexpr const char* current_name = "audit.log";
constexpr const char* previous_name = "audit.log.1";

std::string sys_error(const std::string& what, const fs::path& p) {
  return what + " " + p.string() + ": " + std::strerror(errno);
}

// Calls `f` with every entry of the file at `p`, oldest first.
template <class F>
void for_each_in(const fs::path& p, F&& f) {
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (auto e = from_json_line(line))
      f(std::move(*e));
}

} // namespace

std::string to_json_line(const audit_entry& e) {
  nlohmann::json j{{"seq", e.seq},       {"ts_ms", e.ts_ms},   {"token", e.token},
                   {"peer", e.peer},     {"action", e.action}, {"target", e.target},
                   {"detail", e.detail}, {"outcome", e.outcome}};
  // Invalid UTF-8 in a twin id or note is written as U+FFFD, not refused.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<audit_entry> from_json_line(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::nullopt;
  if (!j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("ts_ms")
      || !j["ts_ms"].is_number_integer())
    return std::nullopt;
  try {
    audit_entry e;
    e.seq = j.at("seq").get<uint64_t>();
    e.ts_ms = j.at("ts_ms").get<int64_t>();
    e.token = j.at("token").get<std::string>();
    e.peer = j.at("peer").get<std::string>();
    e.action = j.at("action").get<std::string>();
    e.target = j.at("target").get<std::string>();
    e.detail = j.at("detail").get<std::string>();
    e.outcome = j.at("outcome").get<std::string>();
    return e;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

caf::expected<std::unique_ptr<audit_log>>
audit_log::open(const fs::path& dir, size_t max_bytes, size_t max_pending) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(errc::storage_failure,
                      "cannot create the audit log's directory " + dir.string() + ": " + ec.message());
  uint64_t last = 0;
  for (auto name : {previous_name, current_name})
    for_each_in(dir / name, [&](audit_entry e) { last = std::max(last, e.seq); });
  std::unique_ptr<audit_log> log{new audit_log(dir, std::max<size_t>(max_bytes, 1024),
                                               std::max<size_t>(max_pending, 1), last + 1)};
  auto path = dir / current_name;
  log->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log->fd_ < 0)
    return make_error(errc::storage_failure, sys_error("cannot open the audit log", path));
  log->file_bytes_ = fs::file_size(path, ec);
  // A line cut short by a crash would glue onto the next one: end it.
  if (log->file_bytes_ > 0) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(-1, std::ios::end);
    char c = 0;
    if (in.get(c) && c != '\n' && ::write(log->fd_, "\n", 1) == 1)
      ++log->file_bytes_;
  }
  log->writer_ = std::thread([l = log.get()] { l->run(); });
  return log;
}

audit_log::audit_log(fs::path dir, size_t max_bytes, size_t max_pending, uint64_t next_seq)
  : dir_(std::move(dir)), max_bytes_(max_bytes), max_pending_(max_pending), next_seq_(next_seq),
    queued_upto_(next_seq - 1), durable_upto_(next_seq - 1) {}

audit_log::~audit_log() {
  {
    std::lock_guard<std::mutex> g(mtx_);
    stop_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable())
    writer_.join();
  if (fd_ >= 0)
    ::close(fd_);
}

void audit_log::append(audit_entry e) {
  std::unique_lock<std::mutex> g(mtx_);
  written_.wait(g, [&] { return pending_.size() < max_pending_ || !error_.empty() || stop_; });
  ++appended_;
  if (!error_.empty()) {
    ++dropped_;
    return;
  }
  e.seq = next_seq_++;
  if (e.ts_ms == 0)
    e.ts_ms = twins::wall_ms();
  pending_.push_back(to_json_line(e));
  queued_upto_ = e.seq;
  wake_.notify_one();
}

bool audit_log::flush() {
  std::unique_lock<std::mutex> g(mtx_);
  auto target = queued_upto_;
  written_.wait(g, [&] { return durable_upto_ >= target || !error_.empty() || stop_; });
  return error_.empty() && durable_upto_ >= target;
}

std::string audit_log::error() const {
  std::lock_guard<std::mutex> g(mtx_);
  return error_;
}

uint64_t audit_log::appended() const {
  std::lock_guard<std::mutex> g(mtx_);
  return appended_;
}

uint64_t audit_log::dropped() const {
  std::lock_guard<std::mutex> g(mtx_);
  return dropped_;
}

void audit_log::run() {
  std::unique_lock<std::mutex> g(mtx_);
  for (;;) {
    wake_.wait(g, [&] { return !pending_.empty() || stop_; });
    if (pending_.empty() && stop_)
      return;
    std::deque<std::string> lines;
    lines.swap(pending_);
    auto upto = queued_upto_;
    written_.notify_all(); // room for appenders again
    g.unlock();
    bool ok;
    {
      std::lock_guard<std::mutex> files(files_mtx_);
      ok = write_out(lines);
    }
    g.lock();
    if (ok)
      durable_upto_ = upto;
    written_.notify_all();
    if (!ok)
      return; // error_ is set; appends keep queueing nothing durable
  }
}

bool audit_log::write_out(std::deque<std::string>& lines) {
  auto fail = [&](const std::string& why) {
    std::lock_guard<std::mutex> g(mtx_);
    if (error_.empty())
      error_ = why;
    return false;
  };
  for (auto& line : lines) {
    line += '\n';
    if (file_bytes_ > 0 && file_bytes_ + line.size() > max_bytes_ / 2) {
      // Rotate: the current file becomes the previous one (durably), a new
      // current file starts empty.
      if (::fdatasync(fd_) != 0)
        return fail(sys_error("cannot sync the audit log", dir_ / current_name));
      ::close(fd_);
      fd_ = -1;
      std::error_code ec;
      fs::rename(dir_ / current_name, dir_ / previous_name, ec);
      if (ec)
        return fail("cannot rotate the audit log " + (dir_ / current_name).string() + ": "
                    + ec.message());
      fd_ = ::open((dir_ / current_name).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd_ < 0)
        return fail(sys_error("cannot open the audit log", dir_ / current_name));
      int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
      file_bytes_ = 0;
    }
    size_t done = 0;
    while (done < line.size()) {
      auto n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return fail(sys_error("cannot write the audit log", dir_ / current_name));
      done += static_cast<size_t>(n);
    }
    file_bytes_ += line.size();
  }
  if (::fdatasync(fd_) != 0)
    return fail(sys_error("cannot sync the audit log", dir_ / current_name));
  return true;
}

std::vector<audit_entry> audit_log::read(const audit_filter& f) {
  flush(); // what was appended is read back from the files
  std::deque<audit_entry> out;
  auto keep = [&](audit_entry e) {
    if (e.ts_ms < f.since_ms || (!f.token.empty() && e.token != f.token))
      return;
    out.push_back(std::move(e));
    if (out.size() > f.limit)
      out.pop_front();
  };
  std::lock_guard<std::mutex> files(files_mtx_); // no rotation while reading the two files
  for (auto name : {previous_name, current_name})
    for_each_in(dir_ / name, keep);
  return {std::make_move_iterator(out.begin()), std::make_move_iterator(out.end())};
}

} // namespace twinrt::runtime
