// The operator's surface end to end: the real `dockscaler` CLI binary against
// a running daemon on the real engine (scale, status, ps, autoscale, hold,
// logs, version, reload, the error paths), `scale --direct` without a daemon
// and the adoption that follows, /metrics under load (checked with promtool
// when it is installed), and sd_notify through a fake NOTIFY_SOCKET.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>
#include <sys/un.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "admin/client.hpp"
#include "test_daemon_support.hpp"
#include "test_tls_support.hpp"

namespace {

using namespace dockscaler::test;
namespace admin = dockscaler::admin;

struct cli_result {
  int code = -1;
  std::string out, err;
};

// Runs the CLI with `--admin unix://<socket>` before `args` (none for an
// empty `socket`); stdout and stderr apart. `prefix` wraps the command (e.g.
// "timeout 3").
cli_result cli(const std::string& socket, const std::string& args, const std::string& prefix = {}) {
  static int n = 0;
  const std::string base = "/tmp/dockscaler-cli-" + run_id() + "-" + std::to_string(++n);
  const std::string admin = socket.empty() ? std::string() : " --admin unix://" + socket;
  const std::string cmd =
      prefix + " " + DOCKSCALER_BIN + admin + " " + args + " >" + base + ".out 2>" + base + ".err";
  const int status = std::system(cmd.c_str());
  cli_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

rapidjson::Document json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

unsigned field(const rapidjson::Value& v, const char* key) {
  auto m = v.FindMember(key);
  return m != v.MemberEnd() && m->value.IsUint() ? m->value.GetUint() : 9999;
}

// `status SERVICE -o json` read back, or an empty document on failure.
struct service_view {
  unsigned ready = 0, starting = 0, draining = 0, desired = 0;
  bool autoscale = false, held = false;
  bool ok = false;
};
service_view status_of(const service_fixture& f) {
  const auto r = cli(f.admin_socket, "status " + f.name + " -o json");
  service_view v;
  if (r.code != 0) return v;
  rapidjson::Document d;
  d.Parse(r.out.c_str(), r.out.size());
  if (d.HasParseError() || !d.IsObject()) return v;
  v.ok = true;
  v.ready = field(d, "ready");
  v.starting = field(d, "starting");
  v.draining = field(d, "draining");
  v.desired = field(d, "desired");
  v.autoscale = d["autoscale"].GetBool();
  v.held = d["hold_left_seconds"].IsNumber();
  return v;
}

bool settled_at(const service_fixture& f, unsigned n) {
  const auto v = status_of(f);
  return v.ok && v.ready == n && v.starting == 0 && v.draining == 0 && v.desired == n;
}

std::string find_promtool() {
  if (const char* p = std::getenv("PROMTOOL"); p && *p) return p;
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"})
    if (::access((std::string(dir) + "/promtool").c_str(), X_OK) == 0)
      return std::string(dir) + "/promtool";
  return {};
}

// A sample's value in a scrape, or -1 when absent.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

// Hello-http scales fast and is idle in these tests: without a hold, the
// policy takes a service back to min within a few seconds.
const char* quick_policy =
    "    replicas: { min: 1, max: 4, initial: 1 }\n"
    "    scale_up: { wait_time_above: 500ms, for: 1s, step: 1, cooldown: 1s }\n"
    "    scale_down: { wait_time_below: 5ms, for: 2s, step: 4, cooldown: 1s }\n"
    "    wait_time: { stat: p95, window: 2s }\n"
    "    drain_timeout: 5s\n";

// `ctl` as a second service of `f`'s daemon (after f.config's), with `body`.
// The scaler evaluates services in name order, and `ctl`'s name extends
// `f`'s: in every round, `f` is decided on before `ctl`.
std::string control_service(const service_fixture& ctl, const std::string& body) {
  return "  " + ctl.name + ":\n    image: " + image() +
         "\n    route: { path_prefix: /ctl, strip_prefix: true }\n"
         "    readiness: { http_get: /healthz, timeout: 20s }\n" +
         body;
}

bool desired_at(const service_fixture& f, unsigned n) {
  const auto v = status_of(f);
  return v.ok && v.desired == n;
}

}  // namespace

TEST_CASE("CLI against a daemon: scale, status, ps, hold, autoscale, metrics, errors",
          "[e2e][docker][cli]") {
  service_fixture f("ops");
  // The control: the same idle service and policy, never held or switched
  // off. When the policy takes it down, it had its chance to take `f` down too.
  service_fixture ctl("ops-ctl");
  const std::uint16_t metrics_port = free_port();
  daemon_process d("ops", f.config(quick_policy, "metrics: { listen: 127.0.0.1:" +
                                                     std::to_string(metrics_port) + " }\n") +
                              control_service(ctl, quick_policy));
  d.start();
  REQUIRE(f.proxy_up());
  INFO(d.log());
  REQUIRE(eventually([&] { return settled_at(f, 1); }, 60s));

  // scale hello=3 --hold 10m -> three ready containers, status says so, and
  // the idle service stays at 3 while the policy takes the control (scaled
  // to 3 after it, without a hold) back to 1. The hold outlasts the test.
  auto r = cli(f.admin_socket, "scale " + f.name + "=3 --hold 10m");
  CHECK(r.code == 0);
  CHECK(r.out.find(f.name + ": desired 3") != std::string::npos);
  CHECK(r.out.find("paused for 10m") != std::string::npos);
  REQUIRE(cli(f.admin_socket, "scale " + ctl.name + "=3").code == 0);
  REQUIRE(eventually(
      [&] { return d.log().find(ctl.name + ": scale down 3 -> 1") != std::string::npos; }, 60s));
  {
    const auto v = status_of(f);
    CHECK((v.ok && v.desired == 3 && v.held));
  }
  REQUIRE(eventually([&] { return f.containers().size() == 3 && settled_at(f, 3); }, 60s));
  {
    r = cli(f.admin_socket, "status -o json");
    REQUIRE(r.code == 0);
    auto doc = json(r.out);
    bool found = false;
    for (const auto& s : doc["services"].GetArray())
      if (s["name"].GetString() == f.name) {
        found = true;
        CHECK(s["ready"].GetUint() == 3);
        CHECK(s["containers"].GetArray().Size() == 3);
        CHECK(s["hold_left_seconds"].IsNumber());
      }
    CHECK(found);
    CHECK(std::string(doc["docker_api_version"].GetString()).rfind("1.", 0) == 0);
  }
  // Tables: one row per service / container, aligned under their headers.
  r = cli(f.admin_socket, "status");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("SERVICE", 0) == 0);
  CHECK(r.out.find("WAIT-P95") != std::string::npos);
  CHECK(r.out.find("\n" + f.name + " ") != std::string::npos);
  CHECK(r.out.find(" held ") != std::string::npos);
  r = cli(f.admin_socket, "ps " + f.name);
  CHECK(r.code == 0);
  std::size_t rows = 0;
  for (std::size_t at = 0; (at = r.out.find("dockscaler-" + f.name + "-", at)) != std::string::npos;
       ++at)
    ++rows;
  CHECK(rows == 3);
  CHECK(r.out.find(" ready ") != std::string::npos);
  r = cli(f.admin_socket, "ps -o json");
  CHECK(r.code == 0);
  CHECK(json(r.out).GetArray().Size() >= 3);
  CHECK(desired_at(f, 3));
  // A short hold replaces the long one; after it, autoscaling resumes and
  // takes the idle service back to min.
  r = cli(f.admin_socket, "scale " + f.name + "=3 --hold 2s");
  CHECK(r.code == 0);
  REQUIRE(eventually([&] { return settled_at(f, 1) && f.containers().size() == 1; }, 60s));
  CHECK(d.log().find(f.name + ": hold over") != std::string::npos);
  CHECK(d.log().find(f.name + ": scale down 3 -> 1") != std::string::npos);

  // autoscale off: a manual count stays; on: the policy takes over again.
  // Off during a hold ends the hold: status says off, not held.
  REQUIRE(cli(f.admin_socket, "scale " + f.name + "=1 --hold 10m").code == 0);
  r = cli(f.admin_socket, "autoscale " + f.name + " off");
  CHECK(r.code == 0);
  CHECK(r.out == f.name + ": autoscaling off\n");
  {
    const auto v = status_of(f);
    CHECK((v.ok && !v.autoscale && !v.held));
    r = cli(f.admin_socket, "status " + f.name);
    CHECK(r.out.find(" off ") != std::string::npos);
    CHECK(r.out.find(" held ") == std::string::npos);
  }
  CHECK(cli(f.admin_socket, "scale " + f.name + "=2").code == 0);
  REQUIRE(cli(f.admin_socket, "scale " + ctl.name + "=2").code == 0);
  REQUIRE(eventually(
      [&] { return d.log().find(ctl.name + ": scale down 2 -> 1") != std::string::npos; }, 60s));
  {
    const auto v = status_of(f);
    CHECK((v.ok && v.desired == 2 && !v.autoscale));
  }
  REQUIRE(eventually([&] { return settled_at(f, 2); }, 60s));
  CHECK(cli(f.admin_socket, "autoscale " + f.name + " on").code == 0);
  REQUIRE(eventually([&] { return settled_at(f, 1); }, 60s));

  // Error paths: unknown service 404 -> exit 1; a count the daemon refuses
  // (400) -> exit 1; a malformed one never leaves the CLI -> exit 2.
  r = cli(f.admin_socket, "status nope-" + run_id());
  CHECK(r.code == 1);
  CHECK(r.err == "dockscaler: no such service: nope-" + run_id() + "\n");
  CHECK(cli(f.admin_socket, "scale nope-" + run_id() + "=1").code == 1);
  CHECK(cli(f.admin_socket, "autoscale nope-" + run_id() + " on").code == 1);
  r = cli(f.admin_socket, "scale " + f.name + "=99");
  CHECK(r.code == 1);
  CHECK(r.err.find("above replicas.max") != std::string::npos);
  // The daemon logs the refusal as such, not as a scale it did not do.
  CHECK(eventually([&] {
    return d.log().find(f.name + ": admin API: scale to 99 refused: replicas 99 is above") !=
           std::string::npos;
  }));
  CHECK(d.log().find(f.name + ": admin API: scale to 99\n") == std::string::npos);
  CHECK(cli(f.admin_socket, "scale " + f.name + "=-1").code == 2);
  CHECK(cli(f.admin_socket, "scale " + f.name + "=2 --hold soon").code == 2);
  CHECK(cli(f.admin_socket, "autoscale " + f.name + " maybe").code == 2);
  // The API itself: the same refusals with their status codes.
  const std::string target = "/v1/services/" + f.name + "/scale";
  auto a = admin::request(f.admin_socket, "POST", target, R"({"replicas":-1})");
  CHECK(a.status == 400);
  a = admin::request(f.admin_socket, "POST", "/v1/services/nope/scale", R"({"replicas":1})");
  CHECK(a.status == 404);
  CHECK(admin::error_message(a) == "no such service: nope");
  CHECK(settled_at(f, 1));  // none of that changed anything

  // version names the daemon and its Docker API version.
  r = cli(f.admin_socket, "version");
  CHECK(r.code == 0);
  CHECK(r.out.find("daemon: dockscaler 0.1.0 (admin API v1), Docker API 1.") != std::string::npos);

  // /metrics over TCP: counters move under load; the scrape parses.
  auto scrape = [&] {
    auto res = http_get(metrics_port, "/metrics");
    REQUIRE(res.status == 200);
    return res.body;
  };
  const std::string code200 = "dockscaler_requests_total{service=\"" + f.name + "\",code=\"200\"}";
  const double before = std::max(0.0, sample(scrape(), code200));
  for (int i = 0; i < 40; ++i) REQUIRE(http_get(f.port, "/fn/").status == 200);
  {
    load l(f.port, "/fn/x?delay=20", 4);
    REQUIRE(eventually([&] { return l.results().size() >= 40; }));
  }
  const std::string text = scrape();
  INFO(text);
  CHECK(sample(text, code200) >= before + 80);
  CHECK(sample(text, "dockscaler_wait_time_seconds_count{service=\"" + f.name + "\"}") >= 80);
  CHECK(sample(text, "dockscaler_request_duration_seconds_count{service=\"" + f.name + "\"}") >=
        80);
  CHECK(sample(text, "dockscaler_replicas{service=\"" + f.name + "\",state=\"ready\"}") >= 1);
  CHECK(sample(text, "dockscaler_replicas_desired{service=\"" + f.name + "\"}") >= 1);
  CHECK(sample(text, "dockscaler_scale_events_total{service=\"" + f.name +
                         "\",direction=\"up\",reason=\"manual\"}") == 2);
  CHECK(sample(text, "dockscaler_scale_events_total{service=\"" + f.name +
                         "\",direction=\"down\",reason=\"wait_time_below\"}") >= 1);
  CHECK(text.find("# TYPE dockscaler_cold_start_seconds histogram") != std::string::npos);
  CHECK(text.find("# TYPE dockscaler_docker_errors_total counter") != std::string::npos);
  CHECK(text.find("# TYPE dockscaler_queue_length gauge") != std::string::npos);
  CHECK(text.find("# TYPE dockscaler_in_flight gauge") != std::string::npos);
  // The same scrape on the admin socket; the TCP listener refuses the rest.
  CHECK(admin::request(f.admin_socket, "GET", "/metrics").body.find(code200) != std::string::npos);
  CHECK(http_get(metrics_port, "/v1/status").status == 404);
  if (const std::string tool = find_promtool(); !tool.empty()) {
    const std::string file = d.dir() + "/scrape.txt";
    std::ofstream(file) << text;
    CHECK(std::system((tool + " check metrics < " + file).c_str()) == 0);
  } else {
    WARN(
        "promtool not found (Debian package 'prometheus', or set PROMTOOL): the scrape was not "
        "checked by it");
  }

  // POST /v1/reload: a bad file is refused (400) and the daemon keeps going;
  // a good one is applied.
  const std::string good = read_file(d.config_path());
  d.write_config(good + "    colour: blue\n");
  a = admin::request(f.admin_socket, "POST", "/v1/reload");
  CHECK(a.status == 400);
  CHECK(admin::error_message(a).find("colour") != std::string::npos);
  d.write_config(good);
  a = admin::request(f.admin_socket, "POST", "/v1/reload");
  CHECK(a.status == 200);
  CHECK(admin::error_message(a).find("2 service(s)") != std::string::npos);  // f and ctl
  CHECK(http_get(f.port, "/fn/").status == 200);

  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
  CHECK_FALSE(std::filesystem::exists(f.admin_socket));  // removed on the way out
  // No daemon: exit 3 and one line with the hint.
  r = cli(f.admin_socket, "status");
  CHECK(r.code == 3);
  CHECK(r.err.find("is `dockscaler serve` running? (admin socket " + f.admin_socket) !=
        std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(cli(f.admin_socket, "scale " + f.name + "=2").code == 3);
}

namespace {

// `dockscaler --admin unix://<socket> ARGS...` in the background, stdout and
// stderr into one file; killed (if still running) and reaped at the end.
class background_cli {
 public:
  background_cli(const std::string& socket, const std::vector<std::string>& args)
      : out_("/tmp/dockscaler-cli-bg-" + run_id() + "-" + std::to_string(++count_)) {
    std::vector<std::string> all = {DOCKSCALER_BIN, "--admin", "unix://" + socket};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    REQUIRE(::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~background_cli() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::remove(out_.c_str());
  }
  std::string out() const { return read_file(out_); }
  // The exit code once it exits within `limit`, else -1.
  int exit_code(std::chrono::seconds limit) {
    int status = 0;
    if (!eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit)) return -1;
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  static inline int count_ = 0;
  std::string out_;
  pid_t pid_ = 0;
};

// The lines of `text` that contain every one of `parts`.
std::size_t lines_with(const std::string& text, const std::vector<std::string>& parts) {
  std::istringstream in(text);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);)
    n += std::all_of(parts.begin(), parts.end(),
                     [&](const std::string& p) { return line.find(p) != std::string::npos; });
  return n;
}

}  // namespace

TEST_CASE("events: a scale by hand is listed with its reason; -f prints the next one as it comes",
          "[e2e][docker][cli][events]") {
  service_fixture f("events");
  // Held scales only: the policy records nothing of its own meanwhile.
  daemon_process d("events", f.config("    replicas: { min: 1, max: 4, initial: 1 }\n"));
  d.start();
  REQUIRE(f.proxy_up());
  INFO(d.log());
  REQUIRE(eventually([&] { return settled_at(f, 1); }, 60s));
  REQUIRE(cli(f.admin_socket, "scale " + f.name + "=2 --hold 10m").code == 0);

  auto r = cli(f.admin_socket, "events " + f.name);
  CHECK(r.code == 0);
  CHECK(r.out.rfind("TIME", 0) == 0);
  CHECK(r.out.find("REASON") != std::string::npos);
  CHECK(lines_with(r.out, {f.name, "1 -> 2", "manual", "set by hand to 2", "Z "}) == 1);
  r = cli(f.admin_socket, "events " + f.name + " -o json");
  CHECK(r.code == 0);
  bool found = false;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const auto e = json(line);
    found |= e["reason"].GetString() == std::string("manual") && e["to"].GetUint() == 2 &&
             e["service"].GetString() == f.name;
  }
  CHECK(found);
  r = cli(f.admin_socket, "events no-such-service");
  CHECK(r.code == 1);
  CHECK(r.err.find("no such service: no-such-service") != std::string::npos);

  // Following: the event there already, then the one recorded after it began.
  background_cli follow(f.admin_socket, {"events", f.name, "-f"});
  REQUIRE(eventually([&] { return lines_with(follow.out(), {"1 -> 2", "manual"}) == 1; }, 30s));
  REQUIRE(cli(f.admin_socket, "scale " + f.name + "=3 --hold 10m").code == 0);
  CHECK(eventually(
      [&] {
        return lines_with(follow.out(), {f.name, "2 -> 3", "manual", "set by hand to 3"}) == 1;
      },
      30s));
  CHECK(follow.out().rfind("TIME", 0) == 0);
  // The daemon going away ends the follow with exit 3.
  d.kill(SIGTERM);
  CHECK(follow.exit_code(90s) == 3);
  CHECK(follow.out().find("the daemon ended the event stream") != std::string::npos);
  CHECK(d.wait() == 0);
  r = cli(f.admin_socket, "events -f");
  CHECK(r.code == 3);  // no daemon to begin with: the usual line and hint
  CHECK(r.err.find("is `dockscaler serve` running? (admin socket " + f.admin_socket) !=
        std::string::npos);
  CHECK(cli(f.admin_socket, "events -o yaml").code == 2);
}

namespace {
// docker.logs defaults: every container dockscaler creates rotates its log.
void check_rotated_logs(const dockscaler::dockerapi::container_info& info) {
  CHECK(info.logging.type == "json-file");
  CHECK(info.logging.options ==
        std::map<std::string, std::string>{{"max-size", "10485760"}, {"max-file", "3"}});
}
}  // namespace

TEST_CASE("scale --direct without a daemon; serve adopts the containers; logs shows both streams",
          "[e2e][docker][cli]") {
  service_fixture f("direct");
  daemon_process d("direct", f.config("    replicas: { min: 1, max: 4, initial: 1 }\n"
                                      "    scale_down: { for: 10m }\n"));
  const std::string cfg = "-c " + d.config_path();

  auto r = cli(f.admin_socket, "scale " + f.name + "=3 --direct " + cfg);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find(f.name + ": 0 -> 3 running container(s)") != std::string::npos);
  CHECK(f.containers().size() == 3);
  r = cli(f.admin_socket, "scale " + f.name + "=2 --direct " + cfg);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("3 -> 2") != std::string::npos);
  const auto made = f.containers();
  REQUIRE(made.size() == 2);
  {
    // Named and labelled as the daemon names and labels its own.
    const auto info = f.docker.inspect_container(made[0]);
    CHECK(info.name.rfind("/dockscaler-" + f.name + "-", 0) == 0);
    CHECK(info.name.size() == std::string("/dockscaler-" + f.name + "-").size() + 8);
    check_rotated_logs(info);
  }
  CHECK(cli(f.admin_socket, "scale " + f.name + "=9 --direct " + cfg).code == 1);  // above max
  CHECK(cli(f.admin_socket, "scale nope=1 --direct " + cfg).code == 1);

  d.start();
  REQUIRE(f.proxy_up());
  INFO(d.log());
  REQUIRE(eventually([&] { return settled_at(f, 2); }, 60s));
  CHECK(d.log().find("adopting running container") != std::string::npos);
  CHECK(d.log().find("outdated spec") == std::string::npos);
  CHECK(f.containers() == made);  // adopted, none replaced or added
  CHECK(http_get(f.port, "/fn/").status == 200);
  // --direct refuses while a daemon answers (it would undo the change).
  r = cli(f.admin_socket, "scale " + f.name + "=3 --direct " + cfg);
  CHECK(r.code == 1);
  CHECK(r.err.find("a daemon answers") != std::string::npos);
  // Also when --admin points elsewhere: the socket the file names is checked.
  r = cli("/nonexistent/dockscaler-admin.sock", "scale " + f.name + "=3 --direct " + cfg);
  CHECK(r.code == 1);
  CHECK(r.err.find("a daemon answers on " + f.admin_socket) != std::string::npos);
  CHECK(f.containers() == made);  // nothing started under the daemon

  // logs: each container's stdout and stderr lines, prefixed by its name.
  r = cli(f.admin_socket, "logs " + f.name);
  CHECK(r.code == 0);
  for (const auto& id : made) {
    const std::string name = f.docker.inspect_container(id).name.substr(1);
    CHECK(r.out.find(name + " | hello-http: hello from ") != std::string::npos);  // stdout
    CHECK(r.err.find(name + " | hello-http: listening on port 8080") !=
          std::string::npos);  // stderr
  }
  // -f keeps following until interrupted, and picks up containers started
  // meanwhile.
  const std::string out = d.dir() + "/follow.out", err = d.dir() + "/follow.err";
  const pid_t follower = ::fork();
  if (follower == 0) {
    ::dup2(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    ::dup2(::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    ::execl(DOCKSCALER_BIN, DOCKSCALER_BIN, "logs", "-f", f.name.c_str(), nullptr);
    _exit(127);
  }
  REQUIRE(follower > 0);
  CHECK(eventually(
      [&] { return read_file(out).find(" | hello-http: hello from ") != std::string::npos; }));
  CHECK(cli(f.admin_socket, "scale " + f.name + "=3").code == 0);
  REQUIRE(eventually([&] { return settled_at(f, 3); }, 60s));
  std::string added;
  for (const auto& id : f.containers())
    if (std::find(made.begin(), made.end(), id) == made.end())
      added = f.docker.inspect_container(id).name.substr(1);
  REQUIRE_FALSE(added.empty());
  check_rotated_logs(f.docker.inspect_container(added));  // one the daemon made
  CHECK(eventually(
      [&] {
        return read_file(out).find(added + " | hello-http: hello from ") != std::string::npos &&
               read_file(err).find(added + " | hello-http: listening on port 8080") !=
                   std::string::npos;
      },
      60s));
  // Still following until interrupted.
  int status = 0;
  CHECK(::waitpid(follower, &status, WNOHANG) == 0);
  ::kill(follower, SIGINT);
  CHECK(::waitpid(follower, &status, 0) == follower);
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGINT));
  r = cli(f.admin_socket, "logs nope-" + run_id());
  CHECK(r.code == 1);

  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("sd_notify: READY=1 once the admin socket answers; RELOADING, WATCHDOG, STOPPING",
          "[e2e][docker][systemd]") {
  service_fixture f("notify");
  daemon_process d("notify", f.config("    replicas: { min: 0, max: 1, initial: 0 }\n"));
  const std::string notify_path = d.dir() + "/sd-notify.sock";
  ::unlink(notify_path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, notify_path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<std::string> got;
  // Waits for a datagram containing `what`; every datagram is kept in `got`.
  auto expect = [&](const std::string& what, std::chrono::seconds limit) {
    const auto end = steady::now() + limit;
    while (steady::now() < end) {
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) continue;
      got.emplace_back(buf, static_cast<size_t>(n));
      if (got.back().find(what) != std::string::npos) return true;
    }
    return false;
  };

  d.start({},
          {{"NOTIFY_SOCKET", notify_path}, {"WATCHDOG_USEC", "1000000"}, {"WATCHDOG_PID", "$PID"}});
  INFO(d.log());
  REQUIRE(expect("READY=1", 60s));
  // READY=1 comes after the proxy and the admin API are up.
  CHECK(admin::request(f.admin_socket, "GET", "/healthz").status == 200);
  CHECK(http_get(f.port, "/nothing-here").status == 404);
  CHECK(expect("WATCHDOG=1", 5s));
  // min 0: the first request waits for a cold start, which the scaler's
  // on_cold_start hook reports to the metrics and the log.
  CHECK(http_get(f.port, "/fn/").status == 200);
  {
    // The hook runs right after the container joins the proxy, which is
    // before the answer arrives, but the test does not rely on that.
    const std::string count = "dockscaler_cold_start_seconds_count{service=\"" + f.name + "\"} 1\n";
    std::string text;
    CHECK(eventually(
        [&] {
          text = admin::request(f.admin_socket, "GET", "/metrics").body;
          return text.find(count) != std::string::npos;
        },
        10s));
    INFO(text);
    CHECK(text.find("dockscaler_scale_events_total{service=\"" + f.name +
                    "\",direction=\"up\",reason=\"cold_start\"} 1\n") != std::string::npos);
    CHECK(d.log().find(f.name + ": cold start took ") != std::string::npos);
  }
  got.clear();
  d.kill(SIGHUP);
  CHECK(expect("RELOADING=1", 10s));
  CHECK(expect("READY=1", 10s));
  // POST /v1/reload notifies the same way.
  CHECK(admin::request(f.admin_socket, "POST", "/v1/reload").status == 200);
  CHECK(expect("RELOADING=1", 10s));
  CHECK(expect("READY=1", 10s));
  d.kill(SIGTERM);
  CHECK(expect("STOPPING=1", 10s));
  CHECK(d.wait() == 0);
  ::close(fd);
  ::unlink(notify_path.c_str());
}

namespace {

// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

// "a\tb\n" -> {"a", "b"}
std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line.substr(0, line.find('\n')));
  for (std::string f; std::getline(in, f, '\t');) out.push_back(f);
  return out;
}

// invoke: through the proxy, by the service's route (Host invoke.example,
// prefix /fn, a token, at most 64 body bytes); the body on stdout, the exit
// code from the status.
void check_invoke(const service_fixture& f, const std::string& token, const std::string& dir) {
  const std::string port = std::to_string(f.port);
  auto r = cli(f.admin_socket, "invoke " + f.name);
  CHECK(r.code == 1);
  CHECK(r.err.find("dockscaler: invoke: " + f.name + " answered 401") != std::string::npos);
  r = cli(f.admin_socket, "invoke " + f.name + " " + token + " -v");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("hello from ", 0) == 0);
  CHECK(r.err.find("> GET http://invoke.example:" + port + "/fn\n") != std::string::npos);
  CHECK(std::regex_search(r.err, std::regex(R"(< HTTP/1.1 200 OK \([0-9.]+(µs|ms|s)\))")));
  r = cli(f.admin_socket,
          "invoke " + f.name + " " + token + " -d small -i --path '/x?delay=1' -X PUT");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(r.out.find("\r\n\r\nhello from ") != std::string::npos);
  const std::string big = dir + "/newcomer.body";
  std::ofstream(big) << std::string(100, 'x');
  r = cli(f.admin_socket, "invoke " + f.name + " " + token + " -d @" + big);
  CHECK(r.code == 1);
  CHECK(r.err.find("answered 413") != std::string::npos);
  r = cli(f.admin_socket, "invoke nope-" + run_id());
  CHECK(r.code == 1);
  CHECK(r.err == "dockscaler: no such service: nope-" + run_id() + "\n");
}

// reload: a broken file is refused with the problems as validate prints
// them; a good one is applied (a key that waits for a restart is a warn).
void check_reload(daemon_process& d, const service_fixture& f) {
  const std::string port = std::to_string(f.port);
  const std::string good = read_file(d.config_path());
  d.write_config(good + "    colour: blue\n");
  auto r = cli(f.admin_socket, "reload");
  CHECK(r.code == 1);
  const auto problems = lines_starting(r.err, "error: ");
  CHECK(problems.size() == 1);
  CHECK(problems == lines_starting(cli("", "validate -c " + d.config_path()).err, "error: "));
  CHECK(r.err.find(d.config_path() + ":") != std::string::npos);
  CHECK(r.err.find("dockscaler: reload refused, still running the previous config (1 problem)\n") !=
        std::string::npos);
  const std::string listen = "proxy: { listen: 127.0.0.1:" + port + " }";
  std::string changed = good;
  REQUIRE(changed.find(listen) != std::string::npos);
  changed.replace(changed.find(listen), listen.size(),
                  "proxy: { listen: 127.0.0.1:" + port + ", threads: 3 }");
  d.write_config(changed);
  r = cli(f.admin_socket, "reload");
  CHECK(r.code == 0);
  CHECK(r.out == "reloaded " + d.config_path() + ": 1 service(s)\n");
  CHECK(d.log().find(" warn  proxy.listen and proxy.threads take effect at the next start") !=
        std::string::npos);
  CHECK(d.log().find(" warning ") == std::string::npos);
}

}  // namespace

TEST_CASE("the CLI a newcomer reaches for: invoke, reload, DOCKSCALER_ADMIN, -q, --format, units",
          "[e2e][docker][cli]") {
  service_fixture f("newcomer");
  const std::string dir = "/tmp/dockscaler-e2e-" + run_id();
  ::mkdir(dir.c_str(), 0755);
  const std::string tokens = dir + "/newcomer.tokens";
  std::ofstream(tokens) << "s3cret\n";
  // Routed by Host (invoke must send it), behind a token, with a small body limit.
  std::string yaml = f.config(
      "    replicas: { min: 1, max: 2, initial: 1 }\n    max_body_bytes: 64\n"
      "    auth: { bearer_tokens_file: " +
      tokens + " }\n");
  const std::string route = "route: { path_prefix: /fn, strip_prefix: true }";
  REQUIRE(yaml.find(route) != std::string::npos);
  yaml.replace(yaml.find(route), route.size(),
               "route: { host: invoke.example, path_prefix: /fn, strip_prefix: true }");
  daemon_process d("newcomer", yaml);
  d.start();
  REQUIRE(f.proxy_up());
  INFO(d.log());
  REQUIRE(eventually([&] { return settled_at(f, 1); }, 60s));
  const std::string token = "-H 'Authorization: Bearer s3cret'";
  check_invoke(f, token, dir);

  // DOCKSCALER_ADMIN instead of --admin; --admin after the command, on logs too.
  auto r = cli("", "status -q", "env DOCKSCALER_ADMIN=unix://" + f.admin_socket);
  CHECK(r.code == 0);
  CHECK(r.out == f.name + "\n");
  r = cli("", "logs " + f.name + " --admin unix://" + f.admin_socket);
  CHECK(r.code == 0);
  CHECK(r.out.find(" | hello-http: hello from ") != std::string::npos);

  // -q: ids only; --format: the named fields, tab-separated; units on every duration.
  r = cli(f.admin_socket, "ps -q");
  const auto ids = f.containers();
  REQUIRE(ids.size() == 1);
  CHECK(r.out == ids[0].substr(0, 12) + "\n");
  r = cli(f.admin_socket, "status " + f.name + " --format service,ready,wait-p50,wait-p95");
  CHECK(r.code == 0);
  const auto got = fields(r.out);
  REQUIRE(got.size() == 4);
  CHECK(got[0] == f.name);
  CHECK(got[1] == "1");
  const std::regex duration(R"(0s|[0-9]+µs|[0-9]+\.[0-9]ms|[0-9]+\.[0-9]s)");
  CHECK(std::regex_match(got[2], duration));
  CHECK(std::regex_match(got[3], duration));
  r = cli(f.admin_socket, "ps " + f.name + " --format state,age");
  CHECK(std::regex_match(r.out, std::regex("ready\t([0-9]+s|[0-9]+m[0-9]+s)\n")));

  check_reload(d, f);
  CHECK(cli(f.admin_socket, "invoke " + f.name + " " + token).code == 0);

  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}

TEST_CASE("invoke on an https:// listener only: the certificate is checked unless -k",
          "[e2e][docker][cli][tls]") {
  service_fixture f("invoke-tls");
  tlstest::test_ca ca;  // not trusted by the system: verification must fail
  const auto leaf = ca.issue("site", "tls.example", "DNS:tls.example");
  std::string yaml = f.config("    replicas: { min: 1, max: 1, initial: 1 }\n");
  const std::string plain = "proxy: { listen: 127.0.0.1:" + std::to_string(f.port) + " }";
  REQUIRE(yaml.find(plain) != std::string::npos);
  yaml.replace(yaml.find(plain), plain.size(),
               "proxy: { listen: \"https://127.0.0.1:" + std::to_string(f.port) +
                   "\", tls: { cert: " + leaf.cert + ", key: " + leaf.key + " } }");
  const std::string route = "route: { path_prefix: /fn, strip_prefix: true }";
  yaml.replace(yaml.find(route), route.size(),
               "route: { host: tls.example, path_prefix: /fn, strip_prefix: true }");
  daemon_process d("invoke-tls", yaml);
  d.start();
  INFO(d.log());
  REQUIRE(eventually([&] { return settled_at(f, 1); }, 60s));
  auto r = cli(f.admin_socket, "invoke " + f.name + " -v");
  CHECK(r.code == 1);
  CHECK(r.err.find("> GET https://tls.example:" + std::to_string(f.port) + "/fn\n") !=
        std::string::npos);
  CHECK(r.err.find("(-k skips the check)") != std::string::npos);
  r = cli(f.admin_socket, "invoke " + f.name + " -k");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("hello from ", 0) == 0);
  d.kill(SIGTERM);
  CHECK(d.wait() == 0);
}
