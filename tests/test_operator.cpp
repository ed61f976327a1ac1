// The operator's surface without a daemon or Docker: --help on every
// subcommand, usage errors (exit 2), no daemon (exit 3 and one line with the
// hint), the systemd unit checked by `systemd-analyze verify`, and what
// `cmake --install` puts where.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

struct result {
  int code;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string tmp(const std::string& name) {
  return "/tmp/dockscaler-op-" + std::to_string(::getpid()) + "-" + name;
}

result sh(const std::string& cmd) {
  const std::string out = tmp("out"), err = tmp("err");
  const int status = std::system((cmd + " >" + out + " 2>" + err).c_str());
  result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

result cli(const std::string& args) { return sh(std::string(DOCKSCALER_BIN) + " " + args); }

const char* no_socket = "unix:///tmp/dockscaler-op-no-such-dir/admin.sock";

bool have(const char* tool) { return sh(std::string("command -v ") + tool).code == 0; }

}  // namespace

TEST_CASE("every subcommand has --help (exit 0, its usage line)", "[cli][operator]") {
  for (const char* cmd :
       {"serve", "validate", "status", "ps", "scale", "autoscale", "logs", "version", "events"}) {
    INFO(cmd);
    const auto r = cli(std::string(cmd) + " --help");
    CHECK(r.code == 0);
    CHECK(r.out.rfind(std::string("Usage: dockscaler ") + cmd, 0) == 0);
  }
  const auto r = cli("--help");
  CHECK(r.code == 0);
  for (const char* cmd : {"status", "ps", "scale", "autoscale", "logs", "events"})
    CHECK(r.out.find(cmd) != std::string::npos);
}

TEST_CASE("usage errors exit 2 before anything is sent", "[cli][operator][errors]") {
  const char* bad[] = {"scale",
                       "scale hello",
                       "scale hello=x",
                       "scale hello=-1",
                       "scale =3",
                       "scale hello=3 --hold soon",
                       "scale hello=3 --direct --hold 1m",
                       "autoscale hello",
                       "autoscale hello maybe",
                       "status -o yaml",
                       "ps -o xml",
                       "logs",
                       "logs x --tail many",
                       "status --colour",
                       "events -o yaml",
                       "events a b"};
  for (const char* args : bad) {
    INFO(args);
    const auto r = cli(std::string("--admin ") + no_socket + " " + args);
    CHECK(r.code == 2);
    CHECK(r.err.rfind("dockscaler: ", 0) == 0);
  }
}

TEST_CASE("no daemon: exit 3 and one line naming the socket", "[cli][operator][errors]") {
  for (const char* args : {"status", "ps", "status hello -o json", "scale hello=2",
                           "autoscale hello off", "events", "events hello -f"}) {
    INFO(args);
    const auto r = cli(std::string("--admin ") + no_socket + " " + args);
    CHECK(r.code == 3);
    CHECK(r.out.empty());
    CHECK(r.err.find("is `dockscaler serve` running? (admin socket "
                     "/tmp/dockscaler-op-no-such-dir/admin.sock") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  // --admin also works after the command.
  CHECK(cli(std::string("status --admin ") + no_socket).code == 3);
}

TEST_CASE("a replica count above any replicas.max is too large, the limit named (exit 1)",
          "[cli][operator][errors]") {
  for (const char* n : {"999999999999", "1001", "0000000000001001"}) {
    INFO(n);
    const auto r = cli(std::string("--admin ") + no_socket + " scale hello=" + n);
    CHECK(r.code == 1);
    CHECK(r.err == std::string("dockscaler: scale: the replica count ") + n +
                       " is too large (at most 1000, the largest replicas.max)\n");
  }
  // Leading zeros are still a count the daemon is asked about (exit 3: none answers).
  CHECK(cli(std::string("--admin ") + no_socket + " scale hello=0000000000002").code == 3);
}

TEST_CASE("DOCKER_HOST: not an address is exit 1; nothing there is exit 3 with the hint once",
          "[cli][operator][errors]") {
  const std::string cfg = tmp("docker-host.yaml");
  std::ofstream(cfg) << "admin: { socket: /tmp/dockscaler-op-no-such-dir/admin.sock }\n"
                        "services:\n  hello:\n    image: dockscaler/hello-http:latest\n";
  const std::string commands[] = {"logs hello", "version", "scale hello=1 --direct -c " + cfg};
  for (const auto& cmd : commands) {
    const std::string args = "--admin " + std::string(no_socket) + " " + cmd;
    INFO(args);
    auto r = sh("DOCKER_HOST=bogus " + std::string(DOCKSCALER_BIN) + " " + args);
    CHECK(r.code == 1);
    CHECK(r.err.find("invalid DOCKER_HOST \"bogus\": expected unix:///path or tcp://host:port") !=
          std::string::npos);
    r = sh("DOCKER_HOST=unix:///tmp/dockscaler-op-no-such-dir/docker.sock " +
           std::string(DOCKSCALER_BIN) + " " + args);
    CHECK(r.code == 3);
    std::size_t hints = 0;
    for (std::size_t at = 0; (at = r.err.find("is dockerd running", at)) != std::string::npos; ++at)
      ++hints;
    CHECK(hints == 1);
  }
  std::remove(cfg.c_str());
}

TEST_CASE("the systemd unit passes systemd-analyze verify", "[operator][systemd]") {
  if (!have("systemd-analyze")) {
    WARN("systemd-analyze not found (Debian package 'systemd'): unit not verified");
    return;
  }
  // The build makes the unit from its template twice: for the configured
  // prefix (build/dockscaler.service) and naming the binary just built
  // (build/tests/dockscaler.service), which verify can check before any install.
  const std::string built = std::string(DOCKSCALER_BUILD_DIR) + "/tests/dockscaler.service";
  const std::string unit = slurp(built);
  REQUIRE(unit.find("Type=notify") != std::string::npos);
  CHECK(unit.find("ExecReload=/bin/kill -HUP $MAINPID") != std::string::npos);
  CHECK(unit.find("Restart=on-failure") != std::string::npos);
  CHECK(unit.find("WatchdogSec=") != std::string::npos);
  CHECK(unit.find("After=network-online.target docker.service") != std::string::npos);
  CHECK(unit.find(std::string("ExecStart=") + DOCKSCALER_BIN + " --log-format json serve -c ") !=
        std::string::npos);
  CHECK(unit.find("@bindir@") == std::string::npos);  // every path filled in
  CHECK(slurp(std::string(DOCKSCALER_BUILD_DIR) + "/dockscaler.service")
            .find("/bin/dockscaler --log-format json serve") != std::string::npos);
  const auto r = sh("systemd-analyze verify " + built);
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.err.find("dockscaler.service") == std::string::npos);  // no warning about our unit
}

TEST_CASE("cmake --install puts the binary, the unit and an example config in place",
          "[operator]") {
  const std::string prefix = tmp("prefix");
  std::filesystem::remove_all(prefix);
  const auto r = sh("cmake --install " + std::string(DOCKSCALER_BUILD_DIR) + " --prefix " + prefix);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(::access((prefix + "/bin/dockscaler").c_str(), X_OK) == 0);
  CHECK(std::filesystem::exists(prefix + "/lib/systemd/system/dockscaler.service"));
  CHECK(std::filesystem::exists(prefix + "/etc/dockscaler/dockscaler.yaml"));
  const auto v =
      sh(prefix + "/bin/dockscaler validate -c " + prefix + "/etc/dockscaler/dockscaler.yaml");
  CHECK(v.code == 0);
  // The installed unit names the installed binary and config, and verifies.
  const std::string unit = slurp(prefix + "/lib/systemd/system/dockscaler.service");
  CHECK(unit.find("ExecStart=" + prefix + "/bin/dockscaler --log-format json serve -c " + prefix +
                  "/etc/dockscaler/dockscaler.yaml\n") != std::string::npos);
  if (have("systemd-analyze")) {
    const auto u =
        sh("systemd-analyze verify " + prefix + "/lib/systemd/system/dockscaler.service");
    INFO(u.out << u.err);
    CHECK(u.code == 0);
  }
  // A second install keeps an operator's edited config.
  std::ofstream(prefix + "/etc/dockscaler/dockscaler.yaml", std::ios::app) << "# edited\n";
  REQUIRE(sh("cmake --install " + std::string(DOCKSCALER_BUILD_DIR) + " --prefix " + prefix).code ==
          0);
  CHECK(slurp(prefix + "/etc/dockscaler/dockscaler.yaml").find("# edited") != std::string::npos);
  std::filesystem::remove_all(prefix);
}

TEST_CASE("cmake --install with DESTDIR puts every file under DESTDIR, once", "[operator]") {
  const std::string stage = tmp("destdir");
  for (const char* prefix : {"/usr/local", "/usr"}) {
    INFO(prefix);
    std::filesystem::remove_all(stage);
    const auto r = sh("DESTDIR=" + stage + " cmake --install " + std::string(DOCKSCALER_BUILD_DIR) +
                      " --prefix " + prefix);
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    std::set<std::string> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(stage))
      if (!e.is_directory()) files.insert(e.path().string().substr(stage.size()));
    const std::string etc = std::string(prefix) == "/usr" ? "/etc" : std::string(prefix) + "/etc";
    const std::set<std::string> expected = {
        std::string(prefix) + "/bin/dockscaler",
        std::string(prefix) + "/lib/systemd/system/dockscaler.service",
        std::string(prefix) + "/share/doc/dockscaler/operations.md",
        std::string(prefix) + "/share/bash-completion/completions/dockscaler",
        std::string(prefix) + "/share/zsh/site-functions/_dockscaler",
        std::string(prefix) + "/share/man/man1/dockscaler.1",
        etc + "/dockscaler/dockscaler.yaml"};
    CHECK(files == expected);
    // The unit names the paths as installed, without the staging directory.
    const std::string unit = slurp(stage + prefix + "/lib/systemd/system/dockscaler.service");
    CHECK(unit.find("ExecStart=" + std::string(prefix) + "/bin/dockscaler --log-format json " +
                    "serve -c " + etc + "/dockscaler/dockscaler.yaml\n") != std::string::npos);
    CHECK(unit.find(stage) == std::string::npos);
  }
  std::filesystem::remove_all(stage);
}

TEST_CASE("every example config passes validate", "[operator][examples]") {
  // The configs users copy first (examples/**/dockscaler.yaml, the function
  // examples under examples/functions/ too): a key renamed or removed in the
  // config reader must not leave them behind.
  int seen = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::string(DOCKSCALER_SOURCE_DIR) + "/examples")) {
    const auto file = entry.path();
    if (file.filename() != "dockscaler.yaml") continue;
    ++seen;
    const auto r = cli("validate -c " + file.string());
    INFO(file.string() << "\n" << r.out << r.err);
    CHECK(r.code == 0);
  }
  CHECK(seen >= 5);  // examples/hello, examples/swarm and the three function examples at least
}
