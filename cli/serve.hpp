// `dockscaler serve`: the daemon. Wires config, Docker client, proxy and
// autoscaler together and runs until SIGTERM/SIGINT; SIGHUP reloads.
#pragma once

#include <string>

namespace dockscaler::cli {

struct serve_options {
  std::string config_path;
  bool stop_containers = false;  // remove managed containers on exit
};

// Returns the process exit code.
int serve(const serve_options& opts);

}  // namespace dockscaler::cli
