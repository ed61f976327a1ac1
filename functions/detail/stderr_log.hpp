// A call's stderr, to the daemon's log line by line, each line prefixed with
// its service; at most stderr_log_max bytes per call, so a function cannot
// flood the log.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dockscaler::functions {

inline constexpr std::size_t stderr_log_max = 64 * 1024;

class stderr_log {
 public:
  // `service` must outlive the log.
  explicit stderr_log(const std::string& service) : service_(service) {}
  ~stderr_log() { flush(); }
  stderr_log(const stderr_log&) = delete;
  stderr_log& operator=(const stderr_log&) = delete;

  void add(std::string_view data);
  // Logs the line begun so far (the function's output stopped mid-line).
  void flush();

 private:
  const std::string& service_;
  std::string line_;
  std::size_t logged_ = 0;
  bool truncated_ = false;
};

}  // namespace dockscaler::functions
