// The daemon's end of a hot container's socket (functions/init, --hot): the
// init relays the function's stdin and stdout over it, so a call's bytes do
// not go through dockerd and the containerd shim as they do over Docker's
// attach. The path is a host path (the container's label_hot_socket).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dockscaler::functions {

class hot_socket {
 public:
  // Connects to `path`, retrying while nothing listens yet (a container just
  // started) until `wait` has passed, and checks that the listener is the
  // process `pid` (the container's init, as Docker reports it): the directory
  // is the function's to write, so it could put another socket or a symlink
  // to one of the host's there. Empty with the reason in `why` otherwise.
  static std::optional<hot_socket> connect(const std::string& path, int pid,
                                           std::chrono::milliseconds wait, std::string& why);

  hot_socket(hot_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  hot_socket& operator=(hot_socket&& o) noexcept {
    if (this != &o) std::swap(fd_, o.fd_);  // o closes what was ours
    return *this;
  }
  hot_socket(const hot_socket&) = delete;
  ~hot_socket();

  // Throws std::runtime_error when the other end is gone.
  void write(std::string_view data);
  // The next bytes; empty at the end of the stream. Throws std::runtime_error.
  std::string read();
  // Shuts the connection down both ways, from any thread: a read or write in
  // progress fails or ends at once.
  void abort() noexcept;

 private:
  explicit hot_socket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace dockscaler::functions
