// Helpers shared by the Docker integration suites: a per-run id for labels and
// names, FROM scratch build contexts (the echo image's), and waiting on a
// condition with a deadline.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "dockerapi/client.hpp"
#include "dockerapi/tar_writer.hpp"

namespace dockscaler::test {

inline const std::string& run_id() {
  static const std::string id = [] {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return std::to_string(::getpid()) + "-" +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now).count() %
                          100000000);
  }();
  return id;
}

inline std::string label_filter() { return "dockscaler.test=" + run_id(); }

// A file's contents; empty when it cannot be read.
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Build context of a FROM scratch image running one static binary as /<name>.
inline std::string scratch_context(const std::string& binary_path, const std::string& name) {
  const std::string bin = read_file(binary_path);
  if (bin.empty()) throw std::runtime_error("cannot read " + binary_path);
  dockerapi::tar_writer w;
  w.add_file("Dockerfile",
             "FROM scratch\nCOPY " + name + " /" + name + "\nENTRYPOINT [\"/" + name + "\"]\n");
  w.add_file(name, bin, 0755);
  return w.finish();
}

// Build context: the static echo binary (examples/echo) and its Dockerfile.
inline std::string echo_context() { return scratch_context(DOCKSCALER_ECHO_BIN, "echo"); }

// A loopback port that was free a moment ago (bound to port 0, then closed).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Polls `cond` until it holds or `timeout` passes; returns the last result.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

}  // namespace dockscaler::test
