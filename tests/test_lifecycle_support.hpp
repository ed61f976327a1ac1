// Helpers for test_lifecycle_e2e (the daemon's signals, reloads, exit codes
// and log format): a sampler that records a service's state (view_of) all
// through a reload, and a child process started with any command line and
// environment (the global options before `serve`, a
// DOCKER_HOST that goes nowhere), its stdout and stderr in files of their own.
#pragma once

#include "test_daemon_support.hpp"

namespace dockscaler::test {

// Samples a service from a thread of its own, as often as the admin API
// answers (with a short pause between), until stopped.
class service_sampler {
 public:
  service_sampler(std::string admin_socket, std::string name)
      : thread_([this, socket = std::move(admin_socket), name = std::move(name)] {
          while (!stop_) {
            auto s = view_of(socket, name);
            {
              std::lock_guard lock(mu_);
              samples_.push_back(s);
            }
            std::this_thread::sleep_for(10ms);
          }
        }) {}
  ~service_sampler() { stop(); }
  // Joins the thread; samples() then holds everything it saw.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<daemon_view> samples() {
    std::lock_guard lock(mu_);
    return samples_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<daemon_view> samples_;
  std::thread thread_;  // last: started once the rest is constructed
};

// A child process: `args` (args[0] the program) with `env` added to ours,
// stdout and stderr appended to files of their own. Killed (SIGKILL) and
// reaped when the object goes, unless it was waited for.
class child_process {
 public:
  child_process(std::vector<std::string> args, const std::string& out, const std::string& err,
                const std::map<std::string, std::string>& env = {}) {
    pid_ = ::fork();
    if (pid_ != 0) return;
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::dup2(::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644), 1);
    ::dup2(::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644), 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ~child_process() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Its exit code (128 + signal when killed by one), or -1 while it still
  // runs after `limit`.
  int wait_exit(std::chrono::seconds limit = 60s) {
    int status = 0;
    const bool exited =
        pid_ > 0 && eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit);
    if (!exited) return pid_ > 0 ? -1 : code_;
    pid_ = 0;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return code_;
  }

 private:
  pid_t pid_ = 0;
  int code_ = -1;
};

struct run_result {
  int code = -1;  // -1: still running after the limit (then killed)
  std::string out, err;
};

// Runs `dockscaler ARGS...` to its end with `env` added; `dir` holds its output files.
inline run_result run_dockscaler(const std::vector<std::string>& args, const std::string& dir,
                                 const std::map<std::string, std::string>& env = {}) {
  static int n = 0;
  const std::string base = dir + "/run-" + std::to_string(++n);
  std::vector<std::string> argv = {DOCKSCALER_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  run_result r;
  {
    child_process p(argv, base + ".out", base + ".err", env);
    r.code = p.wait_exit(120s);
  }
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  return r;
}

// The lines of `text` (without their '\n'); a last line without one counts.
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace dockscaler::test
