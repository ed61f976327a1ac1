// dockscaler-fn-init: PID 1 of every stdio function container. Runs the
// function as its child with stdin and stdout through pipes it relays. The
// runner's first bytes on stdin are a secret per-call token (see
// protocol.hpp); the init takes them off before the function's input, and
// once the function's output has ended and it exited, appends one trailer
// line to stdout: "\x1e" "dockscaler-exit:" TOKEN ":" CODE "\n". The runner
// answers the call the moment it reads the trailer, instead of waiting for
// Docker to tear the container down (~80 ms on the project machine) before
// the attach stream ends and the exit code is known.
//
// The function must not be able to forge that trailer, so the token is never
// in argv or the environment, and the init makes itself non-dumpable: a
// process without CAP_SYS_PTRACE (the function, same uid or not) can then not
// read /proc/1/mem, /proc/1/environ or /proc/1/fd of the init.
//
// Signals are passed on to the function; the exit code is the function's
// (128 + signal when killed).
// With --hot SOCKET (a hot function's container), there is no token and no
// trailer: the function serves call after call and the init lends its stdin
// and stdout pipes to the daemon over a Unix socket at SOCKET, so the
// daemon's calls bypass Docker's attach (see "hot mode" below).
// Usage: dockscaler-fn-init [--hot SOCKET] -- COMMAND [ARGS...]
// Static, libc only: it is copied into every function container.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "protocol.hpp"

namespace {

namespace proto = dockscaler::functions::protocol;

constexpr int passed_on[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
// A function that exits before its call's token arrived (it did not wait for
// its input) still gets its exit reported if the token comes this soon after.
constexpr int token_grace_ms = 1000;

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

// Copies one read's worth (block) or what is in the pipe now (non-blocking,
// at most `max` bytes); false at end of file.
bool relay(int from, bool block, size_t max = 0) {
  char buf[65536];
  for (size_t done = 0; block || done < max;) {
    const ssize_t n = ::read(from, buf, sizeof buf);
    if (n > 0) {
      if (!write_all(1, buf, static_cast<size_t>(n))) return false;
      if (block) return true;
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

// The container's stdin on its way to the function's: the token header taken
// off first, the rest passed on as the function reads it (never more than one
// buffer held, so a function that does not read holds the sender back).
struct stdin_relay {
  int to = -1;         // the function's stdin (write end, non-blocking); -1 once closed
  bool open = true;    // the container's stdin has not ended
  bool header = true;  // still collecting the token header
  char token[proto::token_len + 1] = {};
  char buf[65536];
  size_t off = 0, len = 0;

  bool wants_input() const { return open && (header || off == len); }
  bool has_output() const { return to >= 0 && !header && off < len; }

  // A prefix that cannot become a header ends the collection: it is input.
  void check_header() {
    size_t i = 0;
    for (; i < len && i < proto::token_header_len; ++i) {
      const char c = buf[i];
      const bool ok = i < proto::token_mark_len         ? c == proto::token_mark[i]
                      : i < proto::token_header_len - 1 ? proto::is_token_char(c)
                                                        : c == '\n';
      if (!ok) {
        header = false;
        return;
      }
    }
    if (i < proto::token_header_len) return;  // a prefix so far
    std::memcpy(token, buf + proto::token_mark_len, proto::token_len);
    header = false;
    off = proto::token_header_len;
  }

  void read_input() {
    const ssize_t n = ::read(0, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) {
      open = false;
      header = false;  // an incomplete header is input
    } else {
      len += static_cast<size_t>(n);
      if (header) check_header();
    }
    if (to < 0) off = len;  // nobody reads it any more: dropped
    settle();
  }

  void write_output() {
    const ssize_t n = ::write(to, buf + off, len - off);
    if (n > 0)
      off += static_cast<size_t>(n);
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
      stop();  // the function closed its stdin: the rest is dropped
    settle();
  }

  void stop() {
    if (to >= 0) ::close(to);
    to = -1;
    off = len;
  }

  void settle() {
    if (off == len && !header) off = len = 0;
    if (!open && off == len && to >= 0) {
      ::close(to);
      to = -1;
    }
  }
};

pid_t start_function(char** argv, int in[2], int out[2]) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::dup2(in[0], 0);
  ::dup2(out[1], 1);
  for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s : passed_on) ::sigaction(s, &dfl, nullptr);
  ::sigaction(SIGPIPE, &dfl, nullptr);  // ignored in the init; an ignored signal survives exec
  ::execvp(argv[0], argv);
  say("cannot run ", argv[0], ": ", std::strerror(errno));
  _exit(127);
}

// Starts the function (start_function), signals that came early passed on,
// and keeps the init's ends of the pipes; -1 when it cannot be started.
pid_t launch(char** argv, int in[2], int out[2]) {
  const pid_t pid = start_function(argv, in, out);
  if (pid < 0) {
    say("fork: ", std::strerror(errno));
    return -1;
  }
  child = pid;
  if (pending_signal) ::kill(pid, pending_signal);
  ::close(in[0]);
  ::close(out[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  return pid;
}

// Waits for the function to exit, reaping strays too (we are PID 1); false
// when there is nothing left to wait for.
bool reap(pid_t pid, int& status) {
  for (;;) {
    const pid_t w = ::waitpid(-1, &status, 0);
    if (w == pid) return true;
    if (w < 0 && errno != EINTR) return false;
  }
}

// Relays stdin and stdout until the function's output ends or it exits;
// true when it exited (status set).
bool run_function(pid_t pid, int from, stdin_relay& in, int& status) {
  for (;;) {
    // A negative fd is left out by poll: stdin while its data waits, a closed pipe.
    pollfd p[3] = {{from, POLLIN, 0}, {in.wants_input() ? 0 : -1, POLLIN, 0}, {in.to, 0, 0}};
    if (in.has_output()) p[2].events = POLLOUT;
    const int r = ::poll(p, 3, 50);
    if (r < 0 && errno != EINTR) return false;
    if (r > 0 && p[1].revents) in.read_input();
    if (r > 0 && p[2].revents) {
      if (p[2].revents & (POLLERR | POLLHUP))
        in.stop();
      else
        in.write_output();
    }
    if (r > 0 && p[0].revents && !relay(from, true)) return false;  // output ended
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      // Exited: take what is in the pipe and stop, even if something it
      // started keeps stdout open (as Docker would when PID 1 exits). What
      // the function wrote is at most a pipe's capacity (1 MiB at most);
      // more is something it started still writing.
      ::fcntl(from, F_SETFL, O_NONBLOCK);
      relay(from, false, 1 << 20);
      return true;
    }
  }
}

// A function that did not wait for its input may be done before the token
// arrived; it is on its way when the runner has a call for this container.
void await_token(stdin_relay& in) {
  in.stop();
  for (int waited = 0; in.header && in.open && waited < token_grace_ms; waited += 50) {
    pollfd p{0, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) in.read_input();
  }
}

// ---- hot mode ---------------------------------------------------------------
// A hot function serves call after call: the init keeps it running and lends
// the daemon its pipes. To each connection on a Unix socket (the daemon's,
// one at a time; a restarted daemon connects again) it sends the write end of
// the function's stdin and the read end of its stdout (SCM_RIGHTS), so the
// daemon writes calls and reads answers with no process in between, bytes
// unchanged. While nobody holds them, the container's own stdin and stdout
// are relayed instead: the daemon's fallback when it cannot reach the socket
// (Docker's attach).

struct hot_relay {
  int listener = -1;  // -1: no socket (it could not be made)
  int conn = -1;      // the connection the pipes are lent to
  int to = -1;        // the function's stdin (write end, non-blocking)
  int from = -1;      // the function's stdout (read end)
  bool stdin_open = true;
  char buf[65536];
  size_t off = 0, len = 0;

  bool lent() const { return conn >= 0; }
  void drop_conn() {
    if (conn >= 0) ::close(conn);
    conn = -1;
  }
  // The container's stdin, for the function (nobody holds the pipes).
  void read_input() {
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n > 0) {
      off = 0;
      len = static_cast<size_t>(n);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      stdin_open = false;  // nothing more from there; the function's stdin stays open
    }
  }
  void write_input() {
    const ssize_t n = ::write(to, buf + off, len - off);
    if (n > 0) off += static_cast<size_t>(n);
    if (n < 0 && errno != EAGAIN && errno != EINTR) off = len;  // it closed its stdin: dropped
    if (off == len) off = len = 0;
  }
  // The function's output to the container's stdout; false at its end.
  bool relay_output(bool block) {
    char out[65536];
    for (;;) {
      const ssize_t n = ::read(from, out, sizeof out);
      if (n < 0 && errno == EINTR) continue;
      // EAGAIN too when a daemon made the (shared) pipe non-blocking.
      if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      write_all(1, out, static_cast<size_t>(n));
      if (block) return true;
    }
  }
  // Takes a connection and lends it the pipes.
  void accept_one() {
    const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    proto::pipes_message m;
    cmsghdr* c0 = m.cmsg();
    c0->cmsg_level = SOL_SOCKET;
    c0->cmsg_type = SCM_RIGHTS;
    c0->cmsg_len = proto::pipes_message::fds_len;
    const int fds[2] = {to, from};
    std::memcpy(CMSG_DATA(c0), fds, sizeof fds);
    if (::sendmsg(c, &m.msg, MSG_NOSIGNAL) == 1)
      conn = c;
    else
      ::close(c);
  }
};

int listen_on(const char* path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof addr.sun_path) return -1;
  std::strcpy(addr.sun_path, path);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  ::unlink(path);
  // The daemon may run as another user; the directory around it is what
  // keeps others out (see functions/container.hpp).
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::chmod(path, 0666) != 0 || ::listen(fd, 4) != 0) {
    say("cannot listen on ", path, ": ", std::strerror(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

// Lends the pipes, or relays them while nobody holds them, until the
// function's output ends (seen only while relaying) or it exits; true when
// it exited.
bool run_hot(pid_t pid, hot_relay& r, int& status) {
  for (;;) {
    const bool idle = r.off == r.len;
    const bool relay = !r.lent();
    // A connection is taken only with no input half-written: its calls must
    // not be cut into by the container's stdin.
    pollfd p[4] = {{relay && idle && r.stdin_open ? 0 : -1, POLLIN, 0},
                   {relay && !idle ? r.to : -1, POLLOUT, 0},
                   {relay ? r.from : -1, POLLIN, 0},
                   {relay ? (idle ? r.listener : -1) : r.conn, POLLIN, 0}};
    const int n = ::poll(p, 4, 50);
    if (n < 0 && errno != EINTR) return false;
    if (n > 0 && p[0].revents) r.read_input();
    if (n > 0 && p[1].revents) r.write_input();
    if (n > 0 && p[2].revents && !r.relay_output(true)) return false;  // output ended
    if (n > 0 && p[3].revents) {
      if (relay) {
        r.accept_one();
      } else {
        char byte;  // the daemon sends nothing: readable means it went away
        const ssize_t got = ::recv(r.conn, &byte, 1, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) r.drop_conn();
      }
    }
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      if (!r.lent()) {
        ::fcntl(r.from, F_SETFL, O_NONBLOCK);  // what is left in the pipe, as run_function
        r.relay_output(false);
      }
      return true;
    }
  }
}

// dockscaler-fn-init --hot SOCKET -- COMMAND [ARGS...]
int hot_main(char** argv, int in[2], int out[2]) {
  hot_relay r;
  r.listener = listen_on(argv[2]);
  const pid_t pid = launch(argv + 4, in, out);
  if (pid < 0) return 127;
  r.to = in[1];
  r.from = out[0];
  int status = 0;
  bool exited = run_hot(pid, r, status);
  r.drop_conn();
  if (!exited) exited = reap(pid, status);
  return exited ? code_of(status) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // first: nothing of ours is readable by the function
  const bool hot = argc >= 5 && std::strcmp(argv[1], "--hot") == 0;
  if (hot ? std::strcmp(argv[3], "--") != 0 : argc < 3 || std::strcmp(argv[1], "--") != 0) {
    say("usage: dockscaler-fn-init [--hot SOCKET] -- COMMAND [ARGS...]");
    return 127;
  }
  struct sigaction sa {};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  for (int s : passed_on) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a function that closed its stdin is an EPIPE, not our end

  int in[2], out[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0) {
    say("pipe: ", std::strerror(errno));
    return 127;
  }
  if (hot) return hot_main(argv, in, out);
  const pid_t pid = launch(argv + 2, in, out);
  if (pid < 0) return 127;
  stdin_relay input;
  input.to = in[1];

  int status = 0;
  bool exited = run_function(pid, out[0], input, status);
  if (!exited) exited = reap(pid, status);
  const int code = exited ? code_of(status) : 1;
  if (input.header) await_token(input);
  if (input.token[0] == '\0') return code;  // no call's token: nobody to report to in-band
  char trailer[256];
  const int n =
      std::snprintf(trailer, sizeof trailer, "%s%s:%d\n", proto::trailer_mark, input.token, code);
  if (n > 0 && static_cast<size_t>(n) < sizeof trailer)
    write_all(1, trailer, static_cast<size_t>(n));
  return code;
}
