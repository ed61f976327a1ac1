// Logging set-up for the daemon and the CLI: spdlog to stderr, as text for
// people or as one JSON object per line for journald/ELK.
#pragma once

#include <string>

namespace dockscaler::cli {

// level: trace|debug|info|warn|error; format: text|json (validated by the caller).
void setup_logging(const std::string& level, const std::string& format);

}  // namespace dockscaler::cli
