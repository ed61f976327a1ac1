// The daemon's end of a hot container's socket (functions/init, --hot): the
// init lends the function's stdin and stdout pipes over it (SCM_RIGHTS), so a
// call's bytes go straight into the function's stdin and its answer straight
// out of its stdout, without dockerd and the containerd shim of Docker's
// attach. The path is a host path (the container's label_hot_socket).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dockscaler::functions {

class hot_socket {
 public:
  // Connects to `path`, retrying while nothing listens yet (a container just
  // started) until `wait` has passed, checks that the listener is the
  // process `pid` (the container's init, as Docker reports it: the directory
  // is the function's to write, so it could put another socket or a symlink
  // to one of the host's there), and takes the pipes. Empty with the reason
  // in `why` otherwise.
  static std::optional<hot_socket> connect(const std::string& path, int pid,
                                           std::chrono::milliseconds wait, std::string& why);

  hot_socket(hot_socket&& o) noexcept : fds_(std::exchange(o.fds_, closed())) {}
  hot_socket& operator=(hot_socket&& o) noexcept {
    std::swap(fds_, o.fds_);  // o closes what was ours
    return *this;
  }
  hot_socket(const hot_socket&) = delete;
  ~hot_socket();

  // Into the function's stdin. Throws std::runtime_error when it is closed
  // or after abort().
  void write(std::string_view data);
  // The next bytes of its stdout; empty at its end. Throws std::runtime_error
  // after abort().
  std::string read();
  // Without waiting: what its stdin takes now (0 when its pipe is full).
  // Throws std::runtime_error when it is closed.
  std::size_t write_now(std::string_view data);
  // Without waiting: bytes of its stdout into `buf` (> 0), 0 at its end, -1
  // when none is there yet. Throws std::runtime_error on an error.
  long read_now(char* buf, std::size_t size);
  // What to wait on for read_now (stays open until destruction, also after abort()).
  int stdout_fd() const { return fds_[from]; }
  // From any thread: a read or write in progress fails at once, and so does
  // every later one. The connection stays until destruction (the init lends
  // the pipes to the next connection only once it is closed).
  void abort() noexcept;

 private:
  enum { sock, to, from, wake };  // wake: an eventfd, readable once aborted
  static std::array<int, 4> closed() { return {-1, -1, -1, -1}; }
  explicit hot_socket(std::array<int, 4> fds) : fds_(fds) {}
  // Waits until `fd` is ready for `events` (poll); false once aborted.
  bool ready(int fd, short events);
  std::array<int, 4> fds_;
};

}  // namespace dockscaler::functions
