// dockscaler-fn-init: PID 1 of every stdio function container. Runs the
// function as its child with stdout through a pipe it relays, and once the
// function's output has ended and it exited, appends one trailer line to
// stdout: "\x1e" "dockscaler-exit:" TOKEN ":" CODE "\n". The runner answers
// the call the moment it reads the trailer, instead of waiting for Docker to
// tear the container down (~80 ms on the project machine) before the attach
// stream ends and the exit code is known. Signals are passed on to the
// function; the exit code is the function's (128 + signal when killed).
// Usage: dockscaler-fn-init TOKEN -- COMMAND [ARGS...]
// Static, libc only: it is copied into every function container.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int passed_on[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

volatile sig_atomic_t child = 0;
volatile sig_atomic_t pending_signal = 0;

void forward(int sig) {
  if (child > 0)
    ::kill(child, sig);
  else
    pending_signal = sig;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void say(const char* a, const char* b = "", const char* c = "", const char* d = "") {
  char line[512];
  const int n = std::snprintf(line, sizeof line, "dockscaler-fn-init: %s%s%s%s\n", a, b, c, d);
  if (n > 0)
    write_all(2, line,
              static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1);
}

int code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Copies what is in the pipe now (non-blocking); false at end of file.
bool relay(int from, bool block) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(from, buf, sizeof buf);
    if (n > 0) {
      if (!write_all(1, buf, static_cast<size_t>(n))) return false;
      if (block) return true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[2], "--") != 0) {
    say("usage: dockscaler-fn-init TOKEN -- COMMAND [ARGS...]");
    return 127;
  }
  const char* token = argv[1];
  struct sigaction sa {};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  for (int s : passed_on) ::sigaction(s, &sa, nullptr);

  int out[2];
  if (::pipe(out) != 0) {
    say("pipe: ", std::strerror(errno));
    return 127;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    say("fork: ", std::strerror(errno));
    return 127;
  }
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : passed_on) ::sigaction(s, &dfl, nullptr);
    ::execvp(argv[3], argv + 3);
    say("cannot run ", argv[3], ": ", std::strerror(errno));
    _exit(127);
  }
  child = pid;
  if (pending_signal) ::kill(pid, pending_signal);
  ::close(out[1]);

  // Relay until the output ends; if the function exits while something it
  // started keeps stdout open, take what is there and stop (as Docker would
  // when PID 1 exits).
  int status = 0;
  bool exited = false;
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    const int r = ::poll(&p, 1, 50);
    if (r > 0) {
      if (!relay(out[0], true)) break;
      continue;
    }
    if (r < 0 && errno != EINTR) break;
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
      ::fcntl(out[0], F_SETFL, O_NONBLOCK);
      relay(out[0], false);
      break;
    }
  }
  while (!exited) {
    const pid_t w = ::waitpid(-1, &status, 0);  // reaps strays too: we are PID 1
    if (w == pid)
      exited = true;
    else if (w < 0 && errno != EINTR)
      break;
  }
  const int code = exited ? code_of(status) : 1;
  char trailer[256];
  const int n = std::snprintf(trailer, sizeof trailer,
                              "\x1e"
                              "dockscaler-exit:%s:%d\n",
                              token, code);
  if (n > 0 && static_cast<size_t>(n) < sizeof trailer)
    write_all(1, trailer, static_cast<size_t>(n));
  return code;
}
