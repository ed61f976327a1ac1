// Unit tests of what a stdio function sees of its call (environment) and what
// the client sees of its run (answers), and of the stdio container spec.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>
#include <tuple>
#include <vector>

#include "functions/call_output.hpp"
#include "functions/container.hpp"
#include "functions/detail/call_env.hpp"
#include "functions/runner.hpp"
#include "scaler/container_spec.hpp"

using namespace dockscaler;
using namespace dockscaler::functions;

namespace {

config::service_config stdio_service() {
  config::service_config s;
  s.name = "hello";
  s.image = "dockscaler/hello-stdio";
  s.mode = config::service_mode::stdio;
  s.app = "myapp";
  s.route.path_prefix = "/r/myapp/hello";
  s.env = {{"GREETING", "hi"}, {"HEADER_X_FIXED", "from config"}};
  s.content_type = "application/json";
  s.call_timeout = std::chrono::seconds(3);
  return s;
}

lb::function_call a_call() {
  lb::function_call c;
  c.method = "POST";
  c.target = "/r/myapp/hello?x=1";
  c.host = "fn.example:8080";
  c.headers = {{"Content-Type", "application/json"},
               {"X-Trace", "a"},
               {"x-trace", "b"},
               {"X-Fixed", "from client"}};
  return c;
}

}  // namespace

TEST_CASE("header names become IronFunctions' HEADER_ variables", "[functions]") {
  CHECK(header_env_name("Content-Type") == "HEADER_CONTENT_TYPE");
  CHECK(header_env_name("x-request.id") == "HEADER_X_REQUEST_ID");
  CHECK(header_env_name("Accept") == "HEADER_ACCEPT");
}

TEST_CASE("a cold call's environment: config, app, route, method, URL and headers", "[functions]") {
  const auto env = call_env(stdio_service(), a_call());
  CHECK(env.at("GREETING") == "hi");
  CHECK(env.at("APP_NAME") == "myapp");
  CHECK(env.at("ROUTE") == "/hello");
  CHECK(env.at("METHOD") == "POST");
  CHECK(env.at("REQUEST_URL") == "http://fn.example:8080/r/myapp/hello?x=1");
  CHECK(env.at("HEADER_CONTENT_TYPE") == "application/json");
  CHECK(env.at("HEADER_X_TRACE") == "a, b");         // repeated headers joined
  CHECK(env.at("HEADER_X_FIXED") == "from config");  // a client never overrides the config
}

TEST_CASE("ROUTE is the route's prefix when the service has its own route", "[functions]") {
  auto s = stdio_service();
  s.route.path_prefix = "/api/hello";
  CHECK(call_env(s, a_call()).at("ROUTE") == "/api/hello");
  CHECK(function_route(s) == "/api/hello");
}

TEST_CASE("each way a run ends has its answer", "[functions]") {
  const auto s = stdio_service();
  run_end ok;
  ok.stdout_data = "Hello World!\n";
  auto r = answer(s, ok);
  CHECK(r.status == 200);
  CHECK(r.body == "Hello World!\n");
  REQUIRE(r.headers.size() == 1);
  CHECK(r.headers[0].second == "application/json");

  run_end failed;
  failed.exit_code = 3;
  r = answer(s, failed);
  CHECK(r.status == 502);
  CHECK(r.body == "{\"message\":\"function hello exited with code 3\"}\n");
  CHECK(r.headers[0].second == "application/json");

  run_end slow;
  slow.how = run_end::kind::timed_out;
  r = answer(s, slow);
  CHECK(r.status == 504);
  CHECK(r.body.find("within 3s") != std::string::npos);

  run_end broken;
  broken.how = run_end::kind::failed;
  broken.error = "No such image: \"x\"";
  r = answer(s, broken);
  CHECK(r.status == 502);
  CHECK(
      r.body ==
      "{\"message\":\"function hello could not run: No such image: \\\"x\\\"\"}\n");  // JSON-escaped

  run_end big;
  big.how = run_end::kind::output_too_large;
  CHECK(answer(s, big).status == 502);
}

TEST_CASE("a stdio container waits on stdin and knows its app and route, not a port",
          "[functions]") {
  const auto s = stdio_service();
  const auto spec = function_container_spec(s, "net", "h", "n");
  CHECK(spec.open_stdin);
  CHECK(spec.stdin_once);
  CHECK(spec.attach_stdin);
  CHECK(spec.attach_stdout);
  CHECK(spec.attach_stderr);
  CHECK(spec.env.at("APP_NAME") == "myapp");
  CHECK(spec.env.at("ROUTE") == "/hello");
  CHECK(spec.env.count("PORT") == 0);
  CHECK(spec.exposed_ports.empty());
  CHECK(spec.no_new_privileges);
  // The app is in the environment, so it is in the hash; http hashes are unchanged by it.
  auto other = s;
  other.app = "other";
  CHECK(scaler::spec_hash(s, "net") != scaler::spec_hash(other, "net"));
}

// The other kind on the same base: what the stdio one adds, it does not.
TEST_CASE("an HTTP replica is told its PORT and exposes it, and never waits on stdin",
          "[functions]") {
  config::service_config s;
  s.port = 9090;
  const auto spec = scaler::make_container_spec(s, "net", "h", "n");
  CHECK(spec.env.at("PORT") == "9090");
  CHECK(spec.exposed_ports == std::vector<std::uint16_t>{9090});
  CHECK_FALSE(spec.open_stdin);
  CHECK_FALSE(spec.attach_stdin);
  CHECK(spec.env.count("APP_NAME") == 0);
  CHECK(spec.env.count("ROUTE") == 0);
  // Its route does not shape it: moving the route never restarts its containers.
  auto other = s;
  other.route.path_prefix = "/elsewhere";
  CHECK(scaler::spec_hash(s, "net") == scaler::spec_hash(other, "net"));
}

// Docker's default json-file driver never rotates: a chatty container would
// fill the disk. Every container dockscaler creates (replicas, stdio calls,
// `scale --direct`) comes from base_container_spec, so it is checked here
// through both kinds built on it.
TEST_CASE("containers rotate their logs as docker.logs says; a change replaces them",
          "[functions][logs]") {
  for (auto s : {stdio_service(), config::service_config{}}) {
    const auto make = s.mode == config::service_mode::stdio ? function_container_spec
                                                            : scaler::make_container_spec;
    auto spec = make(s, "net", "h", "n");
    REQUIRE(spec.logging);
    CHECK(spec.logging->type == "json-file");
    CHECK(spec.logging->options ==
          std::map<std::string, std::string>{{"max-size", "10485760"}, {"max-file", "3"}});
    auto other = s;
    other.logs.max_files = 5;
    other.logs.max_size_bytes = 1024;
    spec = make(other, "net", "h", "n");
    CHECK(spec.logging->options ==
          std::map<std::string, std::string>{{"max-size", "1024"}, {"max-file", "5"}});
    CHECK(scaler::spec_hash(s, "net") != scaler::spec_hash(other, "net"));
  }
}

namespace {

const std::string tok = "0123456789abcdef0123456789abcdef";

// Feeds `out` to a call_output in pieces of `step` bytes; the last status.
call_output::status feed(call_output& o, std::string_view out, std::size_t step) {
  auto st = call_output::status::more;
  for (std::size_t at = 0; at < out.size(); at += step) st = o.add(out.substr(at, step));
  return st;
}

}  // namespace

TEST_CASE("the init's trailer ends the output and carries the exit code", "[functions]") {
  for (const auto& [out, code, rest] : std::vector<std::tuple<std::string, int, std::string>>{
           {"Hello World!\n" + exit_trailer(tok, 0), 0, "Hello World!\n"},
           {"partial" + exit_trailer(tok, 137), 137, "partial"},
           {exit_trailer(tok, 3), 3, ""},  // no output at all
           {"\x1e"
            "dockscaler-exit:fake\n" +
                exit_trailer(tok, 1),
            1,
            "\x1e"
            "dockscaler-exit:fake\n"},  // a function's fake mark before the real one
       }) {
    // However the output is cut, down to a byte at a time (the trailer split anywhere).
    for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, out.size()}) {
      INFO("step " << step);
      call_output o(tok, 1024);
      CHECK(feed(o, out, step) == call_output::status::exited);
      CHECK(o.exit_code() == code);
      CHECK(o.take() == rest);
    }
  }
  CHECK(exit_trailer(tok, 0) ==
        "\x1e"
        "dockscaler-exit:" +
            tok + ":0\n");
  CHECK(token_header(tok) ==
        "\x1e"
        "dockscaler-token:" +
            tok + "\n");
}

TEST_CASE("output that only looks like a trailer is left alone", "[functions]") {
  const std::string other = "ffffffffffffffffffffffffffffffff";
  const std::string mark =
      "\x1e"
      "dockscaler-exit:";
  for (const std::string& out : {
           std::string("no trailer\n"), exit_trailer(other, 0),  // another call's token
           mark + tok + ":0",                                    // not complete yet
           mark + tok + ":x\n",                                  // not a number
           mark + tok + ":1234\n",                               // not an exit code
           mark + tok + ":\n",                                   // no code
           mark + tok.substr(1) + ":0\n",                        // a shorter token
       }) {
    call_output o(tok, 1024);
    CHECK(feed(o, out, 1) == call_output::status::more);
    CHECK(o.take() == out);
  }
  // Something after it in the same piece: not the init's (it writes the trailer last).
  const std::string after = exit_trailer(tok, 0) + "more\n";
  call_output o(tok, 1024);
  CHECK(o.add(after) == call_output::status::more);
  CHECK(o.take() == after);
  call_output no_init("", 1024);  // no init: no trailer expected, the output is all of it
  const std::string out = "x" + exit_trailer(tok, 0);
  CHECK(no_init.add(out) == call_output::status::more);
  CHECK(no_init.take() == out);
}

TEST_CASE("output over max_output_bytes is too large, with room for the trailer behind it",
          "[functions]") {
  const std::string max(100, 'a');
  call_output exact(tok, 100);
  CHECK(feed(exact, max + exit_trailer(tok, 0), 3) == call_output::status::exited);
  CHECK(exact.take() == max);

  call_output over(tok, 100);
  CHECK(feed(over, max + "b" + exit_trailer(tok, 0), 1) == call_output::status::too_large);
  call_output endless(tok, 100);
  CHECK(feed(endless, std::string(1000, 'y'), 10) == call_output::status::too_large);
  CHECK(endless.add(exit_trailer(tok, 0)) == call_output::status::too_large);  // stays so

  call_output no_init("", 100);
  CHECK(no_init.add(max) == call_output::status::more);
  CHECK(no_init.add("b") == call_output::status::too_large);
}

TEST_CASE("a function writing line after line without end costs linear time, not quadratic",
          "[functions]") {
  // 4 MiB in 8-byte lines, each its own piece: half a million pieces that
  // each end in a newline. Rescanning everything at every newline (as the
  // first trailer search did) is ~10^12 byte comparisons; a bounded window is
  // ~10^7.
  call_output o(tok, 8u << 20);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < (1 << 19); ++i) REQUIRE(o.add("yyyyyyy\n") == call_output::status::more);
  // Lines that almost are a trailer cost no more.
  for (int i = 0; i < 4096; ++i)
    REQUIRE(o.add("\x1e"
                  "dockscaler-exit:" +
                  tok.substr(0, 31) + ":0\n") == call_output::status::more);
  CHECK(o.add(exit_trailer(tok, 9)) == call_output::status::exited);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK(o.exit_code() == 9);
  CHECK(o.take().size() == (4u << 20) + 4096 * 51);
}

TEST_CASE("a fresh token per call: hex, the protocol's length, never the same", "[functions]") {
  const auto a = new_token(), b = new_token();
  CHECK(a.size() == 32);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

namespace {

struct init_run {
  std::string out;
  int code = -1;
};

// Runs the init (not as PID 1, without Docker) in front of `sh -c script`,
// feeds it `input` after `delay`, and collects its stdout and exit code.
init_run run_init(const std::string& script, const std::string& input,
                  std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
  ::signal(SIGPIPE, SIG_IGN);  // an init that is done before all input was written
  int in[2], out[2];
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    ::execl(DOCKSCALER_FN_INIT_BIN, "dockscaler-fn-init", "--", "/bin/sh", "-c", script.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(126);
  }
  ::close(in[0]);
  ::close(out[1]);
  std::thread writer([&] {
    std::this_thread::sleep_for(delay);  // the input arriving late is the case under test
    for (std::size_t off = 0; off < input.size();) {
      const ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(in[1]);
  });
  init_run r;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  writer.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST_CASE("the init takes the token off stdin, passes the rest on and reports the exit with it",
          "[functions][init]") {
  auto r = run_init("cat", token_header(tok) + "hello\nworld");
  CHECK(r.out == "hello\nworld" + exit_trailer(tok, 0));
  CHECK(r.code == 0);

  r = run_init("cat; exit 7", token_header(tok) + "x");
  CHECK(r.out == "x" + exit_trailer(tok, 7));
  CHECK(r.code == 7);

  // The function sees neither the token nor the init's argv with one.
  r = run_init("cat >/dev/null; cat /proc/$PPID/cmdline | tr '\\0' ' '; env",
               token_header(tok) + "input");
  const std::string trailer = exit_trailer(tok, 0);
  REQUIRE(r.out.size() > trailer.size());
  CHECK(r.out.substr(r.out.size() - trailer.size()) == trailer);
  const std::string seen = r.out.substr(0, r.out.size() - trailer.size());
  CHECK(seen.find("/bin/sh") != std::string::npos);  // it did read the init's argv
  CHECK(seen.find(tok) == std::string::npos);
  CHECK(seen.find("dockscaler-token") == std::string::npos);

  // 1 MiB through both pipes, the token split from the body by nothing.
  const std::string big(1 << 20, 'z');
  r = run_init("cat", token_header(tok) + big);
  CHECK(r.out == big + exit_trailer(tok, 0));
}

TEST_CASE("without a token the init passes everything on and adds no trailer",
          "[functions][init]") {
  auto r = run_init("cat; exit 4", "plain input\n");
  CHECK(r.out == "plain input\n");
  CHECK(r.code == 4);
  // Something that starts like a header but is not one is input too.
  const std::string almost = std::string("\x1e") + "dockscaler-token:XYZ\n";
  r = run_init("cat", almost);
  CHECK(r.out == almost);
}

TEST_CASE("a function done before its call's token arrived still has its exit reported",
          "[functions][init]") {
  // It did not wait for its input (a pre-warmed container's function that
  // ignores stdin, or a cold one faster than the runner's first write).
  const auto r =
      run_init("echo early; exit 5", token_header(tok) + "unread", std::chrono::milliseconds(200));
  CHECK(r.out == "early\n" + exit_trailer(tok, 5));
  CHECK(r.code == 5);
}

namespace {

// A Docker daemon stuck in every request: connections are taken (the
// listen backlog), requests never answered.
class stuck_daemon {
 public:
  stuck_daemon() : path_("/tmp/dockscaler-stuck-" + std::to_string(::getpid()) + ".sock") {
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
  }
  ~stuck_daemon() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::string host() const { return "unix://" + path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("a call gets 504 at its timeout even while Docker is stuck setting it up",
          "[functions][runner]") {
  stuck_daemon stuck;
  dockerapi::client_options o;
  o.host = stuck.host();
  o.api_version = "1.41";
  o.idle_timeout = o.request_timeout = std::chrono::seconds(3);
  dockerapi::client docker(o);
  std::promise<lb::function_result> answered;
  std::promise<void> released;
  {
    runner r(docker, {});
    auto s = stdio_service();
    s.call_timeout = std::chrono::milliseconds(500);
    r.set_service(s);
    const auto t0 = std::chrono::steady_clock::now();
    r.cold(s.name)->call(a_call(), {[&](lb::function_result res) { answered.set_value(res); },
                                    [&] { released.set_value(); },
                                    {}});
    auto answer = answered.get_future();
    REQUIRE(answer.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1500));
    CHECK(answer.get().status == 504);
    // The run gives up when Docker's request does (its own timeout), answers
    // nobody twice, and frees the slot.
    CHECK(released.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  }
}
