// hello-stdio: IronFunctions' "hello" as a `mode: stdio` function. Reads all of
// stdin; if it is a JSON object with a string "Name" it answers
// "Hello <Name>!\n" on stdout, else "Hello World!\n"; exit code 0.
// Nothing is written before stdin is at EOF, so a pre-started (prewarmed)
// container stays silent until its call arrives.
// For tests and logs: one line on stderr per call naming $METHOD, and
// $FAIL_WITH=N (N != 0) makes it exit N after reading stdin.
// As PID 1 in a container a signal without a handler is ignored, so SIGTERM
// gets one: `docker stop` is then immediate instead of waiting for SIGKILL.
#include <rapidjson/document.h>
#include <unistd.h>
#include "../hello_name.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string read_all(int fd) {
  std::string all;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return all;
    all.append(buf, static_cast<size_t>(n));
  }
}

void on_signal(int sig) { ::_exit(128 + sig); }

}  // namespace

int main() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::string body = read_all(0);

  const char* method = std::getenv("METHOD");
  write_all(2, std::string("hello-stdio: called (METHOD=") + (method ? method : "unset") + ")\n");
  if (const char* fail = std::getenv("FAIL_WITH")) {
    int code = std::atoi(fail);
    if (code != 0) {
      write_all(2, "hello-stdio: failing with " + std::to_string(code) + "\n");
      return code;
    }
  }
  return write_all(1, "Hello " + name_from(body) + "!\n") ? 0 : 1;
}
