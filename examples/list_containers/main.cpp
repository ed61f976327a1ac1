// examples/list_containers: lists the daemon's containers as a table, like a
// minimal `docker ps -a`, using dockerapi (DOCKER_HOST etc. are honoured).
#include <cstdio>
#include <string>

#include "dockerapi/client.hpp"

namespace api = dockscaler::dockerapi;

int main(int argc, char** argv) {
  bool all = !(argc > 1 && std::string(argv[1]) == "--running");
  try {
    api::client docker;
    api::list_containers_options opts;
    opts.all = all;
    auto list = docker.list_containers(opts);
    std::printf("%-12s  %-24s  %-10s  %-24s  %s\n", "CONTAINER ID", "IMAGE", "STATE", "STATUS",
                "NAMES");
    for (const auto& c : list) {
      std::string names;
      for (const auto& n : c.names)
        names += (names.empty() ? "" : ",") + n.substr(n.rfind('/') + 1);
      std::printf("%-12.12s  %-24.24s  %-10s  %-24.24s  %s\n", c.id.c_str(), c.image.c_str(),
                  c.state.c_str(), c.status.c_str(), names.c_str());
    }
    return 0;
  } catch (const api::error& e) {
    std::fprintf(stderr, "list_containers: %s\n", e.what());
    return e.code() == api::errc::unreachable || e.code() == api::errc::timeout ? 3 : 1;
  }
}
