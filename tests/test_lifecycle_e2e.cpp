// The daemon's life cycle end to end, through the real `dockscaler serve` and
// the real engine, judged by what clients and the admin API saw: a reload
// (SIGHUP and POST /v1/reload) that changes `env` under load, a reload of a
// broken file, SIGTERM with requests in flight, exit 3 when Docker cannot be
// reached, and `--log-format json`. Helpers: test_lifecycle_support.hpp.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "test_lifecycle_support.hpp"

namespace {

using namespace dockscaler::test;
namespace admin = dockscaler::admin;

constexpr unsigned replicas = 3;

// A fixed count (the policy never moves it), containers greeting with `greeting`.
std::string fixed_service(const std::string& greeting) {
  return "    replicas: { min: 3, max: 3 }\n"
         "    drain_timeout: 30s\n"
         "    env: { GREETING: " +
         greeting + " }\n";
}

bool settled_at(const service_fixture& f, unsigned n) {
  const auto s = view_of(f);
  return s.ok && s.ready == n && s.desired == n && s.starting == 0 && s.draining == 0 &&
         s.outdated == 0;
}

// Starts the daemon and waits until `n` containers of `f` are ready.
void start_settled(service_fixture& f, daemon_process& d, unsigned n) {
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return settled_at(f, n); }, 120s));
}

bool none_of(const std::vector<std::string>& ids, const std::vector<std::string>& old) {
  return std::none_of(ids.begin(), ids.end(), [&](const std::string& id) {
    return std::find(old.begin(), old.end(), id) != old.end();
  });
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::size_t failed(const std::vector<load::result>& results) {
  return static_cast<std::size_t>(std::count_if(
      results.begin(), results.end(), [](const load::result& r) { return r.status != 200; }));
}

// Rewrites the config with GREETING `greeting`, runs `trigger` (a signal or an
// API call) under the running load `l`, and waits until every container was
// replaced by one with the new environment. Checks the whole replacement, as
// sampled from the admin API, kept `replicas` ready containers, and that the
// window was observed: samples inside it, some of them seeing outdated
// containers, and answers to the load.
void replace_under_load(service_fixture& f, daemon_process& d, load& l, const std::string& greeting,
                        const std::function<void()>& trigger) {
  const auto old = f.containers();
  REQUIRE(old.size() == replicas);
  d.write_config(f.config(fixed_service(greeting)));
  service_sampler sampler(f.admin_socket, f.name);
  const auto from = steady::now();
  trigger();
  REQUIRE(eventually(
      [&] {
        try {
          const auto now = f.containers();
          return now.size() == replicas && none_of(now, old) && settled_at(f, replicas);
        } catch (const api::error&) {
          return false;  // an engine too busy to answer in time: ask again
        }
      },
      180s));
  const auto to = steady::now();
  sampler.stop();
  for (const auto& id : f.containers()) {
    const auto env = f.docker.inspect_container(id).env;
    CHECK(std::find(env.begin(), env.end(), "GREETING=" + greeting) != env.end());
  }
  CHECK(http_get(f.port, "/fn/").body.rfind(greeting + " from ", 0) == 0);

  std::size_t inside = 0, saw_outdated = 0, lowest = replicas;
  for (const auto& s : sampler.samples()) {
    if (s.at < from || s.at > to) continue;
    ++inside;
    CHECK(s.ok);
    lowest = std::min<std::size_t>(lowest, s.ready);
    saw_outdated += s.outdated > 0;
  }
  INFO(inside << " samples in the replacement, " << saw_outdated << " with outdated containers");
  REQUIRE(inside >= 10);
  REQUIRE(saw_outdated >= 3);
  CHECK(lowest == replicas);  // never fewer ready than desired
  std::size_t answered = 0;
  for (const auto& r : l.results()) answered += r.at >= from && r.at <= to;
  REQUIRE(answered >= 20);  // the load was running through the replacement
}

}  // namespace

TEST_CASE(
    "a reload that changes env replaces every container under load: none fails, ready never "
    "below desired",
    "[e2e][docker][reload]") {
  service_fixture f("envswap");
  daemon_process d("envswap", f.config(fixed_service("one")));
  start_settled(f, d, replicas);
  CHECK(http_get(f.port, "/fn/").body.rfind("one from ", 0) == 0);

  load l(f.port, "/fn/x?delay=20", 4);
  REQUIRE(eventually([&] { return l.results().size() >= 20; }));
  replace_under_load(f, d, l, "two", [&] { d.kill(SIGHUP); });
  replace_under_load(f, d, l, "three", [&] {
    const auto r = admin::request(f.admin_socket, "POST", "/v1/reload");
    CHECK(r.status == 200);
  });
  l.stop();
  const auto results = l.results();
  INFO(d.log());
  CHECK(failed(results) == 0);  // no non-2xx, no socket error, no cut answer
  CHECK(count_of(d.log(), "container spec changed; replacing 3 container(s) rolling") == 2);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE(
    "a reload of a broken file changes nothing: the old config keeps serving, the error is "
    "reported",
    "[e2e][docker][reload][errors]") {
  service_fixture f("broken");
  const std::string good = f.config("    replicas: { min: 2, max: 2 }\n");
  daemon_process d("broken", good);
  start_settled(f, d, 2);
  const auto before = f.containers();
  load l(f.port, "/fn/x?delay=20", 4);
  REQUIRE(eventually([&] { return l.results().size() >= 20; }));

  // Each broken file with the location its error must name (line 9 is the
  // service's replicas line, see service_fixture::config).
  const std::string path = d.config_path();
  const std::vector<std::pair<std::string, std::string>> broken = {
      {good + "    env: [a, b]]\n", path + ":10:16: illegal flow end"},    // YAML syntax
      {f.config("    replicas: { min: 3, max: 1 }\n"), path + ":9:15: "},  // min > max
  };
  for (const auto& [yaml, where] : broken) {
    INFO(yaml);
    d.write_config(yaml);
    const auto refusals = count_of(d.log(), "reload refused; still running the previous config");
    d.kill(SIGHUP);
    REQUIRE(eventually([&] {
      return count_of(d.log(), "reload refused; still running the previous config") > refusals;
    }));
    CHECK(d.log().find("config: " + where) != std::string::npos);
    const auto r = admin::request(f.admin_socket, "POST", "/v1/reload");
    CHECK(r.status == 400);
    const std::string message = admin::error_message(r);
    CHECK(message.rfind("reload refused, still running the previous config:", 0) == 0);
    CHECK(message.find("\n" + where) != std::string::npos);
    // Both refusals are complete (logged, answered): nothing was applied.
    CHECK(f.containers() == before);
    CHECK(settled_at(f, 2));
    CHECK(admin::request(f.admin_socket, "GET", "/healthz").status == 200);
  }
  // Still serving through all of it, and still reloading.
  const auto n = l.results().size();
  REQUIRE(eventually([&] { return l.results().size() >= n + 20; }));
  l.stop();
  CHECK(failed(l.results()) == 0);
  d.write_config(good);
  CHECK(admin::request(f.admin_socket, "POST", "/v1/reload").status == 200);
  CHECK(f.containers() == before);
  INFO(d.log());
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("SIGTERM with requests in flight: each completes, new connections are refused, exit 0",
          "[e2e][docker][signals]") {
  service_fixture f("term");
  daemon_process d("term", f.config("    replicas: { min: 2, max: 2 }\n"));
  start_settled(f, d, 2);

  // Four 5-second requests, one slot each on the two containers.
  constexpr int slow = 4;
  std::vector<response> answers(slow);
  std::atomic<int> finished{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < slow; ++i)
    clients.emplace_back([&, i] {
      answers[i] = http_get(f.port, "/fn/slow?delay=5000", 60s);
      ++finished;
    });
  // In flight: the proxy has handed every one of them to a container.
  REQUIRE(eventually([&] { return view_of(f).in_flight == slow; }));
  d.kill(SIGTERM);
  // The listener closes at once, while the slow requests are still running.
  REQUIRE(eventually([&] {
    const int fd = connect_loopback(f.port, 2s);
    if (fd >= 0) ::close(fd);
    return fd < 0;
  }));
  CHECK(finished == 0);
  for (auto& c : clients) c.join();
  for (const auto& a : answers) {
    CHECK(a.status == 200);
    CHECK(a.body.rfind("hello from ", 0) == 0);
  }
  CHECK(d.wait() == 0);
  const auto log = d.log();
  INFO(log);
  CHECK(log.find("SIGTERM: stopping; finishing requests in flight") != std::string::npos);
  CHECK(log.find("stopped; containers left running for the next start") != std::string::npos);
  CHECK(f.containers().size() == 2);
}

namespace {

// `config` with docker.host set to `host`.
std::string with_docker_host(std::string config, const std::string& host) {
  const std::string key = "docker: { ";
  REQUIRE(config.rfind(key, 0) == 0);
  return config.insert(key.size(), "host: \"" + host + "\", ");
}

}  // namespace

TEST_CASE(
    "Docker unreachable: serve exits 3 with one line naming the address; so do the commands "
    "that use Docker directly",
    "[e2e][docker][errors]") {
  service_fixture f("nodocker");
  const std::string config = f.config("    replicas: { min: 1, max: 1 }\n");
  daemon_process d("nodocker", config);
  const std::string dir = d.dir();
  const std::string nowhere = "unix://" + dir + "/no-docker.sock";
  const std::map<std::string, std::string> env = {{"DOCKER_HOST", nowhere}};

  // DOCKER_HOST, which docker.host defaults to.
  auto r = run_dockscaler({"serve", "-c", d.config_path()}, dir, env);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.out.empty());
  CHECK(lines_of(r.err).size() == 1);
  CHECK(r.err.find(" error ") != std::string::npos);
  CHECK(r.err.find("cannot reach Docker at " + nowhere + ": ") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(f.admin_socket));  // stopped before the admin API
  CHECK(f.containers(true).empty());

  // docker.host in the file wins over DOCKER_HOST.
  const std::string other = "unix://" + dir + "/no-docker-either.sock";
  d.write_config(with_docker_host(config, other));
  r = run_dockscaler({"serve", "-c", d.config_path()}, dir,
                     {{"DOCKER_HOST", "unix:///var/run/docker.sock"}});
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(lines_of(r.err).size() == 1);
  CHECK(r.err.find("cannot reach Docker at " + other + ": ") != std::string::npos);

  // The commands that talk to Docker themselves: the same exit code, one line.
  d.write_config(config);
  r = run_dockscaler({"logs", f.name}, dir, env);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(lines_of(r.err).size() == 1);
  CHECK(r.err.rfind("dockscaler: cannot reach Docker: ", 0) == 0);
  CHECK(r.err.find("(DOCKER_HOST " + nowhere + ")") != std::string::npos);
  r = run_dockscaler({"--admin", "unix://" + f.admin_socket, "scale", f.name + "=1", "--direct",
                      "-c", d.config_path()},
                     dir, env);
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(lines_of(r.err).size() == 1);
  CHECK(r.err.find("(docker.host " + nowhere + ")") != std::string::npos);
  r = run_dockscaler({"--admin", "unix://" + f.admin_socket, "version"}, dir, env);
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK(r.out.rfind("dockscaler 0.1.0 ", 0) == 0);
  CHECK(r.err.find("dockscaler: Docker: ") != std::string::npos);
  CHECK(r.err.find(dir + "/no-docker.sock") != std::string::npos);
}

namespace {

struct log_entry {
  std::string level, msg;
  std::map<std::string, std::string> fields;  // a structured event's, numbers as text
};

// Every line of `text` is one JSON object with the documented fields (time,
// level, msg: strings; time in ISO 8601 with milliseconds and offset); scale
// and container events (docs/operations.md) add fields of their own, strings,
// whole numbers or flags.
std::vector<log_entry> json_log(const std::string& text) {
  static const std::regex time_format(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d)");
  static const std::set<std::string> levels = {"trace", "debug", "info",
                                               "warn",  "error", "critical"};
  std::vector<log_entry> out;
  for (const auto& line : lines_of(text)) {
    INFO(line);
    rapidjson::Document d;
    d.Parse(line.c_str(), line.size());
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d.IsObject());
    for (const char* key : {"time", "level", "msg"})
      REQUIRE((d.HasMember(key) && d[key].IsString()));
    CHECK(std::regex_match(d["time"].GetString(), time_format));
    CHECK(levels.count(d["level"].GetString()) == 1);
    log_entry e{d["level"].GetString(), d["msg"].GetString(), {}};
    for (const auto& m : d.GetObject()) {
      const std::string key = m.name.GetString();
      if (key == "time" || key == "level" || key == "msg") continue;
      REQUIRE((m.value.IsString() || m.value.IsUint64() || m.value.IsBool()));
      e.fields[key] = m.value.IsString() ? m.value.GetString()
                      : m.value.IsBool() ? (m.value.GetBool() ? "true" : "false")
                                         : std::to_string(m.value.GetUint64());
    }
    out.push_back(std::move(e));
  }
  REQUIRE_FALSE(out.empty());
  return out;
}

// The first event named `msg` whose fields include `with`, or nullptr.
const log_entry* event(const std::vector<log_entry>& log, const std::string& msg,
                       const std::map<std::string, std::string>& with) {
  for (const auto& e : log) {
    if (e.msg != msg) continue;
    if (std::all_of(with.begin(), with.end(), [&](const auto& kv) {
          auto it = e.fields.find(kv.first);
          return it != e.fields.end() && it->second == kv.second;
        }))
      return &e;
  }
  return nullptr;
}

bool logged(const std::vector<log_entry>& log, const std::string& level, const std::string& part) {
  return std::any_of(log.begin(), log.end(), [&](const log_entry& e) {
    return e.level == level && e.msg.find(part) != std::string::npos;
  });
}

}  // namespace

TEST_CASE(
    "--log-format json: every line the daemon writes is a JSON object with time, level, msg; "
    "container events with fields",
    "[e2e][docker][logs]") {
  service_fixture f("json");
  const std::string good = f.config("    replicas: { min: 1, max: 1 }\n");
  const std::string bad = f.config("    replicas: { min: 3, max: 1 }\n");
  daemon_process d("json", bad);
  const std::string dir = d.dir();
  const std::vector<std::string> args = {"--log-format", "json", "--log-level",  "debug",
                                         "serve",        "-c",   d.config_path()};

  // A bad file at start: its problems are log lines like any other.
  auto r = run_dockscaler(args, dir);
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  auto log = json_log(r.err);
  CHECK(logged(log, "error", d.config_path() + ":9:15: "));
  CHECK(logged(log, "error", "not starting: 1 problem in " + d.config_path()));

  // A whole life: start, serve, a refused reload, SIGTERM.
  d.write_config(good);
  const std::string out = dir + "/json.out", err = dir + "/json.err";
  std::vector<std::string> argv = {DOCKSCALER_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  child_process p(argv, out, err);
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return settled_at(f, 1); }, 120s));
  CHECK(http_get(f.port, "/fn/").status == 200);
  // A second daemon of the same instance: an error whose message quotes.
  r = run_dockscaler(args, dir);
  CHECK(r.code == 1);
  CHECK(logged(json_log(r.err), "error", "instance \"default\" is already running"));
  d.write_config(bad);
  p.signal(SIGHUP);
  REQUIRE(eventually([&] { return read_file(err).find("reload refused") != std::string::npos; }));
  p.signal(SIGTERM);
  CHECK(p.wait_exit() == 0);
  CHECK(read_file(out).empty());
  INFO(read_file(err));
  log = json_log(read_file(err));
  CHECK(logged(log, "info", "Docker at "));
  CHECK(logged(log, "info", "proxy listening on 127.0.0.1:" + std::to_string(f.port)));
  // Container events carry their figures as fields, not inside msg.
  const log_entry* started = event(log, "container started", {{"service", f.name}});
  REQUIRE(started != nullptr);
  CHECK(started->level == "debug");
  CHECK(started->fields.at("container").rfind("dockscaler-" + f.name + "-", 0) == 0);
  const log_entry* ready =
      event(log, "container ready",
            {{"service", f.name}, {"container", started->fields.at("container")}});
  REQUIRE(ready != nullptr);
  CHECK(ready->level == "info");
  CHECK(ready->fields.count("address") == 1);
  CHECK_FALSE(logged(log, "debug", f.name + ": started container "));
  CHECK(logged(log, "error", "config: " + d.config_path() + ":9:15: "));
  CHECK(logged(log, "error", "reload refused; still running the previous config"));
  CHECK(logged(log, "info", "SIGTERM: stopping; finishing requests in flight"));
}
