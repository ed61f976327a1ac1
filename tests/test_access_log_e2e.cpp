// The access log of `dockscaler serve` end to end, on the real Docker engine:
// every line parsed as JSON with the fields docs/proxy.md promises, a file
// that cannot be opened stopping the start, and rotation by SIGUSR1 (as
// logrotate does it) under a steady load losing no line.
#include <catch2/catch.hpp>

#include <regex>

#include "test_daemon_support.hpp"

using namespace dockscaler::test;

namespace {

// The fixture's config with proxy.access_log `log` added (and what follows it
// in the proxy's mapping).
std::string with_access_log(const service_fixture& f, const std::string& service_body,
                            const std::string& log) {
  std::string cfg = f.config(service_body);
  const auto at = cfg.find(" }\nadmin:");
  REQUIRE(at != std::string::npos);
  cfg.insert(at, ", access_log: " + log);
  return cfg;
}

// Every line of the file, parsed; fails the test on one that is not a JSON object.
std::vector<rapidjson::Document> parse_all(const std::string& path) {
  std::vector<rapidjson::Document> out;
  std::istringstream in(read_file(path));
  for (std::string l; std::getline(in, l);) {
    rapidjson::Document d;
    d.Parse(l.c_str(), l.size());
    INFO(l);
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d.IsObject());
    out.push_back(std::move(d));
  }
  return out;
}

std::string str(const rapidjson::Value& d, const char* key) {
  REQUIRE(d.HasMember(key));
  REQUIRE(d[key].IsString());
  return d[key].GetString();
}

const rapidjson::Document* find_target(const std::vector<rapidjson::Document>& all,
                                       const std::string& target) {
  for (const auto& d : all)
    if (d.HasMember("target") && str(d, "target") == target) return &d;
  return nullptr;
}

}  // namespace

TEST_CASE("access log: one JSON line per request with its fields", "[e2e][docker]") {
  service_fixture f("alog");
  const std::string file = "/tmp/dockscaler-e2e-" + run_id() + "/alog-access.log";
  ::unlink(file.c_str());
  daemon_process d("alog",
                   with_access_log(f, "    replicas: { min: 1, max: 1 }\n",
                                   "{ path: " + file + ", format: json }, max_body_bytes: 1k"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));
  const std::string headers = "User-Agent: e2e \"agent\"\r\nReferer: https://r.example/\r\n";
  for (int i = 0; i < 5; ++i)
    REQUIRE(http_request(f.port, "GET", "/fn/hello?i=" + std::to_string(i), {}, headers).status ==
            200);
  CHECK(http_request(f.port, "POST", "/fn/upload", std::string(4096, 'x')).status == 413);
  CHECK(http_get(f.port, "/nowhere").status == 404);
  const auto ids = f.containers();
  d.kill(SIGTERM);
  REQUIRE(d.wait() == 0);  // every line is written by the time it exits

  const auto all = parse_all(file);
  const std::regex rfc3339(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$)");
  for (const auto& l : all) {
    CHECK(std::regex_match(str(l, "time"), rfc3339));
    CHECK(str(l, "client") == "127.0.0.1");
    CHECK(l["duration"].GetDouble() >= 0);
    CHECK(l["wait_time"].GetDouble() >= 0);
  }
  const auto* ok = find_target(all, "/fn/hello?i=3");
  REQUIRE(ok);
  CHECK(str(*ok, "method") == "GET");
  CHECK((*ok)["status"].GetUint() == 200);
  CHECK((*ok)["upstream_status"].GetUint() == 200);
  CHECK((*ok)["bytes_in"].GetUint64() == 0);
  CHECK((*ok)["bytes_out"].GetUint64() > 0);
  CHECK(str(*ok, "service") == f.name);
  CHECK(str(*ok, "user_agent") == "e2e \"agent\"");
  CHECK(str(*ok, "referer") == "https://r.example/");
  CHECK_FALSE(ok->HasMember("refused"));
  // The backend is named by its container (Docker's short id).
  REQUIRE(ids.size() == 1);
  CHECK(str(*ok, "backend") == ids[0].substr(0, 12));

  const auto* big = find_target(all, "/fn/upload");
  REQUIRE(big);
  CHECK((*big)["status"].GetUint() == 413);
  CHECK(str(*big, "refused") == "body_too_large");
  CHECK((*big)["upstream_status"].GetUint() == 0);

  const auto* none = find_target(all, "/nowhere");
  REQUIRE(none);
  CHECK((*none)["status"].GetUint() == 404);
  CHECK(str(*none, "refused") == "no_route");
  CHECK(str(*none, "service").empty());
}

TEST_CASE("access log: a file that cannot be opened stops the start, naming it",
          "[e2e][docker][errors]") {
  service_fixture f("alogbad");
  const std::string file = "/tmp/dockscaler-e2e-" + run_id() + "/no-such-dir/access.log";
  daemon_process d("alogbad", with_access_log(f, "", "{ path: " + file + " }"));
  d.start();
  CHECK(d.wait() == 1);
  const auto log = d.log();
  INFO(log);
  CHECK(log.find("cannot open access log " + file) != std::string::npos);
  CHECK(f.containers(true).empty());
}

TEST_CASE("access log: rotation by SIGUSR1 (and by a reload) under load loses no line",
          "[e2e][docker]") {
  service_fixture f("alogrot");
  const std::string dir = "/tmp/dockscaler-e2e-" + run_id();
  const std::string file = dir + "/alogrot-access.log";
  for (int i = 0; i <= 5; ++i) ::unlink((file + (i ? "." + std::to_string(i) : "")).c_str());
  daemon_process d("alogrot", with_access_log(f, "    replicas: { min: 1, max: 1 }\n",
                                              "{ path: " + file + " }"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));
  load l(f.port, "/fn/rot", 3, {.keep_alive = true});
  for (int i = 1; i <= 5; ++i) {
    const std::size_t before = l.results().size();
    REQUIRE(eventually([&] { return l.results().size() >= before + 20; }));
    // logrotate's way: move the file, then tell the daemon (postrotate);
    // the last time by a reload, which reopens it too.
    REQUIRE(::rename(file.c_str(), (file + "." + std::to_string(i)).c_str()) == 0);
    d.kill(i == 5 ? SIGHUP : SIGUSR1);
    REQUIRE(eventually([&] { return ::access(file.c_str(), F_OK) == 0; }));  // reopened
  }
  const std::size_t before = l.results().size();
  REQUIRE(eventually([&] { return l.results().size() >= before + 20; }));
  l.stop();
  d.kill(SIGTERM);
  REQUIRE(d.wait() == 0);
  const auto t = l.count();
  INFO(t.failures);
  CHECK(t.socket_errors == 0);
  std::size_t logged = 0, files_with_lines = 0;
  for (int i = 0; i <= 5; ++i) {
    std::size_t n = 0;
    for (const auto& doc : parse_all(file + (i ? "." + std::to_string(i) : "")))
      n += str(doc, "target") == "/fn/rot";
    logged += n;
    files_with_lines += n > 0;
  }
  CHECK(logged == t.ok + t.non_2xx);  // every answered request, once
  CHECK(files_with_lines >= 5);       // the load really spanned the rotations
}
