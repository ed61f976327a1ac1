// The per-instance lock file (see instance_lock.hpp).
#include "instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace dockscaler::cli {

namespace {

// The pid the holder wrote into the file; empty when unreadable.
std::string holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return {};
  std::string s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return {};
  return s;
}

}  // namespace

std::string lock_directory(const std::string& admin_socket) {
  if (const char* d = std::getenv("RUNTIME_DIRECTORY"); d && *d) {
    // systemd may list several directories, separated by ':'.
    std::string dir(d);
    return dir.substr(0, dir.find(':'));
  }
  const std::filesystem::path p(admin_socket);
  if (!admin_socket.empty() && p.has_parent_path()) return p.parent_path().string();
  return "/run/dockscaler";
}

instance_lock::instance_lock(const std::string& dir, const std::string& instance)
    : path_((std::filesystem::path(dir) / (instance + ".lock")).string()) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error("cannot create " + dir + " for the instance lock: " + ec.message());
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error("cannot open the instance lock " + path_ + ": " +
                             std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = err == EWOULDBLOCK ? holder_pid(fd_) : std::string();
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK)
      throw std::runtime_error("cannot lock " + path_ + ": " + std::strerror(err));
    throw instance_taken("instance \"" + instance + "\" is already running on this host" +
                         (pid.empty() ? "" : " (pid " + pid + ")") + ": " + path_ +
                         " is locked; give this daemon another `instance:` or stop the other");
  }
  // Ours now: say who holds it, for the next one that tries.
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // Only the message of a later contender loses the pid; the lock holds.
  }
}

instance_lock::~instance_lock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace dockscaler::cli
