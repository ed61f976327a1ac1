// examples/echo: a tiny static function for FROM scratch images. Copies stdin
// to stdout, says "echo: ready" / "echo: done" on stderr, and exits with the
// code given as argv[1] or $EXIT_CODE (default 0). For tests of stdio
// functions: $PRINT_ENV set prints the environment (one NAME=value per line)
// before the input, $DELAY_MS waits that long after the input before exiting. As PID 1 in a
// container a signal without a handler is ignored, so SIGTERM gets one: `docker stop` is then
// immediate instead of waiting for SIGKILL.
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>

extern char** environ;

namespace {

void say(const char* s) {
  ssize_t r = ::write(2, s, std::strlen(s));
  (void)r;
}

void on_term(int) {
  say("echo: terminated\n");
  ::_exit(143);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGTERM, on_term);
  std::signal(SIGINT, on_term);
  const char* code = argc > 1 ? argv[1] : std::getenv("EXIT_CODE");
  int exit_code = code ? std::atoi(code) : 0;
  say("echo: ready\n");
  if (std::getenv("PRINT_ENV"))
    for (char** e = environ; *e; ++e) {
      const std::size_t n = std::strlen(*e);
      if (::write(1, *e, n) != static_cast<ssize_t>(n) || ::write(1, "\n", 1) != 1) return 1;
    }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(1, buf + off, static_cast<size_t>(n - off));
      if (w <= 0) return 1;
      off += w;
    }
  }
  if (const char* d = std::getenv("DELAY_MS")) {
    const long ms = std::atol(d);
    timespec ts{ms / 1000, (ms % 1000) * 1000000};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  say("echo: done\n");
  return exit_code;
}
