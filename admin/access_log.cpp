// The access log (see access_log.hpp): the record buffer, the two line
// formats and the writer thread.
#include "admin/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace dockscaler::admin {
namespace {

// ---- the packed record ----

constexpr std::size_t nfields = 7;  // service, client, method, target, referer, user_agent, backend

struct record_head {
  std::int64_t time_ns;
  std::int64_t wait_ns;
  std::int64_t duration_ns;
  std::uint64_t bytes_in;
  std::uint64_t bytes_out;
  std::uint32_t status;
  std::uint32_t upstream;
  std::uint32_t version;
  std::uint32_t refused;
  std::array<std::uint32_t, nfields> len;
};

std::array<std::string_view, nfields> fields_of(const lb::request_outcome& o) {
  return {o.service, o.client, o.method, o.target, o.referer, o.user_agent, o.backend};
}

// ---- formatting ----

// The length of the UTF-8 sequence at s[i], or 0 when it is not one
// (overlong forms and surrogates included).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // a surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

void append_seconds(std::string& out, std::chrono::nanoseconds d) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%.6f", std::chrono::duration<double>(d).count());
  out.append(buf, static_cast<std::size_t>(n));
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  out.append(buf, static_cast<std::size_t>(n));
}

std::tm utc(wall_clock::time_point t) {
  const std::time_t secs = wall_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return tm;
}

// 2026-12-02T03:04:05.123Z
void append_rfc3339(std::string& out, wall_clock::time_point t) {
  const std::tm tm = utc(t);
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t) -
                  std::chrono::floor<std::chrono::seconds>(t);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                              tm.tm_sec, static_cast<int>(ms.count()));
  out.append(buf, static_cast<std::size_t>(n));
}

// [02/Dec/2026:03:04:05 +0000]
void append_clf_time(std::string& out, wall_clock::time_point t) {
  static constexpr std::array<const char*, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::tm tm = utc(t);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday,
                              months[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900,
                              tm.tm_hour, tm.tm_min, tm.tm_sec);
  out.append(buf, static_cast<std::size_t>(n));
}

// As nginx escapes its log fields: a quote, a backslash, and every byte
// outside printable ASCII as \xHH, so a field can neither end early nor
// carry a terminal's control sequence. Empty: "-".
void append_clf_field(std::string& out, std::string_view s) {
  if (s.empty()) {
    out += '-';
    return;
  }
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
}

void append_protocol(std::string& out, unsigned version) {
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10 % 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
}

void append_json_field(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":";
  append_json_string(out, value);
}

void append_json_number(std::string& out, std::string_view key, std::uint64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  append_number(out, value);
}

// Writes all of `data`; false (with errno) when the descriptor fails.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int open_log(const std::string& path) {
  if (path == "-") return STDOUT_FILENO;
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_length(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    const char* esc = c == '"'    ? "\\\""
                      : c == '\\' ? "\\\\"
                      : c == '\n' ? "\\n"
                      : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t"
                                  : nullptr;
    if (esc) {
      out += esc;
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void append_json_line(std::string& out, const access_entry& e) {
  const lb::request_outcome& o = e.outcome;
  out += "{\"time\":\"";
  append_rfc3339(out, e.time);
  out += '"';
  append_json_field(out, "client", o.client);
  append_json_field(out, "method", o.method);
  append_json_field(out, "target", o.target);
  out += ",\"protocol\":\"";
  append_protocol(out, o.version);
  out += '"';
  append_json_number(out, "status", o.status);
  append_json_number(out, "bytes_in", o.bytes_in);
  append_json_number(out, "bytes_out", o.bytes_out);
  out += ",\"wait_time\":";
  append_seconds(out, o.wait);
  out += ",\"duration\":";
  append_seconds(out, o.duration);
  append_json_field(out, "service", o.service);
  append_json_field(out, "backend", o.backend);
  append_json_number(out, "upstream_status", o.upstream_status);
  if (o.refused != lb::refusal::none)
    append_json_field(out, "refused", lb::refusal_name(o.refused));
  append_json_field(out, "referer", o.referer);
  append_json_field(out, "user_agent", o.user_agent);
  out += "}\n";
}

// client - - [time] "METHOD target HTTP/1.1" status bytes "referer" "user-agent"
void append_combined_line(std::string& out, const access_entry& e) {
  const lb::request_outcome& o = e.outcome;
  append_clf_field(out, o.client);
  out += " - - ";
  append_clf_time(out, e.time);
  out += " \"";
  if (o.method.empty()) {
    out += '-';  // no request line could be read
  } else {
    append_clf_field(out, o.method);
    out += ' ';
    append_clf_field(out, o.target);
    out += ' ';
    append_protocol(out, o.version);
  }
  out += "\" ";
  append_number(out, o.status);
  out += ' ';
  append_number(out, o.bytes_out);
  out += " \"";
  append_clf_field(out, o.referer);
  out += "\" \"";
  append_clf_field(out, o.user_agent);
  out += "\"\n";
}

// ---- record_queue ----

bool record_queue::push(wall_clock::time_point t, const lb::request_outcome& o,
                        bool* crossed_half) noexcept {
  record_head h{};
  h.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  h.wait_ns = o.wait.count();
  h.duration_ns = o.duration.count();
  h.bytes_in = o.bytes_in;
  h.bytes_out = o.bytes_out;
  h.status = o.status;
  h.upstream = o.upstream_status;
  h.version = o.version;
  h.refused = static_cast<std::uint32_t>(o.refused);
  const auto fields = fields_of(o);
  std::size_t size = sizeof h;
  for (std::size_t i = 0; i < nfields; ++i) {
    h.len[i] = static_cast<std::uint32_t>(std::min(fields[i].size(), max_field));
    size += h.len[i];
  }
  std::lock_guard lock(mu_);
  if (pending_.size() + size > max_bytes_) return false;
  // Within capacity once the buffer has grown to max_bytes_: no allocation.
  pending_.append(reinterpret_cast<const char*>(&h), sizeof h);
  for (std::size_t i = 0; i < nfields; ++i) pending_.append(fields[i].data(), h.len[i]);
  if (crossed_half)
    *crossed_half = pending_.size() >= max_bytes_ / 2 && pending_.size() - size < max_bytes_ / 2;
  return true;
}

void record_queue::take(std::string& batch) {
  batch.clear();
  std::lock_guard lock(mu_);
  batch.swap(pending_);
}

std::size_t record_queue::pending_bytes() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

std::string_view record_queue::decode(std::string_view batch, access_entry& e) {
  record_head h;
  std::memcpy(&h, batch.data(), sizeof h);
  batch.remove_prefix(sizeof h);
  e.time = wall_clock::time_point(
      std::chrono::duration_cast<wall_clock::duration>(std::chrono::nanoseconds(h.time_ns)));
  lb::request_outcome& o = e.outcome;
  o.wait = std::chrono::nanoseconds(h.wait_ns);
  o.duration = std::chrono::nanoseconds(h.duration_ns);
  o.bytes_in = h.bytes_in;
  o.bytes_out = h.bytes_out;
  o.status = h.status;
  o.upstream_status = h.upstream;
  o.version = h.version;
  o.refused = static_cast<lb::refusal>(h.refused);
  std::array<std::string_view, nfields> f;
  for (std::size_t i = 0; i < nfields; ++i) {
    f[i] = batch.substr(0, h.len[i]);
    batch.remove_prefix(h.len[i]);
  }
  o.service = f[0];
  o.client = f[1];
  o.method = f[2];
  o.target = f[3];
  o.referer = f[4];
  o.user_agent = f[5];
  o.backend = f[6];
  return batch;
}

// ---- access_log ----

access_log::access_log(access_log_options options)
    : opts_(std::move(options)), queue_(opts_.buffer_bytes) {
  fd_ = open_log(opts_.path);
  if (fd_ < 0)
    throw std::runtime_error("cannot open access log " + opts_.path + ": " + std::strerror(errno));
  writer_ = std::thread([this] { run(); });
}

access_log::~access_log() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  writer_.join();
  if (fd_ != STDOUT_FILENO) ::close(fd_);
}

void access_log::record(const lb::request_outcome& o) noexcept {
  // Logged as of its arrival: the time a reader looks a request up by (a
  // function's outcome is reported only once its container let go).
  const auto since = o.arrival == std::chrono::steady_clock::time_point{}
                         ? std::chrono::steady_clock::duration(0)
                         : std::chrono::steady_clock::now() - o.arrival;
  const auto arrived = wall_clock::now() - std::chrono::duration_cast<wall_clock::duration>(since);
  bool crossed_half = false;
  if (!queue_.push(arrived, o, &crossed_half)) {
    drop(1);
    return;
  }
  // Half full: the writer goes now rather than at its next interval (once,
  // when the buffer crosses the mark, so a steady load costs no wake-ups).
  if (crossed_half) wake_.notify_one();
}

void access_log::drop(std::uint64_t lines) noexcept {
  dropped_.fetch_add(lines, std::memory_order_relaxed);
  if (opts_.on_drop) opts_.on_drop(lines);
}

std::uint64_t access_log::dropped() const { return dropped_.load(std::memory_order_relaxed); }

std::string access_log::reopen() {
  std::unique_lock lock(mu_);
  reopen_wanted_ = true;
  const std::uint64_t ticket = ++sync_wanted_;
  wake_.notify_one();
  done_.wait(lock, [&] { return sync_done_ >= ticket; });
  return reopen_error_;
}

void access_log::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t ticket = ++sync_wanted_;
  wake_.notify_one();
  done_.wait(lock, [&] { return sync_done_ >= ticket; });
}

// Wakes every flush_interval (or for a sync), takes what is queued and
// writes it with one write(). A reopen happens before the batch is taken,
// so every line recorded before reopen() returns goes to one of the files.
void access_log::run() {
  std::string batch, out;
  for (;;) {
    std::uint64_t ticket = 0;
    bool reopen = false, stop = false;
    {
      std::unique_lock lock(mu_);
      // Lock order: mu_, then the queue's own.
      wake_.wait_for(lock, opts_.flush_interval, [&] {
        return stop_ || sync_wanted_ > sync_done_ ||
               queue_.pending_bytes() >= opts_.buffer_bytes / 2;
      });
      ticket = sync_wanted_;
      reopen = std::exchange(reopen_wanted_, false);
      stop = stop_;
    }
    if (reopen) reopen_file();
    queue_.take(batch);
    write_batch(batch, out);
    {
      std::lock_guard lock(mu_);
      sync_done_ = ticket;
    }
    done_.notify_all();
    if (stop) return;
  }
}

void access_log::reopen_file() {
  std::string error;
  if (opts_.path != "-") {
    const int fd = open_log(opts_.path);
    if (fd < 0) {
      error = "cannot reopen access log " + opts_.path + ": " + std::strerror(errno) +
              "; still writing to the previous file";
      spdlog::error("{}", error);
    } else {
      ::close(fd_);
      fd_ = fd;
    }
  }
  std::lock_guard lock(mu_);
  reopen_error_ = error;
}

void access_log::write_batch(const std::string& batch, std::string& out) {
  out.clear();
  std::uint64_t lines = 0;
  record_queue::for_each(batch, [&](const access_entry& e) {
    if (opts_.format == access_log_format::json)
      append_json_line(out, e);
    else
      append_combined_line(out, e);
    ++lines;
  });
  if (out.empty() || write_all(fd_, out)) return;
  const int err = errno;
  drop(lines);
  spdlog::error("access log {}: write failed: {}; {} line(s) lost", opts_.path, std::strerror(err),
                lines);
}

}  // namespace dockscaler::admin
