// A call's stderr to the log (see stderr_log.hpp).
#include "detail/stderr_log.hpp"

#include <spdlog/spdlog.h>

namespace dockscaler::functions {

void stderr_log::add(std::string_view data) {
  for (char ch : data) {
    if (logged_ >= stderr_log_max) {
      if (!truncated_) spdlog::info("{}: (further stderr of this call not logged)", service_);
      truncated_ = true;
      return;
    }
    ++logged_;
    if (ch == '\n')
      flush();
    else
      line_ += ch;
  }
}

void stderr_log::flush() {
  if (!line_.empty()) spdlog::info("{}: {}", service_, line_);
  line_.clear();
}

}  // namespace dockscaler::functions
