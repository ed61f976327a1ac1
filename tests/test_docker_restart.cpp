// The events stream survives a dockerd restart: a private second dockerd (own
// socket, data-root, exec-root; no bridge, no iptables) runs as a child of the
// test and is stopped and started again while the client watches events. An
// event made after the restart but before the client reconnects must arrive
// (resume via `since`), and none twice. The main engine is never touched.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "dockerapi/client.hpp"
#include "test_docker_support.hpp"

namespace api = dockscaler::dockerapi;
using dockscaler::test::eventually;
using dockscaler::test::run_id;
using namespace std::chrono_literals;

namespace {

bool have_dockerd() {
  for (const char* d : {"/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd"})
    if (::access(d, X_OK) == 0) return true;
  return false;
}

class private_dockerd {
 public:
  explicit private_dockerd(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    std::FILE* f = std::fopen((dir_ + "/daemon.json").c_str(), "w");
    std::fputs("{}\n", f);
    std::fclose(f);
  }
  ~private_dockerd() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string host() const { return "unix://" + dir_ + "/d.sock"; }

  void start() {
    REQUIRE(pid_ <= 0);
    std::vector<std::string> args{"dockerd",
                                  "-H", host(),
                                  "--data-root", dir_ + "/data",
                                  "--exec-root", dir_ + "/exec",
                                  "--pidfile", dir_ + "/d.pid",
                                  "--config-file", dir_ + "/daemon.json",
                                  "--bridge=none", "--iptables=false", "--ip-masq=false"};
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int log = ::open((dir_ + "/dockerd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("dockerd", argv.data());
      ::execv("/usr/sbin/dockerd", argv.data());
      ::_exit(127);
    }
  }
  // SIGTERM and wait: dockerd shuts its containerd down cleanly.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    auto end = std::chrono::steady_clock::now() + 60s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    pid_ = -1;
  }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

bool answers(api::client& c) {
  try {
    c.ping();
    return true;
  } catch (const api::error&) {
    return false;
  }
}

}  // namespace

TEST_CASE("events resume across a dockerd restart without losing events", "[docker][events]") {
  if (::geteuid() != 0 || !have_dockerd()) {
    WARN("skipped: a private dockerd needs root and the dockerd binary");
    return;
  }
  private_dockerd daemon("/tmp/dockscaler-dockerd-" + run_id());
  daemon.start();
  api::client_options o;
  o.host = daemon.host();
  o.connect_timeout = 2s;
  api::client docker(o);
  REQUIRE(eventually([&] { return answers(docker); }, 90s));

  api::labels labels{{"dockscaler.test", run_id()}};
  std::string image = "dockscaler-test-echo:" + run_id();
  api::build_options b;
  b.tags = {image};
  b.labels = labels;
  docker.build_image(dockscaler::test::echo_context(), b);
  api::container_spec spec;
  spec.image = image;
  spec.labels = labels;
  spec.network = "none";

  // The reconnect waits for this gate, so the test decides when the client
  // comes back: strictly after the event made while it was away.
  std::mutex mu;
  std::condition_variable cv;
  bool gate_open = false;
  std::vector<api::event> events;
  std::atomic<int> connects{0}, drops{0};
  api::event_options eo;
  eo.filters = {{"type", {"container"}}, {"label", {dockscaler::test::label_filter()}}};
  eo.backoff = [&](int) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, 120s, [&] { return gate_open; });
    return 200ms;
  };
  eo.on_state = [&](const api::error* e) { e ? ++drops : ++connects; };
  std::stop_source stop;
  std::thread watcher([&] {
    docker.events(eo, [&](const api::event& e) {
      std::lock_guard lk(mu);
      events.push_back(e);
    }, stop.get_token());
  });
  auto count = [&](const std::string& id, const std::string& action) {
    std::lock_guard lk(mu);
    return std::count_if(events.begin(), events.end(), [&](const api::event& e) {
      return e.actor_id == id && e.action == action;
    });
  };
  REQUIRE(eventually([&] { return connects == 1; }));
  auto c1 = docker.create_container(spec);
  REQUIRE(eventually([&] { return count(c1.id, "create") == 1; }));

  daemon.stop();
  REQUIRE(eventually([&] { return drops >= 1; }));
  daemon.start();
  REQUIRE(eventually([&] { return answers(docker); }, 90s));
  auto c2 = docker.create_container(spec);  // while the stream is away
  CHECK(connects == 1);
  docker.remove_container(c1.id);
  {
    std::lock_guard lk(mu);
    gate_open = true;
  }
  cv.notify_all();

  CHECK(eventually([&] { return count(c2.id, "create") == 1 && count(c1.id, "destroy") == 1; }, 60s));
  stop.request_stop();
  {
    std::lock_guard lk(mu);
    gate_open = true;
  }
  cv.notify_all();
  watcher.join();
  CHECK(connects == 2);
  CHECK(count(c1.id, "create") == 1);  // not replayed twice
  CHECK(count(c2.id, "create") == 1);
  CHECK(count(c1.id, "destroy") == 1);

  docker.remove_container(c2.id, true);
  docker.remove_image(image, true);
}
