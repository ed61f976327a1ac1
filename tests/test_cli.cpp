// Tests of the dockscaler binary itself: exit codes and messages of the
// commands that need no daemon (README.md exit codes: 0 ok, 1 user error, 2 usage).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "cli/table.hpp"

namespace {

struct result {
  int code;
  std::string out;  // stdout and stderr together
};

// `env`: "NAME=value ..." set for the command.
result run(const std::string& args, const std::string& env = {}) {
  const std::string cmd = "env " + env + " " + std::string(DOCKSCALER_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/dockscaler-test-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The commands `dockscaler --help` lists.
std::vector<std::string> listed_commands() {
  const auto help = run("--help").out;
  std::vector<std::string> out;
  std::istringstream in(help.substr(help.find("Commands:\n") + 10));
  for (std::string line; std::getline(in, line) && !line.empty();) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    out.push_back(name);
  }
  return out;
}

// An admin socket nothing answers on.
std::string no_daemon() {
  return "unix:///tmp/dockscaler-test-" + std::to_string(::getpid()) + ".sock";
}

}  // namespace

TEST_CASE("validate: a good file exits 0 with a summary", "[cli]") {
  const auto path = write_temp("good.yaml",
                               "services:\n  hello:\n    image: dockscaler/hello-http:latest\n"
                               "    replicas: { min: 0, max: 3 }\n");
  const auto r = run("validate -c " + path);
  CHECK(r.code == 0);
  CHECK(r.out.find("OK, 1 service") != std::string::npos);
  CHECK(r.out.find("hello: http dockscaler/hello-http:latest") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("validate describes stdio functions; a per-call function has nothing to scale", "[cli]") {
  const auto path =
      write_temp("fn.yaml",
                 "services:\n  warm:\n    image: f\n    mode: stdio\n    prewarm: true\n"
                 "    replicas: { min: 2, max: 5 }\n  cold:\n    image: f\n    mode: stdio\n"
                 "    max_concurrency: 3\n");
  auto r = run("validate -c " + path);
  CHECK(r.code == 0);
  CHECK(r.out.find("warm: stdio f, route /r/default/warm, pre-warmed pool 2..5") !=
        std::string::npos);
  CHECK(
      r.out.find("cold: stdio f, route /r/default/cold, a container per call, max_concurrency 3") !=
      std::string::npos);
  r = run("scale cold=2 --direct -c " + path);
  CHECK(r.code == 1);
  CHECK(r.out.find("runs a container per call") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("validate: a bad file exits 1 and lists every problem in file order", "[cli][errors]") {
  const auto path = write_temp("bad.yaml",
                               "services:\n  a:\n    image: x\n    replicas: {min: 3, max: 1}\n"
                               "    queue: {timeout: 3q}\n");
  const auto r = run("validate -c " + path);
  CHECK(r.code == 1);
  const auto first =
      r.out.find(path + ":4:15: services.a.replicas: min (3) is greater than max (1)");
  const auto second = r.out.find(path + ":5:22: services.a.queue.timeout: bad duration \"3q\"");
  CHECK(first != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(first < second);
  CHECK(r.out.find("2 problems found") != std::string::npos);
  std::remove(path.c_str());
}

// Both used to pass or end in a bare "dockscaler: stod": a 400-digit number,
// and a service defined twice (the first silently lost).
TEST_CASE("validate: an overflowing number and a repeated service are located problems",
          "[cli][errors]") {
  const auto path = write_temp("twice.yaml", "services:\n  a:\n    image: x\n    drain_timeout: " +
                                                 std::string(400, '9') + "s\n  a:\n    image: y\n");
  auto r = run("validate -c " + path);
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("stod") == std::string::npos);
  CHECK(r.out.find(path + ":4:20: services.a.drain_timeout: bad duration \"999") !=
        std::string::npos);
  CHECK(r.out.find(path + ":5:3: services.a: defined twice (first at line 2)") !=
        std::string::npos);
  CHECK(r.out.find("2 problems found") != std::string::npos);
  r = run("scale a=1 --hold " + std::string(400, '9') + "s");
  CHECK(r.code == 2);
  CHECK(r.out.find("--hold: not a duration") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("usage errors exit 2", "[cli][errors]") {
  CHECK(run("").code == 2);
  CHECK(run("frobnicate").code == 2);
  CHECK(run("validate --bogus").code == 2);
  CHECK(run("validate -c").code == 2);
  CHECK(run("--log-level loud version").code == 2);
}

TEST_CASE("--help works on the program and on each command", "[cli]") {
  auto r = run("--help");
  CHECK(r.code == 0);
  CHECK(r.out.find("validate") != std::string::npos);
  r = run("validate --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("--config") != std::string::npos);
  CHECK(run("version --help").code == 0);
}

TEST_CASE("--version, help and help COMMAND at the top level", "[cli]") {
  auto r = run("--version");
  CHECK(r.code == 0);
  CHECK(r.out == "dockscaler 0.1.0\n");
  r = run("-h");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("Usage: dockscaler", 0) == 0);
  CHECK(run("help").out == r.out);
  CHECK(run("help help").out == r.out);
  const auto commands = listed_commands();
  for (const char* c : {"invoke", "reload", "help", "status", "logs"})
    CHECK(std::find(commands.begin(), commands.end(), c) != commands.end());
  r = run("help scale");
  CHECK(r.code == 0);
  CHECK(r.out == run("scale --help").out);
  CHECK(r.out.find("--hold") != std::string::npos);
  r = run("help frobnicate");
  CHECK(r.code == 2);
  CHECK(r.out.find("unknown command 'frobnicate'") != std::string::npos);
}

TEST_CASE("version -o json: dockscaler's, and null for a daemon that does not answer", "[cli]") {
  const auto r = run("version -o json --admin " + no_daemon());
  INFO(r.out);
  CHECK((r.code == 0 || r.code == 3));  // 3: no Docker engine here
  CHECK(r.out.rfind("{\"version\":\"0.1.0\",\"docker_api_min\":\"1.", 0) == 0);
  CHECK(r.out.find("\"daemon\":null") != std::string::npos);
  CHECK(run("version -o yaml").code == 2);
}

TEST_CASE("DOCKSCALER_ADMIN is the default admin socket; --admin before or after any command",
          "[cli]") {
  const std::string sock = no_daemon();
  auto r = run("status", "DOCKSCALER_ADMIN=" + sock);
  CHECK(r.code == 3);
  CHECK(r.out.find("(admin socket " + sock.substr(7) + ";") != std::string::npos);
  // --admin wins over the variable, wherever it stands.
  r = run("status --admin " + sock + "-flag", "DOCKSCALER_ADMIN=" + sock);
  CHECK(r.code == 3);
  CHECK(r.out.find("(admin socket " + sock.substr(7) + "-flag;") != std::string::npos);
  r = run("--admin=" + sock + "-eq reload");
  CHECK(r.code == 3);
  CHECK(r.out.find(sock.substr(7) + "-eq") != std::string::npos);
  // Every command takes it (logs reads Docker and used to refuse it).
  CHECK(run("logs nope-" + std::to_string(::getpid()) + " --admin " + sock).code != 2);
  const auto path = write_temp("admin.yaml", "services:\n  a:\n    image: x\n");
  CHECK(run("validate --admin " + sock + " -c " + path).code == 0);
  CHECK(run("status --admin").code == 2);
  std::remove(path.c_str());
}

TEST_CASE("status and ps: --format names fields; an unknown one exits 2 listing them",
          "[cli][errors]") {
  auto r = run("status --format service,bogus --admin " + no_daemon());
  CHECK(r.code == 2);  // before the daemon is asked (none answers here: that would be 3)
  CHECK(r.out.find("unknown field 'bogus'") != std::string::npos);
  CHECK(r.out.find("service, ready, starting, draining, desired, min, max, in-flight, queue, "
                   "wait-p50, wait-p95, autoscale, last-decision") != std::string::npos);
  r = run("ps --format NAME,Node,ages --admin " + no_daemon());
  CHECK(r.code == 2);
  CHECK(r.out.find("unknown field 'ages'") != std::string::npos);
  CHECK(run("ps --format name,node,age --admin " + no_daemon()).code == 3);
  CHECK(run("status -q --format service").code == 2);
  CHECK(run("ps -q -o json").code == 2);
}

TEST_CASE("reload and invoke without a daemon exit 3; invoke needs a SERVICE", "[cli][errors]") {
  auto r = run("reload --admin " + no_daemon());
  CHECK(r.code == 3);
  CHECK(r.out.find("is `dockscaler serve` running?") != std::string::npos);
  CHECK(run("invoke hello --admin " + no_daemon()).code == 3);
  CHECK(run("invoke").code == 2);
  CHECK(run("invoke hello --timeout soon --admin " + no_daemon()).code == 2);
  CHECK(run("invoke hello -H NoColon --admin " + no_daemon()).code == 2);
}

TEST_CASE("durations and ages carry their unit", "[cli][units]") {
  using dockscaler::cli::age_text;
  using dockscaler::cli::seconds_text;
  CHECK(seconds_text(0) == "0s");
  CHECK(seconds_text(-1) == "0s");
  CHECK(seconds_text(0.000042) == "42µs");
  CHECK(seconds_text(0.6095) == "609.5ms");
  CHECK(seconds_text(1.2) == "1.2s");
  CHECK(seconds_text(125) == "2m5s");
  CHECK(age_text(0) == "0s");
  CHECK(age_text(192) == "3m12s");
  CHECK(age_text(7500) == "2h5m");
  CHECK(age_text(273600) == "3d4h");
  using dockscaler::cli::format_columns;
  const std::vector<std::string> header = {"SERVICE", "IN-FLIGHT", "LAST DECISION"};
  CHECK(format_columns(header, "last-decision,service") == std::vector<std::size_t>{2, 0});
  CHECK(format_columns(header, "in_flight") == std::vector<std::size_t>{1});
  CHECK_THROWS_AS(format_columns(header, "service,"), std::invalid_argument);
}

TEST_CASE("bash completion: registered for dockscaler; completes commands and options",
          "[cli][completion]") {
  // bash's own compgen, driven through the completion function as readline would.
  const std::string script = std::string(DOCKSCALER_SOURCE_DIR) + "/cli/completion/dockscaler.bash";
  auto complete = [&](const std::string& words) {
    // The completion reads the commands and options from the program's --help.
    const std::string bin_dir = std::filesystem::path(DOCKSCALER_BIN).parent_path().string();
    const std::string cmd = "PATH=" + bin_dir + ":$PATH bash -c 'source " + script +
                            " && complete -p dockscaler && COMP_WORDS=(" + words +
                            ") && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _dockscaler && "
                            "printf \"%s\\n\" \"${COMPREPLY[@]}\"' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    CHECK(::pclose(p) == 0);
    return out;
  };
  const std::string registered = "complete -F _dockscaler dockscaler\n";
  CHECK(complete("dockscaler sc") == registered + "scale\n");
  CHECK(complete("dockscaler status --q") == registered + "--quiet\n");
  CHECK(complete("dockscaler --log-level w") == registered + "warn\n");
  CHECK(complete("dockscaler invoke -X P") == registered + "POST\nPUT\nPATCH\n");
  CHECK(complete("dockscaler --admin unix:///x invoke --ins") == registered + "--insecure\n");
  CHECK(complete("dockscaler help rel") == registered + "reload\n");
  // The zsh one at least parses, where zsh is installed.
  if (std::system("command -v zsh >/dev/null 2>&1") == 0)
    CHECK(
        std::system(("zsh -n " + std::string(DOCKSCALER_SOURCE_DIR) + "/cli/completion/_dockscaler")
                        .c_str()) == 0);
  // Every command the program lists is offered.
  const std::string all = complete("dockscaler \"\"");
  for (const auto& c : listed_commands()) CHECK(all.find("\n" + c + "\n") != std::string::npos);
}

TEST_CASE("the man page names every command and every long option of each --help", "[cli][man]") {
  const std::string man = slurp(std::string(DOCKSCALER_SOURCE_DIR) + "/docs/dockscaler.1");
  REQUIRE_FALSE(man.empty());
  auto roff = [](std::string s) {  // "--log-level" as roff writes it: "\-\-log\-level"
    std::string out;
    for (char c : s) out += c == '-' ? std::string("\\-") : std::string(1, c);
    return out;
  };
  const std::regex long_option(R"(--[a-z][a-z-]*)");
  std::set<std::string> options;
  auto collect = [&](const std::string& help) {
    for (std::sregex_iterator it(help.begin(), help.end(), long_option), end; it != end; ++it)
      options.insert(it->str());
  };
  collect(run("--help").out);
  for (const auto& c : listed_commands()) {
    INFO(c);
    CHECK(man.find(".SS " + c) != std::string::npos);
    if (c != "help") collect(run(c + " --help").out);
  }
  for (const auto& o : options) {
    INFO(o);
    CHECK(man.find(roff(o)) != std::string::npos);
  }
}

TEST_CASE("cmake --install puts the completions and the man page where shells and man look",
          "[cli][install]") {
  const std::string prefix = "/tmp/dockscaler-test-" + std::to_string(::getpid()) + "-prefix";
  std::filesystem::remove_all(prefix);
  const auto r = ::system(("cmake --install " + std::string(DOCKSCALER_BUILD_DIR) + " --prefix " +
                           prefix + " >/dev/null")
                              .c_str());
  REQUIRE(r == 0);
  CHECK(slurp(prefix + "/share/bash-completion/completions/dockscaler") ==
        slurp(std::string(DOCKSCALER_SOURCE_DIR) + "/cli/completion/dockscaler.bash"));
  CHECK(std::filesystem::exists(prefix + "/share/zsh/site-functions/_dockscaler"));
  CHECK(slurp(prefix + "/share/man/man1/dockscaler.1") ==
        slurp(std::string(DOCKSCALER_SOURCE_DIR) + "/docs/dockscaler.1"));
  std::filesystem::remove_all(prefix);
}
