#include "twinrt/adapters/replay.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "twinrt/adapters/rpc_ingest.hpp"
#include "twinrt/adapters/sample_file.hpp"
#include "twinrt/twins/clock.hpp"

namespace twinrt::adapters {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;
using nlohmann::json;

using twins::wall_ms;

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

// How far the node has acknowledged a file, and the totals up to there.
struct replay_state {
  std::string source;
  uint64_t offset = 0; // bytes of the file acknowledged
  uint64_t line = 0;   // lines of the file acknowledged
  uint64_t accepted = 0, duplicates = 0, rejected = 0, bad_lines = 0, overtaken = 0;
  bool complete = false;
};

// Returns "" when the state was read or there is none (found = false).
std::string load_state(const std::string& path, replay_state& st, bool& found) {
  found = false;
  std::ifstream in(path);
  if (!in)
    return "";
  auto j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return "state file " + path + " is not valid JSON; --restart starts over";
  try {
    st.source = j.at("source").get<std::string>();
    st.offset = j.at("offset").get<uint64_t>();
    st.line = j.at("line").get<uint64_t>();
    st.accepted = j.at("accepted").get<uint64_t>();
    st.duplicates = j.at("duplicates").get<uint64_t>();
    st.rejected = j.at("rejected").get<uint64_t>();
    st.bad_lines = j.at("bad_lines").get<uint64_t>();
    st.complete = j.at("complete").get<bool>();
    st.overtaken = j.value("overtaken", uint64_t{0});
  } catch (const json::exception& e) {
    return "state file " + path + " is incomplete (" + e.what() + "); --restart starts over";
  }
  found = true;
  return "";
}

// Written to a temporary file and renamed over the old one, so a kill leaves
// either the old or the new state.
std::string save_state(const std::string& path, const std::string& file, const replay_state& st) {
  json j{{"file", file},           {"source", st.source},         {"offset", st.offset},
         {"line", st.line},        {"accepted", st.accepted},     {"duplicates", st.duplicates},
         {"rejected", st.rejected}, {"bad_lines", st.bad_lines}, {"complete", st.complete},
         {"overtaken", st.overtaken}};
  auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out.flush())
      return "cannot write state file " + tmp;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return "cannot write state file " + path + ": " + ec.message();
  return "";
}

std::string human(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof(buf), "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.2fM", v / 1e6);
  else if (v >= 1e4)
    std::snprintf(buf, sizeof(buf), "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

std::string clock_text(double s) {
  if (s < 0 || s > 1e7)
    return "?";
  auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", t / 60, t % 60);
  return buf;
}

// One batch: the lines it covers and, once answered, the node's answer.
struct batch {
  uint64_t end_offset = 0, end_line = 0;
  uint64_t bad_lines = 0;
  std::vector<twins::sample> samples;
  std::vector<uint64_t> lines; // line number of each sample
  std::optional<batch_outcome> result;
  kj::Maybe<kj::ForkedPromise<void>> task; // done when `result` is set
};

class replayer {
public:
  replayer(const replay_options& opts, std::FILE* progress)
    : o_(opts), out_(progress), reader_(opts.file), rpc_(opts.address, opts.token, opts.transport) {}

  replay_report run();

private:
  replay_report finish(std::string error);
  replay_report totals() const;
  bool fill();
  void accept(batch& b);
  void rewind();
  bool reconnect(std::string& error);
  void wait_event(int64_t max_ms);
  void note(const std::string& text);
  void report_progress(bool force);
  bool stopping() { return o_.stop && o_.stop(); }

  const replay_options& o_;
  std::FILE* out_;
  sample_file_reader reader_;
  rpc_ingest rpc_;
  std::string state_path_, source_;
  replay_state st_;
  std::deque<std::unique_ptr<batch>> window_;
  size_t window_limit_ = 1;
  size_t streak_ = 0;
  std::optional<sample_file_reader::line> held_; // read, not yet due (with --speed)
  bool eof_ = false;
  uint64_t read_end_offset_ = 0, read_end_line_ = 0; // end of the last batch made
  uint64_t bad_through_ = 0;      // last line reported as bad (lines are read again after a rewind)
  uint64_t rejected_through_ = 0; // last line reported as refused by the node
  // Lines of the last batch refused whole as overloaded: none of them was applied.
  uint64_t refused_from_ = 1, refused_to_ = 0;
  uint64_t printed_ = 0;
  // --speed: a sample with timestamp ts is due at wall_base_ + (ts - ts_base_) / speed.
  std::optional<int64_t> ts_base_;
  steady::time_point wall_base_;
  // This run.
  steady::time_point started_ = steady::now();
  steady::time_point last_save_ = steady::now(), last_report_ = steady::now();
  uint64_t start_offset_ = 0, acked_this_run_ = 0;
  bool bar_shown_ = false;
};

replay_report replayer::run() {
  state_path_ = o_.state_path.empty() ? o_.file + ".replay-state" : o_.state_path;
  source_ = o_.source.empty() ? replay_source(o_.file) : o_.source;
  window_limit_ = std::max<size_t>(1, o_.inflight);
  if (auto err = reader_.open(); !err.empty())
    return finish(err);
  bool found = false;
  if (!o_.restart) {
    if (auto err = load_state(state_path_, st_, found); !err.empty())
      return finish(err);
  }
  if (found && st_.source != source_)
    return finish("state file " + state_path_ + " belongs to a replay as source '" + st_.source
                  + "', not '" + source_ + "'; --restart starts over");
  if (found && st_.complete) {
    note(o_.file + " was replayed completely already (state in " + state_path_
         + "); --restart replays it again");
    return totals();
  }
  if (!found)
    st_ = replay_state{source_};
  else
    note("continuing " + o_.file + " after line " + std::to_string(st_.line) + " ("
         + human(static_cast<double>(st_.offset)) + " bytes already replayed)");
  bad_through_ = rejected_through_ = st_.line;
  start_offset_ = st_.offset;
  if (auto err = reader_.seek(st_.offset, st_.line); !err.empty())
    return finish(err + "; --restart starts over");
  read_end_offset_ = st_.offset;
  read_end_line_ = st_.line;
  if (auto err = rpc_.connect(); !err.empty())
    return finish(err);

  int64_t backoff_ms = 50;
  for (;;) {
    bool stop = stopping();
    while (!stop && !eof_ && window_.size() < window_limit_ && fill()) {
    }
    bool progressed = false;
    while (!window_.empty() && window_.front()->result) {
      auto& b = *window_.front();
      auto status = b.result->status;
      if (status == batch_status::done) {
        accept(b);
        window_.pop_front();
        progressed = true;
        backoff_ms = 50;
        if (++streak_ >= 20 && window_limit_ < o_.inflight) {
          ++window_limit_;
          streak_ = 0;
        }
        continue;
      }
      streak_ = 0;
      if (status == batch_status::failed) {
        auto why = "the node refused a batch (lines " + std::to_string(st_.line + 1) + " to "
                   + std::to_string(b.end_line) + "): " + b.result->message;
        window_.clear();
        return finish(why);
      }
      if (status == batch_status::overloaded) {
        // Nothing of this batch was applied; let the later ones settle, then
        // resend from here with fewer calls in flight.
        while (std::any_of(window_.begin(), window_.end(), [](auto& x) { return !x->result; }))
          wait_event(100);
        window_limit_ = std::max<size_t>(1, window_limit_ / 2);
        refused_from_ = st_.line + 1;
        refused_to_ = b.end_line;
        rewind();
        rpc_.sleep_ms(backoff_ms);
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 2'000);
        break;
      }
      // Disconnected: the calls in flight may or may not have been applied;
      // resending them is harmless, since the node applies each (source, seq) once.
      note("lost the node at " + o_.address + ": " + b.result->message + "; reconnecting");
      rewind();
      std::string error;
      if (!reconnect(error))
        return finish(error);
      break;
    }
    report_progress(false);
    if (window_.empty() && (stop || (eof_ && !held_)))
      break;
    int64_t wait_ms = 200;
    if (held_ && window_.size() < window_limit_) {
      auto due = wall_base_ + std::chrono::microseconds(static_cast<int64_t>(
                                (static_cast<double>(held_->parsed.sample.ts_ms - *ts_base_) * 1e3)
                                / o_.speed));
      wait_ms = std::clamp<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(due - steady::now()).count(), 0, 200);
    }
    // Wait only when there is nothing to do: no answer taken (which makes
    // room) and no batch that could be sent now (after a rewind).
    bool can_send = !stop && !eof_ && !held_ && window_.size() < window_limit_;
    if (!progressed && !can_send)
      wait_event(wait_ms);
  }
  if (eof_ && !held_ && window_.empty())
    st_.complete = true;
  return finish("");
}

// Reads lines into one new batch and sends it. False when nothing was read
// (end of file, or the next sample is not due yet).
bool replayer::fill() {
  auto b = std::make_unique<batch>();
  b->end_offset = read_end_offset_;
  b->end_line = read_end_line_;
  bool consumed = false;
  while (b->samples.size() < o_.batch) {
    sample_file_reader::line l;
    if (held_) {
      l = std::move(*held_);
      held_.reset();
    } else if (!reader_.next(l, wall_ms())) {
      eof_ = true;
      break;
    }
    if (l.parsed.what == sample_line::kind::sample && o_.speed > 0) {
      auto ts = l.parsed.sample.ts_ms;
      if (!ts_base_) {
        ts_base_ = ts;
        wall_base_ = steady::now();
      }
      auto due = wall_base_ + std::chrono::microseconds(static_cast<int64_t>(
                                (static_cast<double>(ts - *ts_base_) * 1e3) / o_.speed));
      if (due > steady::now()) {
        held_ = std::move(l);
        break;
      }
    }
    consumed = true;
    b->end_offset = l.end;
    b->end_line = l.number;
    if (l.parsed.what == sample_line::kind::bad) {
      ++b->bad_lines;
      if (l.number > bad_through_) {
        bad_through_ = l.number;
        if (printed_++ < o_.max_printed)
          note(o_.file + ":" + std::to_string(l.number) + ": " + l.parsed.error);
      }
      continue;
    }
    if (l.parsed.what == sample_line::kind::skipped)
      continue;
    auto& s = l.parsed.sample;
    if (s.source.empty())
      s.source = source_;
    if (!l.parsed.has_seq)
      s.seq = l.number;
    b->samples.push_back(std::move(s));
    b->lines.push_back(l.number);
  }
  if (!consumed)
    return false;
  read_end_offset_ = b->end_offset;
  read_end_line_ = b->end_line;
  auto* p = b.get();
  if (b->samples.empty()) {
    b->result = batch_outcome{};
  } else {
    b->task = rpc_.send(b->samples).then([p](batch_outcome&& r) { p->result = std::move(r); }).fork();
  }
  window_.push_back(std::move(b));
  return true;
}

// The node answered the oldest batch: count it and move the state past it.
void replayer::accept(batch& b) {
  auto& r = *b.result;
  st_.accepted += r.accepted;
  for (auto& rej : r.rejected) {
    auto line = rej.index < b.lines.size() ? b.lines[rej.index] : 0;
    if (rej.reason == "duplicate_sequence") {
      if (line < refused_from_ || line > refused_to_) {
        ++st_.duplicates;
        continue;
      }
      // This line was in a batch the node refused whole, so it was never
      // applied: a later batch of the same channel got in first.
      ++st_.overtaken;
      if (line > rejected_through_) {
        rejected_through_ = line;
        if (printed_++ < o_.max_printed)
          note(o_.file + ":" + std::to_string(line) + ": not applied: after an overloaded answer "
               "a later sample of its channel got in first (" + rej.message + ")");
      }
      continue;
    }
    ++st_.rejected;
    if (line > rejected_through_) {
      rejected_through_ = line;
      if (printed_++ < o_.max_printed)
        note(o_.file + ":" + std::to_string(line) + ": rejected (" + rej.reason + "): "
             + rej.message);
    }
  }
  st_.bad_lines += b.bad_lines;
  st_.offset = b.end_offset;
  st_.line = b.end_line;
  acked_this_run_ += b.samples.size();
  if (seconds_since(last_save_) >= 0.25) {
    if (auto err = save_state(state_path_, o_.file, st_); !err.empty())
      note(err);
    last_save_ = steady::now();
  }
}

// Forgets every batch not acknowledged and reads again from the acknowledged
// position.
void replayer::rewind() {
  window_.clear();
  held_.reset();
  eof_ = false;
  read_end_offset_ = st_.offset;
  read_end_line_ = st_.line;
  if (auto err = reader_.seek(st_.offset, st_.line); !err.empty())
    note(err);
}

bool replayer::reconnect(std::string& error) {
  auto since = steady::now();
  int64_t backoff_ms = 100;
  for (;;) {
    rpc_.disconnect();
    rpc_.sleep_ms(backoff_ms);
    error = rpc_.connect();
    if (error.empty()) {
      note("reconnected to " + o_.address);
      return true;
    }
    if (stopping()) {
      error = "";
      return true; // the main loop sees the stop with an empty window
    }
    if (seconds_since(since) > o_.reconnect_for_s) {
      error = "the node at " + o_.address + " has been unreachable for "
              + std::to_string(static_cast<int>(o_.reconnect_for_s)) + " s (" + error + ")";
      return false;
    }
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 5'000);
  }
}

// Runs the event loop until the oldest unanswered batch is answered or
// `max_ms` pass.
void replayer::wait_event(int64_t max_ms) {
  kj::Promise<void> until = rpc_.timer().afterDelay(max_ms * kj::MILLISECONDS);
  for (auto& b : window_) {
    if (b->result)
      continue;
    KJ_IF_MAYBE (t, b->task) {
      until = t->addBranch().exclusiveJoin(kj::mv(until));
    }
    break;
  }
  until.wait(rpc_.wait_scope());
}

void replayer::note(const std::string& text) {
  if (bar_shown_) {
    std::fprintf(out_, "\r\033[K");
    bar_shown_ = false;
  }
  std::fprintf(out_, "replay: %s\n", text.c_str());
  std::fflush(out_);
}

void replayer::report_progress(bool force) {
  auto since = seconds_since(last_report_);
  if (!force && since < (o_.bar ? 0.2 : o_.report_every_s))
    return;
  last_report_ = steady::now();
  double elapsed = std::max(1e-3, seconds_since(started_));
  double rate = static_cast<double>(acked_this_run_) / elapsed;
  double total = static_cast<double>(std::max<uint64_t>(reader_.size(), 1));
  double done = static_cast<double>(st_.offset);
  double left_bytes = std::max(0.0, total - done);
  double byte_rate = (done - static_cast<double>(start_offset_)) / elapsed;
  double eta = byte_rate > 0 ? left_bytes / byte_rate : -1;
  // Lines left, estimated from the bytes per line so far.
  double per_line = st_.line > 0 ? done / static_cast<double>(st_.line) : 0;
  double lines_left = per_line > 0 ? left_bytes / per_line : 0;
  char text[256];
  std::snprintf(text, sizeof(text), "%5.1f%%  %s samples/s  done %s lines  left ~%s lines  ETA %s",
                100.0 * done / total, human(rate).c_str(), human(static_cast<double>(st_.line)).c_str(),
                human(lines_left).c_str(), clock_text(eta).c_str());
  if (o_.bar) {
    constexpr int width = 24;
    int filled = static_cast<int>(width * done / total);
    std::string bar(static_cast<size_t>(std::clamp(filled, 0, width)), '#');
    bar.resize(width, '.');
    std::fprintf(out_, "\r\033[K[%s] %s", bar.c_str(), text);
    bar_shown_ = true;
  } else {
    std::fprintf(out_, "replay: %s\n", text);
  }
  std::fflush(out_);
}

// The totals of the state: the whole file so far.
replay_report replayer::totals() const {
  replay_report r;
  r.lines = st_.line;
  r.accepted = st_.accepted;
  r.duplicates = st_.duplicates;
  r.rejected = st_.rejected;
  r.bad_lines = st_.bad_lines;
  r.overtaken = st_.overtaken;
  r.complete = st_.complete;
  return r;
}

replay_report replayer::finish(std::string error) {
  window_.clear();
  if (!state_path_.empty() && !st_.source.empty()) {
    if (auto err = save_state(state_path_, o_.file, st_); !err.empty() && error.empty())
      error = err;
  }
  if (bar_shown_) {
    report_progress(true);
    std::fprintf(out_, "\n");
    bar_shown_ = false;
  }
  auto r = totals();
  r.sent_this_run = acked_this_run_;
  r.seconds = seconds_since(started_);
  r.error = std::move(error);
  if (printed_ > o_.max_printed)
    note(std::to_string(printed_ - o_.max_printed) + " more bad or rejected lines not shown");
  return r;
}

} // namespace

std::string replay_source(const std::string& file) {
  return "replay:" + fs::path(file).filename().string();
}

replay_report run_replay(const replay_options& opts, std::FILE* progress) {
  replayer r(opts, progress);
  return r.run();
}

} // namespace twinrt::adapters
