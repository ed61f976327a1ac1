// dockerapi/detail/line_splitter.hpp: turns a byte stream cut into arbitrary
// chunks (HTTP chunks, socket reads) into complete '\n'-terminated lines, as
// the events and progress streams need.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace dockscaler::dockerapi::detail {

class line_splitter {
 public:
  // A line longer than max_line throws error(protocol) instead of growing forever.
  explicit line_splitter(std::size_t max_line = 16u << 20) : max_line_(max_line) {}

  // Calls on_line for every complete line (without "\n" or a trailing "\r");
  // empty lines are skipped. Keeps the unfinished tail for the next feed.
  void feed(std::string_view data, const std::function<void(std::string_view)>& on_line);

  // The unfinished tail (bytes after the last newline).
  const std::string& pending() const noexcept { return buf_; }
  void clear() noexcept { buf_.clear(); }

 private:
  std::size_t max_line_;
  std::string buf_;
};

}  // namespace dockscaler::dockerapi::detail
