// functions::runner, a stdio call's life, against a scripted fake Docker
// daemon (no engine): the requests of a cold call (create with the call's
// environment, attach before start, the exit code from wait; with the init:
// the token first on stdin, the exit code from its trailer) and of a call on
// a pre-warmed container; each way a call ends as the client sees it (200,
// exit code 502, over max_output_bytes 502, timeout 504 while reading, Docker
// errors 502 with the daemon's message, unknown service 503, shutdown 503);
// and that its container is removed and its slot released in every case;
// that max_concurrency calls run at once on its bounded pool.
// The attach stream is played by the fake: it takes stdin to its end, then
// writes what the test's function "prints" and closes (the function exited)
// or stays open until the runner removes the container.
#include "functions/runner.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>

#include "functions/container.hpp"
#include "functions/init/protocol.hpp"
#include "tests/test_fake_daemon.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler;
using namespace dockscaler::functions;
using dockscaler::test::fake_daemon;
using dockscaler::test::scripted_daemon;
using namespace std::chrono_literals;

namespace {

// What the fake's container does when called.
struct behaviour {
  std::string out, err;      // printed, then it exits (unless `hang`)
  int exit_code = 0;         // what wait reports
  bool hang = false;         // prints, then never exits (until removed)
  std::size_t flood = 0;     // prints this many bytes first (and hangs)
  bool running = true;       // a pre-warmed one: still running when inspected
  std::string create_error;  // create answers 404 with this
  std::string start_error;   // start answers 500 with this
  std::string attach_error;  // attach answers 404 with this
  // >= 0: the image has a command, so the runner puts the init in front of
  // it; the init ends the output with a trailer carrying this exit code.
  int trailer_code = -1;
};

// A Docker stream frame: stream kind, three zero bytes, big-endian size.
std::string frame(int kind, const std::string& payload) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(kind);
  const auto n = static_cast<std::uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<char>((n >> (8 * (3 - i))) & 0xff);
  return h + payload;
}

std::string error_reply(int status, const std::string& message) {
  return fake_daemon::reply(status, R"({"message":")" + message + R"("})");
}

class function_daemon {
 public:
  behaviour b;  // set before a call

  dockerapi::client& client() { return d_.client(); }
  scripted_daemon& log() { return d_; }
  std::string stdin_seen() {
    std::lock_guard lock(mu_);
    return stdin_;
  }
  int removes(const std::string& id) { return d_.count("DELETE /containers/" + id + "?force=1"); }

 private:
  std::string route(int fd, const std::string& line) {
    if (line.rfind("GET /images/", 0) == 0)
      return fake_daemon::reply(
          200, b.trailer_code >= 0
                   ? R"({"Id":"sha256:1","Config":{"Entrypoint":["/fn"],"Cmd":["run"]}})"
                   : R"({"Id":"sha256:1","Config":{}})");
    if (line.rfind("PUT /containers/", 0) == 0) return fake_daemon::reply(200, "");
    if (line.rfind("POST /containers/create", 0) == 0)
      return b.create_error.empty() ? fake_daemon::reply(201, R"({"Id":"fn1"})")
                                    : error_reply(404, b.create_error);
    const auto id =
        line.substr(line.find("/containers/") + 12, line.find('/', line.find("/containers/") + 12) -
                                                        line.find("/containers/") - 12);
    if (line.find("/attach?") != std::string::npos) {
      if (!b.attach_error.empty()) return error_reply(404, b.attach_error);
      play(fd, id);
      return {};
    }
    if (line.find("/start") != std::string::npos)
      return b.start_error.empty() ? fake_daemon::reply(204, "") : error_reply(500, b.start_error);
    if (line.find("/wait?") != std::string::npos)
      return fake_daemon::reply(200, R"({"StatusCode":)" + std::to_string(b.exit_code) + "}");
    if (line.rfind("GET /containers/", 0) == 0)
      return fake_daemon::reply(200, std::string(R"({"Id":")") + id + R"(","State":{"Running":)" +
                                         (b.running ? "true" : "false") +
                                         R"(},"Config":{"Labels":{}}})");
    if (line.rfind("DELETE /containers/", 0) == 0) return fake_daemon::reply(204, "");
    return error_reply(500, "unexpected " + line);
  }

  // The attach stream: stdin to its end, then the container's output.
  void play(int fd, const std::string& id) {
    fake_daemon::send(fd,
                      "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                      "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0) return;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      std::lock_guard lock(mu_);
      stdin_.append(buf, static_cast<std::size_t>(n));
    }
    if (b.flood) fake_daemon::send(fd, frame(1, std::string(b.flood, 'x')));
    if (!b.err.empty()) fake_daemon::send(fd, frame(2, b.err));
    if (!b.out.empty()) fake_daemon::send(fd, frame(1, b.out));
    if (b.trailer_code >= 0) fake_daemon::send(fd, frame(1, trailer()));
    if (!b.hang && !b.flood) return;
    // Runs on until removed, or until the runner drops the stream (both
    // directions shut: POLLHUP; its half-close of stdin is only POLLRDHUP).
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (removes(id) == 0 && std::chrono::steady_clock::now() < until) {
      pollfd p{fd, 0, 0};
      if (::poll(&p, 1, 20) > 0 && (p.revents & (POLLHUP | POLLERR))) return;
    }
  }

  // The init's trailer for the token the runner sent first on stdin.
  std::string trailer() {
    namespace proto = functions::protocol;
    const std::string in = stdin_seen();
    if (in.rfind(proto::token_mark, 0) != 0 || in.size() < proto::token_header_len)
      return "no token";
    return proto::trailer_mark + in.substr(proto::token_mark_len, proto::token_len) + ":" +
           std::to_string(b.trailer_code) + "\n";
  }

  std::mutex mu_;
  std::string stdin_;
  scripted_daemon d_{
      [this](int fd, const std::string& line, const std::string&) { return route(fd, line); }};
};

// What the client of one call got: its answer(s) and the release of its slot.
class outcome {
 public:
  lb::function_callbacks callbacks() {
    return {[this](lb::function_result r) {
              if (answers_++ == 0) answer_.set_value(std::move(r));
            },
            [this] { released_.set_value(); },
            {}};
  }
  lb::function_result answer() {
    auto f = answer_.get_future();
    REQUIRE(f.wait_for(30s) == std::future_status::ready);
    return f.get();
  }
  bool released() { return released_.get_future().wait_for(30s) == std::future_status::ready; }
  int answers() const { return answers_; }

 private:
  std::promise<lb::function_result> answer_;
  std::promise<void> released_;
  std::atomic<int> answers_{0};
};

config::service_config fn_service() {
  config::service_config s;
  s.name = "fn";
  s.image = "img:1";
  s.mode = config::service_mode::stdio;
  s.route.path_prefix = "/fn";
  s.security.read_only =
      true;  // no init (it cannot be copied in): the stream's end and wait's code
  s.call_timeout = 20s;
  s.content_type = "text/plain";
  return s;
}

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

bool eventually(const std::function<bool()>& cond) { return lbtest::eventually(cond, 30s); }

// The container's removal is sent off the request path: wait for it.
bool eventually_removed(function_daemon& d, const std::string& id) {
  return eventually([&] { return d.removes(id) >= 1; });
}

lb::function_call a_call(std::string body = "hello") {
  lb::function_call c;
  c.method = "POST";
  c.target = "/fn/x";
  c.host = "fn.test";
  c.body = std::move(body);
  return c;
}

}  // namespace

TEST_CASE("a cold call: created with its environment, attached before start, answered, removed",
          "[runner]") {
  function_daemon d;
  d.b.out = "HELLO\n";
  d.b.err = "a line for the log\n";
  outcome o;
  {
    runner r(d.client(), {"callnet", {}});
    r.set_service(fn_service());
    r.cold("fn")->call(a_call("hello"), o.callbacks());
    const auto res = o.answer();
    CHECK(res.status == 200);
    CHECK(res.body == "HELLO\n");
    REQUIRE(o.released());
    CHECK(eventually_removed(d, "fn1"));
  }
  CHECK(o.answers() == 1);
  CHECK(d.stdin_seen() == "hello");
  const auto lines = d.log().lines();
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0].rfind("POST /containers/create?name=dockscaler-fn-call-", 0) == 0);
  CHECK(lines[1].rfind("POST /containers/fn1/attach?stream=1&stdin=1&stdout=1&stderr=1", 0) == 0);
  CHECK(lines[2] == "POST /containers/fn1/start");
  CHECK(lines[3] == "POST /containers/fn1/wait?condition=not-running");
  const auto body = d.log().body_of("POST /containers/create");
  CHECK(has(body, R"("METHOD=POST")"));
  CHECK(has(body, R"("REQUEST_URL=http://fn.test/fn/x")"));
  CHECK(has(body, R"("dockscaler.role":"call")"));
  CHECK(has(body, R"("dockscaler.network":"callnet")"));
}

TEST_CASE("a call's exit code other than 0 is a 502 with the code", "[runner]") {
  function_daemon d;
  d.b.out = "partial";
  d.b.exit_code = 3;
  outcome o;
  runner r(d.client(), {});
  r.set_service(fn_service());
  r.cold("fn")->call(a_call(), o.callbacks());
  const auto res = o.answer();
  CHECK(res.status == 502);
  CHECK(res.body == "{\"message\":\"function fn exited with code 3\"}\n");
  CHECK(o.released());
  CHECK(eventually_removed(d, "fn1"));
}

TEST_CASE("with the init, the call's token goes first on stdin and its trailer gives the exit code",
          "[runner]") {
  function_daemon d;
  d.b.out = "output of the function\n";
  d.b.trailer_code = 4;
  d.b.exit_code = 0;  // what wait would say: the trailer's code must win, with no wait
  auto svc = fn_service();
  svc.security.read_only = false;  // the init can be copied in
  outcome o;
  runner r(d.client(), {});
  r.set_service(svc);
  r.cold("fn")->call(a_call("body"), o.callbacks());
  const auto res = o.answer();
  CHECK(res.status == 502);
  CHECK(res.body == "{\"message\":\"function fn exited with code 4\"}\n");
  CHECK(o.released());
  CHECK(eventually_removed(d, "fn1"));
  CHECK(d.log().count("POST /containers/fn1/wait") == 0);
  // The image's command behind the init, which is copied in before anything runs.
  const auto body = d.log().body_of("POST /containers/create");
  CHECK(has(body, std::string(R"("Entrypoint":[")") + init_path + R"("])"));
  CHECK(has(body, R"("Cmd":["--","/fn","run"])"));
  CHECK(has(body, std::string(R"(")") + label_init + R"(":")" + label_init_stdin_token + R"(")"));
  const auto lines = d.log().lines();
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0] == "GET /images/img%3A1/json");
  CHECK(lines[2].rfind("PUT /containers/fn1/archive?path=", 0) == 0);
  CHECK(lines[3].rfind("POST /containers/fn1/attach?", 0) == 0);
  // A fresh token, then the body: the init takes the first line off.
  const auto in = d.stdin_seen();
  namespace proto = functions::protocol;
  REQUIRE(in.size() == proto::token_header_len + 4);
  CHECK(in.rfind(proto::token_mark, 0) == 0);
  CHECK(in.substr(proto::token_header_len) == "body");
}

TEST_CASE("a call over max_output_bytes is answered 502 and its container killed",
          "[runner][errors]") {
  function_daemon d;
  d.b.flood = 4096;  // and it never exits by itself
  auto svc = fn_service();
  svc.max_output_bytes = 1000;
  outcome o;
  runner r(d.client(), {});
  r.set_service(svc);
  r.cold("fn")->call(a_call(), o.callbacks());
  const auto res = o.answer();
  CHECK(res.status == 502);
  CHECK(has(res.body, "max_output_bytes"));
  CHECK(o.released());
  CHECK(eventually_removed(d, "fn1"));
  CHECK(d.log().count("POST /containers/fn1/wait") == 0);  // killed, not waited for
}

TEST_CASE("a call still running at its timeout is answered 504 and its container killed",
          "[runner][errors]") {
  function_daemon d;
  d.b.out = "started...";
  d.b.hang = true;
  auto svc = fn_service();
  svc.call_timeout = 300ms;
  outcome o;
  runner r(d.client(), {});
  r.set_service(svc);
  r.cold("fn")->call(a_call(), o.callbacks());
  const auto res = o.answer();
  CHECK(res.status == 504);
  CHECK(o.released());
  CHECK(eventually_removed(d, "fn1"));
  CHECK(o.answers() == 1);  // the run and its timer never both answer
}

TEST_CASE("Docker errors setting up a call are 502s with the daemon's message",
          "[runner][errors]") {
  function_daemon d;
  std::atomic<int> docker_errors{0};
  runner r(d.client(), {{}, [&] { ++docker_errors; }});
  r.set_service(fn_service());
  const bool at_create =
      GENERATE(true, false);  // refused at create (nothing to remove), or at start
  INFO((at_create ? "create" : "start") << " refused");
  const std::string message = at_create ? "No such image: img:1" : "OCI runtime create failed";
  (at_create ? d.b.create_error : d.b.start_error) = message;
  outcome o;
  r.cold("fn")->call(a_call(), o.callbacks());
  const auto res = o.answer();
  CHECK(res.status == 502);
  CHECK(has(res.body, "function fn could not run: "));
  CHECK(has(res.body, message));
  CHECK(o.released());
  if (d.b.start_error.empty())
    CHECK(d.log().count("DELETE ") == 0);
  else
    CHECK(eventually_removed(d, "fn1"));
  CHECK(docker_errors == 1);
}

TEST_CASE("a pre-warmed call attaches with the logs, inspects, and removes the container",
          "[runner]") {
  function_daemon d;
  d.b.out = "warm answer";
  outcome o;
  runner r(d.client(), {});
  r.set_service(fn_service());
  r.warm("fn", "w1")->call(a_call("in"), o.callbacks());
  const auto res = o.answer();
  CHECK(res.status == 200);
  CHECK(res.body == "warm answer");
  CHECK(o.released());
  CHECK(eventually_removed(d, "w1"));
  const auto lines = d.log().lines();
  CHECK(d.log().count("POST /containers/create") == 0);
  CHECK(d.log().count("POST /containers/w1/start") == 0);
  REQUIRE(lines.size() >= 2);
  CHECK(lines[0].rfind("POST /containers/w1/attach?", 0) == 0);
  CHECK(has(lines[0], "logs=1"));
  CHECK(lines[1] == "GET /containers/w1/json");
}

TEST_CASE("a pre-warmed container that is gone or exited is not started: another takes the call",
          "[runner][errors]") {
  function_daemon d;
  runner r(d.client(), {});
  r.set_service(fn_service());
  const bool exited = GENERATE(true, false);  // exited before its call, or gone (attach refused)
  INFO((exited ? "exited" : "gone"));
  if (exited)
    d.b.running = false;
  else
    d.b.attach_error = "No such container: w1";
  outcome o;
  r.warm("fn", "w1")->call(a_call(), o.callbacks());
  CHECK(o.answer().not_started);
  CHECK(o.released());
  CHECK(eventually_removed(d, "w1"));
}

TEST_CASE("a call of an unknown service is 503 at once; a pre-warmed one's container goes",
          "[runner][errors]") {
  function_daemon d;
  outcome cold, warm;
  {
    runner r(d.client(), {});
    r.set_service(fn_service());
    r.remove_service("fn");
    r.cold("fn")->call(a_call(), cold.callbacks());
    r.warm("fn", "w9")->call(a_call(), warm.callbacks());
    CHECK(cold.answer().status == 503);
    CHECK(warm.answer().status == 503);
    CHECK(cold.released());
    CHECK(warm.released());
  }  // the runner waits for its threads: the kill has been sent
  CHECK(d.removes("w9") == 1);
  CHECK(d.log().count("POST /containers/create") == 0);
}

TEST_CASE("a client that goes away mid-call gets its container killed", "[runner]") {
  function_daemon d;
  d.b.hang = true;
  outcome o;
  runner r(d.client(), {});
  r.set_service(fn_service());
  auto cancel = r.cold("fn")->call(a_call(), o.callbacks());
  REQUIRE(cancel);
  REQUIRE(eventually([&] { return d.stdin_seen() == "hello"; }));  // it runs
  CHECK(r.calls_in_progress() == 1);
  cancel();
  cancel();  // at most once matters to the proxy; twice must be harmless
  CHECK(o.released());
  CHECK(eventually_removed(d, "fn1"));
  CHECK(o.answers() == 1);
  REQUIRE(eventually([&] { return r.calls_in_progress() == 0; }));
}

TEST_CASE("shutdown kills the calls in progress, answers them 503 and refuses new ones",
          "[runner]") {
  function_daemon d;
  d.b.hang = true;
  outcome o, late;
  runner r(d.client(), {});
  r.set_service(fn_service());
  r.cold("fn")->call(a_call(), o.callbacks());
  REQUIRE(eventually([&] { return d.stdin_seen() == "hello"; }));
  r.shutdown();  // returns once every call removed its container
  CHECK(d.removes("fn1") >= 1);
  CHECK(r.calls_in_progress() == 0);
  const auto res = o.answer();
  CHECK(res.status == 503);
  CHECK(has(res.body, "stopping"));
  CHECK(o.released());
  r.cold("fn")->call(a_call(), late.callbacks());
  CHECK(late.answer().status == 503);
  CHECK(d.log().count("POST /containers/create") == 1);
}

// The runner's calls share a bounded pool: up to max_concurrency calls of a
// service must run at once (the proxy lets that many through), none waiting
// for a thread. Three calls that never end are all set up and attached.
TEST_CASE("max_concurrency calls of a service run at once on the runner's pool", "[runner]") {
  function_daemon d;
  d.b.hang = true;
  outcome a, b, c;
  runner r(d.client(), {});
  auto svc = fn_service();
  svc.max_concurrency = 3;
  r.set_service(svc);
  for (auto* o : {&a, &b, &c}) r.cold("fn")->call(a_call(), o->callbacks());
  REQUIRE(eventually([&] { return d.log().count("POST /containers/fn1/attach") == 3; }));
  CHECK(d.removes("fn1") == 0);  // none of them ended first: all three ran at once
  CHECK(r.calls_in_progress() == 3);
  r.shutdown();  // kills them: all three answered 503, their slots released
  for (auto* o : {&a, &b, &c}) {
    CHECK(o->answer().status == 503);
    CHECK(o->released());
  }
}
