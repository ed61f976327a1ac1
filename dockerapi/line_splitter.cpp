// dockerapi/line_splitter.cpp: see detail/line_splitter.hpp.
#include "detail/line_splitter.hpp"

#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi::detail {

void line_splitter::feed(std::string_view data,
                         const std::function<void(std::string_view)>& on_line) {
  while (!data.empty()) {
    auto nl = data.find('\n');
    if (nl == std::string_view::npos) {
      if (buf_.size() + data.size() > max_line_) {
        throw error(errc::protocol,
                    "dockerapi: stream line longer than " + std::to_string(max_line_) + " bytes");
      }
      buf_.append(data);
      return;
    }
    std::string_view line;
    if (buf_.empty()) {
      line = data.substr(0, nl);
    } else {
      buf_.append(data.substr(0, nl));
      line = buf_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) on_line(line);
    buf_.clear();
    data.remove_prefix(nl + 1);
  }
}

}  // namespace dockscaler::dockerapi::detail
