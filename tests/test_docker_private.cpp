// dockerapi against a private second dockerd, a child of the test (own socket,
// data-root, exec-root; no bridge, no iptables), never the main engine:
// - the events stream survives that dockerd being stopped and started again:
//   an event made after the restart but before the client reconnects arrives
//   (resume via `since`), and none arrives twice;
// - tcp:// with TLS configured from DOCKER_TLS_VERIFY / DOCKER_CERT_PATH
//   (certificates made with openssl), attach with stdin over TLS included.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
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

// A dockerd started with --bridge=none deletes the host's docker0 at start-up
// (that is what "no bridge" means to it), which would break the main engine's
// default network. So this whole test process, and the dockerd it starts,
// lives in a network namespace of its own, made before main() starts any
// thread: the socket files are shared through the filesystem, tcp://127.0.0.1
// is this namespace's own loopback. Without the privilege to do so (not root),
// the tests skip as before.
const bool own_netns = [] {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNET) != 0) return false;
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool up = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  up = up && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  if (fd >= 0) ::close(fd);
  return up;
}();

bool have_dockerd() {
  if (!own_netns) return false;
  for (const char* d : {"/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd"})
    if (::access(d, X_OK) == 0) return true;
  return false;
}

class private_dockerd {
 public:
  explicit private_dockerd(std::string dir, std::vector<std::string> extra = {})
      : dir_(std::move(dir)), extra_(std::move(extra)) {
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
                                  "-H",
                                  host(),
                                  "--data-root",
                                  dir_ + "/data",
                                  "--exec-root",
                                  dir_ + "/exec",
                                  "--pidfile",
                                  dir_ + "/d.pid",
                                  "--config-file",
                                  dir_ + "/daemon.json",
                                  "--bridge=none",
                                  "--iptables=false",
                                  "--ip-masq=false"};
    args.insert(args.end(), extra_.begin(), extra_.end());
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
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// A CA, a server certificate for 127.0.0.1 and a client certificate, named as
// DOCKER_CERT_PATH expects (ca.pem, cert.pem, key.pem).
bool make_certs(const std::string& dir) {
  std::string cmd =
      "set -e; cd '" + dir +
      "'; exec >openssl.log 2>&1;"
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj "
      "/CN=dockscaler-test-ca;"
      "openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj "
      "/CN=127.0.0.1;"
      "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext;"
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out "
      "server-cert.pem -days 2 -extfile server.ext;"
      "openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj "
      "/CN=dockscaler-test-client;"
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext;"
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem "
      "-days 2 -extfile client.ext";
  return std::system(cmd.c_str()) == 0;
}

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
    WARN(
        "skipped: a private dockerd needs root (for its own network namespace) and the dockerd "
        "binary");
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
    docker.events(
        eo,
        [&](const api::event& e) {
          std::lock_guard lk(mu);
          events.push_back(e);
        },
        stop.get_token());
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

  CHECK(
      eventually([&] { return count(c2.id, "create") == 1 && count(c1.id, "destroy") == 1; }, 60s));
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

TEST_CASE("tcp:// with TLS from DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, attach included",
          "[docker][tls]") {
  if (::geteuid() != 0 || !have_dockerd() || std::system("openssl version >/dev/null 2>&1") != 0) {
    WARN("skipped: needs root (for its own network namespace), dockerd and openssl");
    return;
  }
  std::string dir = "/tmp/dockscaler-tls-" + run_id();
  std::filesystem::create_directories(dir + "/certs");
  REQUIRE(make_certs(dir + "/certs"));
  int port = dockscaler::test::free_port();
  std::string tcp = "tcp://127.0.0.1:" + std::to_string(port);
  private_dockerd daemon(
      dir, {"-H", tcp, "--tlsverify", "--tlscacert", dir + "/certs/ca.pem", "--tlscert",
            dir + "/certs/server-cert.pem", "--tlskey", dir + "/certs/server-key.pem"});
  daemon.start();

  ::setenv("DOCKER_HOST", tcp.c_str(), 1);
  ::setenv("DOCKER_TLS_VERIFY", "1", 1);
  ::setenv("DOCKER_CERT_PATH", (dir + "/certs").c_str(), 1);
  auto o = api::client_options::from_env();
  ::unsetenv("DOCKER_HOST");
  ::unsetenv("DOCKER_TLS_VERIFY");
  ::unsetenv("DOCKER_CERT_PATH");
  REQUIRE(o.tls.has_value());
  o.connect_timeout = 2s;
  api::client docker(o);
  REQUIRE(eventually([&] { return answers(docker); }, 90s));
  CHECK(docker.api_version() == "1.41");

  // Without a client certificate the daemon refuses the handshake.
  auto bad = o;
  bad.tls->cert_file.clear();
  bad.tls->key_file.clear();
  try {
    api::client(bad).ping();
    FAIL("ping without a client certificate succeeded");
  } catch (const api::error& e) {
    // TLS 1.3 reports the rejected client only after the handshake: a recv error.
    CHECK((e.code() == api::errc::unreachable || e.code() == api::errc::protocol));
  }
  // Plain HTTP to the TLS port is refused too, as a typed error.
  auto plain = o;
  plain.tls.reset();
  plain.host = tcp;
  CHECK_THROWS_AS(api::client(plain).ping(), api::error);

  std::string image = "dockscaler-test-echo:" + run_id();
  api::build_options b;
  b.tags = {image};
  docker.build_image(dockscaler::test::echo_context(), b);
  api::container_spec spec;
  spec.image = image;
  spec.network = "none";
  spec.cmd = std::vector<std::string>{"3"};
  spec.open_stdin = spec.stdin_once = spec.attach_stdin = spec.attach_stdout = spec.attach_stderr =
      true;
  auto c = docker.create_container(spec);
  auto stream = docker.attach(c.id);
  docker.start_container(c.id);
  stream.write_stdin("over tls\n");
  stream.close_stdin();
  auto out = stream.read_all(60s);
  CHECK(out.out == "over tls\n");
  CHECK(out.err.find("echo: done") != std::string::npos);
  CHECK(docker.wait_container(c.id, api::wait_condition::not_running, 60s).exit_code == 3);
  CHECK(docker.logs(c.id).out == "over tls\n");
  docker.remove_container(c.id, true);
  docker.remove_image(image, true);
}
