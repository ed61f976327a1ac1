// The proxy's access log (docs/proxy.md "Access log"): one line per request,
// as JSON or in the combined format of Apache and nginx. The proxy's I/O
// threads only copy each request's outcome into a bounded buffer (record());
// one writer thread formats the lines and writes them in batches, so a slow
// disk never holds a request up. When the buffer is full the line is dropped
// and counted instead. The file is reopened on demand (logrotate's SIGUSR1,
// a reload) without losing a line.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "lb/proxy.hpp"

namespace dockscaler::admin {

enum class access_log_format { json, combined };

using wall_clock = std::chrono::system_clock;

// One request as the log prints it: when it arrived, and what the proxy
// reported of it (its string_views valid as long as the entry).
struct access_entry {
  wall_clock::time_point time;
  lb::request_outcome outcome;
};

// `s` as a JSON string, quoted: quotes, backslashes and control characters
// escaped, bytes that are not UTF-8 replaced by U+FFFD, so the line is
// always valid JSON whatever the client sent.
void append_json_string(std::string& out, std::string_view s);
// One line (with its newline) in each format.
void append_json_line(std::string& out, const access_entry& e);
void append_combined_line(std::string& out, const access_entry& e);

// The bounded buffer between the I/O threads and the writer: records are
// packed as bytes into one buffer, which the writer swaps out whole (both
// keep their capacity, so a steady load allocates nothing). Thread-safe.
class record_queue {
 public:
  explicit record_queue(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  // Copies the outcome (each string cut at max_field bytes); false when it
  // does not fit, and the record is dropped. `crossed_half`: this record
  // filled the buffer past half its capacity.
  bool push(wall_clock::time_point t, const lb::request_outcome& o,
            bool* crossed_half = nullptr) noexcept;
  // Moves every pending record into `batch` (its previous content dropped).
  void take(std::string& batch);
  std::size_t pending_bytes() const;
  // Calls f(const access_entry&) for each record of a batch, in order.
  template <class F>
  static void for_each(std::string_view batch, F&& f) {
    access_entry e;
    while (!batch.empty()) {
      batch = decode(batch, e);
      f(e);
    }
  }

  static constexpr std::size_t max_field = 8192;

 private:
  static std::string_view decode(std::string_view batch, access_entry& e);
  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::string pending_;  // guarded by mu_
};

struct access_log_options {
  std::string path{};  // "-": standard output
  access_log_format format = access_log_format::json;
  std::size_t buffer_bytes = 4 * 1024 * 1024;  // records waiting for the writer
  std::chrono::milliseconds flush_interval{100};
  // Lines lost: the buffer was full, or a write failed. May run on an I/O
  // thread; must be cheap and must not throw.
  std::function<void(std::uint64_t lines)> on_drop{};
};

// The log itself. Errors: the constructor throws std::runtime_error("cannot
// open access log PATH: reason"); later write and reopen failures are logged
// (spdlog), never thrown.
class access_log {
 public:
  explicit access_log(access_log_options options);
  ~access_log();  // writes what is queued, then stops the writer
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;

  // From the proxy's on_request: copies, formats nothing. Never blocks on I/O.
  void record(const lb::request_outcome& o) noexcept;
  // Opens the path again (after logrotate moved the file away); lines
  // recorded meanwhile go to the new file. Waits for the writer. Returns ""
  // or what failed, and then the previous file is kept.
  std::string reopen();
  // Returns once every line recorded before the call was written.
  void flush();
  std::uint64_t dropped() const;

 private:
  void run();
  void reopen_file();  // writer thread
  void write_batch(const std::string& batch, std::string& out);
  void drop(std::uint64_t lines) noexcept;

  const access_log_options opts_;
  record_queue queue_;
  int fd_ = -1;  // the writer's (and the constructor's)
  std::mutex mu_;
  std::condition_variable wake_;                   // the writer: work, a sync or stop
  std::condition_variable done_;                   // a sync was served
  std::uint64_t sync_wanted_ = 0, sync_done_ = 0;  // guarded by mu_
  bool reopen_wanted_ = false, stop_ = false;      // guarded by mu_
  std::string reopen_error_;                       // guarded by mu_
  std::atomic<std::uint64_t> dropped_{0};
  std::thread writer_;
};

}  // namespace dockscaler::admin
