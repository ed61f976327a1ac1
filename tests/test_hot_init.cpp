// The init's hot mode (functions/init, --hot SOCKET) run directly, without
// Docker, with the daemon's end of its socket (functions/hot_socket): the
// function's stdin and stdout pipes lent to one connection at a time, the
// same process serving on across connections (adoption), the container's own
// stdio relayed while nobody holds them (the attach fallback), a listener
// that is not the expected process refused, the end of the function ending
// the stream, and SIGTERM passed on.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "functions/detail/hot_socket.hpp"

using namespace std::chrono_literals;
using dockscaler::functions::hot_socket;

namespace {

// The init in hot mode in front of `sh -c script`, its socket in a fresh
// directory, its own stdin and stdout as pipes of ours.
struct hot_init {
  std::filesystem::path dir, socket;
  pid_t pid = -1;
  int in = -1, out = -1;  // its stdin (ours to write), its stdout (ours to read)

  explicit hot_init(const std::string& script) {
    ::signal(SIGPIPE, SIG_IGN);
    char tmpl[] = "/tmp/dockscaler-hot-init.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    socket = dir / "fn.sock";
    int i[2], o[2];
    REQUIRE(::pipe(i) == 0);
    REQUIRE(::pipe(o) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(i[0], 0);
      ::dup2(o[1], 1);
      for (int fd : {i[0], i[1], o[0], o[1]}) ::close(fd);
      ::execl(DOCKSCALER_FN_INIT_BIN, "dockscaler-fn-init", "--hot", socket.c_str(), "--",
              "/bin/sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      ::_exit(126);
    }
    ::close(i[0]);
    ::close(o[1]);
    in = i[1];
    out = o[0];
  }
  ~hot_init() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(in);
    ::close(out);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  hot_socket connect() {
    std::string why;
    auto s = hot_socket::connect(socket.string(), pid, 10s, why);
    INFO(why);
    REQUIRE(s);
    return std::move(*s);
  }
  int wait_exit() {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

// Reads from `s` until `want` bytes arrived (or the stream ended).
std::string read_n(hot_socket& s, std::size_t want) {
  std::string got;
  while (got.size() < want) {
    const auto part = s.read();
    if (part.empty()) break;
    got += part;
  }
  return got;
}

std::string read_fd(int fd, std::size_t want) {
  std::string got;
  char buf[4096];
  while (got.size() < want) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// Numbers its input lines: the count goes on only in one and the same process.
const std::string numbered = "n=0; while read l; do n=$((n+1)); echo \"$n $l\"; done";

}  // namespace

TEST_CASE("hot init: calls over its socket, one connection after another, the same function",
          "[functions][init]") {
  hot_init init(numbered);
  {
    auto s = init.connect();
    s.write("a\nb\n");
    CHECK(read_n(s, 8) == "1 a\n2 b\n");
  }  // the daemon goes away (a restart): the function stays
  auto s = init.connect();
  s.write("c\n");
  CHECK(read_n(s, 4) == "3 c\n");
  // 1 MiB each way: relayed unchanged, however it is cut.
  const std::string line(1 << 20, 'z');
  s.write(line + "\n");
  CHECK(read_n(s, line.size() + 3) == "4 " + line + "\n");
}

TEST_CASE("hot init: with nobody connected its own stdin and stdout are relayed (the fallback)",
          "[functions][init]") {
  hot_init init(numbered);
  REQUIRE(::write(init.in, "x\n", 2) == 2);
  CHECK(read_fd(init.out, 4) == "1 x\n");
  auto s = init.connect();  // then a connection takes over
  s.write("y\n");
  CHECK(read_n(s, 4) == "2 y\n");
}

TEST_CASE("hot init: a listener that is not the expected process is refused", "[functions][init]") {
  hot_init init(numbered);
  init.connect();  // it listens
  std::string why;
  CHECK_FALSE(hot_socket::connect(init.socket.string(), init.pid + 1, 1s, why));
  CHECK(why.find("not the container's init") != std::string::npos);
  CHECK_FALSE(hot_socket::connect((init.dir / "none.sock").string(), init.pid, 0s, why));
}

TEST_CASE("hot init: the function's end ends the connection; SIGTERM is passed on",
          "[functions][init]") {
  {
    hot_init init("read l; echo \"bye $l\"; exit 3");
    auto s = init.connect();
    s.write("now\n");
    CHECK(read_n(s, 1000) == "bye now\n");  // then the end of the stream
    CHECK(init.wait_exit() == 3);
  }
  hot_init init("trap 'exit 42' TERM; while :; do sleep 0.05; done");
  auto s = init.connect();
  REQUIRE(::kill(init.pid, SIGTERM) == 0);
  CHECK(s.read().empty());
  CHECK(init.wait_exit() == 42);
}
