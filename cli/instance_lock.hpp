// One daemon per instance on a host: `serve` holds an exclusive flock on
// <dir>/<instance>.lock for its whole life. The kernel drops the lock when
// the process dies, however it dies, so there is nothing stale to clean up
// and no window between a check and a claim.
#pragma once

#include <stdexcept>
#include <string>

namespace dockscaler::cli {

// Another live process holds the lock.
struct instance_taken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where the lock lives: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=) if
// set, else the admin socket's directory, else /run/dockscaler.
std::string lock_directory(const std::string& admin_socket);

class instance_lock {
 public:
  // Creates `dir` if needed and takes the lock without waiting. Throws
  // instance_taken naming the instance (and the pid holding it, when the
  // file says) if another process holds it, std::runtime_error with the path
  // and reason if the file cannot be created or opened.
  instance_lock(const std::string& dir, const std::string& instance);
  ~instance_lock();  // closes the file, which releases the lock; the file stays
  instance_lock(const instance_lock&) = delete;
  instance_lock& operator=(const instance_lock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace dockscaler::cli
