// Unit tests of what a stdio function sees of its call (environment) and what
// the client sees of its run (answers), and of the stdio container spec.
#include <catch2/catch.hpp>

#include "functions/call_env.hpp"
#include "functions/container.hpp"
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
  CHECK(scaler::function_route(s) == "/api/hello");
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
  const auto spec = scaler::make_container_spec(s, "net", "h", "n");
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

// Docker's default json-file driver never rotates: a chatty container would
// fill the disk. Every container dockscaler creates (replicas, stdio calls,
// `scale --direct`) comes from make_container_spec, so it is checked here.
TEST_CASE("containers rotate their logs as docker.logs says; a change replaces them",
          "[functions][logs]") {
  for (auto s : {stdio_service(), config::service_config{}}) {
    auto spec = scaler::make_container_spec(s, "net", "h", "n");
    REQUIRE(spec.logging);
    CHECK(spec.logging->type == "json-file");
    CHECK(spec.logging->options ==
          std::map<std::string, std::string>{{"max-size", "10485760"}, {"max-file", "3"}});
    auto other = s;
    other.logs.max_files = 5;
    other.logs.max_size_bytes = 1024;
    spec = scaler::make_container_spec(other, "net", "h", "n");
    CHECK(spec.logging->options ==
          std::map<std::string, std::string>{{"max-size", "1024"}, {"max-file", "5"}});
    CHECK(scaler::spec_hash(s, "net") != scaler::spec_hash(other, "net"));
  }
}

TEST_CASE("the init's trailer ends the output and carries the exit code", "[functions]") {
  const std::string tok = "0123456789abcdef0123456789abcdef";
  std::string out =
      "Hello World!\n\x1e"
      "dockscaler-exit:" +
      tok + ":0\n";
  CHECK(take_exit_trailer(out, tok) == 0);
  CHECK(out == "Hello World!\n");

  out =
      "partial\x1e"
      "dockscaler-exit:" +
      tok + ":137\n";
  CHECK(take_exit_trailer(out, tok) == 137);
  CHECK(out == "partial");

  out =
      "\x1e"
      "dockscaler-exit:" +
      tok + ":3\n";  // no output at all
  CHECK(take_exit_trailer(out, tok) == 3);
  CHECK(out.empty());
}

TEST_CASE("output that only looks like a trailer is left alone", "[functions]") {
  const std::string tok = "0123456789abcdef0123456789abcdef";
  const std::string other = "ffffffffffffffffffffffffffffffff";
  for (std::string out : {
           std::string("no trailer\n"),
           "\x1e"
           "dockscaler-exit:" +
               other + ":0\n",  // another container's token
           "\x1e"
           "dockscaler-exit:" +
               tok + ":0",  // not complete yet
           "\x1e"
           "dockscaler-exit:" +
               tok + ":0\nmore\n",  // not at the end
           "\x1e"
           "dockscaler-exit:" +
               tok + ":x\n",  // not a number
           "\x1e"
           "dockscaler-exit:" +
               tok + ":1234\n",  // not an exit code
           "\x1e"
           "dockscaler-exit:" +
               tok.substr(1) + ":0\n",  // a shorter token
       }) {
    const std::string before = out;
    CHECK_FALSE(take_exit_trailer(out, tok));
    CHECK(out == before);
  }
  std::string out =
      "x\x1e"
      "dockscaler-exit:" +
      tok + ":0\n";
  CHECK_FALSE(take_exit_trailer(out, ""));  // no init: no trailer expected
}
