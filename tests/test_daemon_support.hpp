// Helpers shared by the suites that run the real `dockscaler` binary against
// the real engine (test_serve_e2e, test_scale_down_e2e, test_cli_e2e, …): the
// hello-http image built once per run, a daemon child process with its own
// config and log, a per-test service with its own port and network, the
// service as the daemon's admin API reports it, HTTP requests and load on
// loopback (one-shot or keep-alive clients; a cut answer is a socket error,
// never a status). Everything carries this run's id and is removed by the
// fixtures.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "admin/client.hpp"
#include "test_docker_support.hpp"

namespace dockscaler::test {

using namespace std::chrono_literals;
namespace api = dockscaler::dockerapi;
using steady = std::chrono::steady_clock;

inline const std::string& image() {
  static const std::string name = "dockscaler-test-hello:" + run_id();
  return name;
}
inline std::string network() { return "dockscaler-test-" + run_id(); }

// Builds image `tag` from `context` once per run, labelled with the run id; it
// is removed when the test program exits (after every fixture has removed its
// containers).
inline void build_image_once(api::client& docker, const std::string& tag,
                             const std::function<std::string()>& context) {
  struct registry {
    std::mutex mu;
    std::set<std::string> built;
    ~registry() {
      for (const auto& t : built) {
        try {
          api::client().remove_image(t, true);
        } catch (...) {
          // Best effort: a leftover image is labelled with the run id.
        }
      }
    }
  };
  static registry r;
  std::lock_guard lock(r.mu);
  if (r.built.count(tag)) return;
  api::build_options b;
  b.tags = {tag};
  b.labels = {{"dockscaler.test", run_id()}};
  docker.build_image(context(), b);
  r.built.insert(tag);
}

// The hello-http image (examples/hello-http).
inline void ensure_image(api::client& docker) {
  build_image_once(docker, image(),
                   [] { return scratch_context(DOCKSCALER_HELLO_BIN, "hello-http"); });
}

struct response {
  int status = 0;    // 0: no answer, or an answer cut short (see `error`)
  std::string head;  // status line and header fields
  std::string body;
  std::chrono::nanoseconds took{};
  std::string error;  // why status is 0: refused, reset, closed, timed out, cut
};

// A TCP connection to loopback `port` with a receive timeout; -1 when refused.
// A connection to `ip`:`port` (IPv4), or -1 (errno says why).
inline int connect_ipv4(const std::string& ip, std::uint16_t port, std::chrono::seconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect() too
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  ::close(fd);
  return -1;
}

inline int connect_loopback(std::uint16_t port, std::chrono::seconds timeout) {
  return connect_ipv4("127.0.0.1", port, timeout);
}

namespace detail {

inline bool send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// Appends what arrives to `in`; false at the end of the stream, with the
// reason in `why` (EAGAIN is the receive timeout).
inline bool receive_more(int fd, std::string& in, std::string& why) {
  char buf[65536];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    why = n == 0 ? "closed by the peer" : errno == EAGAIN ? "timed out" : std::strerror(errno);
    return false;
  }
}

// The value of header field `name` (lower case) in `head`, or "" when absent.
inline std::string header_field(const std::string& head, const std::string& name) {
  std::string lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto at = lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return {};
  auto from = at + name.size() + 3;
  const auto to = lower.find("\r\n", from);
  while (from < lower.size() && lower[from] == ' ') ++from;
  return lower.substr(from, to == std::string::npos ? std::string::npos : to - from);
}

// Where a chunked body that starts at `from` ends (past its last CRLF), or
// npos while incomplete; the decoded bytes go to `out`.
inline std::size_t chunked_end(const std::string& in, std::size_t from, std::string& out) {
  out.clear();
  for (std::size_t pos = from;;) {
    const auto eol = in.find("\r\n", pos);
    if (eol == std::string::npos) return std::string::npos;
    const auto size = std::strtoul(in.c_str() + pos, nullptr, 16);
    if (size == 0) return in.compare(eol + 2, 2, "\r\n") == 0 ? eol + 4 : std::string::npos;
    if (in.size() < eol + 2 + size + 2) return std::string::npos;
    out.append(in, eol + 2, size);
    pos = eol + 2 + size + 2;
  }
}

}  // namespace detail

// Reads one response from `fd`; `in` holds bytes already read (and keeps any
// read past this response). A response counts only when its whole body (by
// Content-Length, chunks, or the close) arrived; otherwise status 0 and
// `error` say why. `to_eof`: read until the peer closes, as a Connection:
// close client does. Returns whether the connection may carry another request.
inline bool read_http_response(int fd, std::string& in, response& r, bool to_eof) {
  std::string why;
  std::size_t end;
  while ((end = in.find("\r\n\r\n")) == std::string::npos)
    if (!detail::receive_more(fd, in, why)) {
      r.error = (in.empty() ? "no answer: " : "cut answer (head): ") + why;
      return false;
    }
  if ((in.rfind("HTTP/1.1 ", 0) != 0 && in.rfind("HTTP/1.0 ", 0) != 0) || end < 12) {
    r.error = "not an HTTP response";
    return false;
  }
  const std::string head = in.substr(0, end);
  const auto length = detail::header_field(head, "content-length");
  const bool chunked =
      detail::header_field(head, "transfer-encoding").find("chunked") != std::string::npos;
  const bool close = detail::header_field(head, "connection").find("close") != std::string::npos;
  std::size_t body_end = std::string::npos;  // past the body, when framed
  std::string body;
  for (bool open = true;;) {
    if (!length.empty() && in.size() >= end + 4 + std::stoul(length))
      body_end = end + 4 + std::stoul(length);
    if (chunked) body_end = detail::chunked_end(in, end + 4, body);
    const bool framed = !length.empty() || chunked;
    if (body_end != std::string::npos && !to_eof) break;
    if (!open) {
      if (framed && body_end == std::string::npos) {
        r.error = "cut answer (body): " + why;
        return false;
      }
      if (!framed && why != "closed by the peer") {
        r.error = "cut answer (close-delimited body): " + why;
        return false;
      }
      break;
    }
    open = detail::receive_more(fd, in, why);
  }
  if (body_end == std::string::npos) body_end = in.size();
  r.status = std::atoi(in.c_str() + 9);
  r.head = head;
  r.body = chunked ? body : in.substr(end + 4, body_end - end - 4);
  in.erase(0, body_end);
  return !to_eof && !close && (!length.empty() || chunked);
}

// One request with Connection: close (and Content-Length unless a bodiless
// GET); `extra_headers` are whole "Name: value\r\n" lines. A missing or cut
// answer gives status 0 (`error` says which).
inline response http_request_to(const std::string& ip, std::uint16_t port,
                                const std::string& method, const std::string& target,
                                const std::string& body = {}, const std::string& extra_headers = {},
                                std::chrono::seconds timeout = 30s) {
  response r;
  const auto t0 = steady::now();
  int fd = connect_ipv4(ip, port, timeout);
  if (fd < 0) {
    r.error = std::string("connect: ") + std::strerror(errno);
  } else {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n";
    if (method != "GET" || !body.empty())
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += extra_headers + "\r\n" + body;
    std::string in;
    if (!detail::send_all(fd, req))
      r.error = std::string("send: ") + std::strerror(errno);
    else
      read_http_response(fd, in, r, true);
    ::close(fd);
  }
  r.took = steady::now() - t0;
  return r;
}

// One client connection reused request after request, as pooled HTTP clients
// do. A request that fails (status 0) closes it; the next one reconnects, so
// connections() counts how often the connection was lost.
class keep_alive_client {
 public:
  explicit keep_alive_client(std::uint16_t port, std::chrono::seconds timeout = 30s)
      : port_(port), timeout_(timeout) {}
  ~keep_alive_client() { disconnect(); }
  keep_alive_client(const keep_alive_client&) = delete;
  keep_alive_client& operator=(const keep_alive_client&) = delete;

  response get(const std::string& target) {
    response r;
    const auto t0 = steady::now();
    if (fd_ < 0) {
      fd_ = connect_loopback(port_, timeout_);
      if (fd_ < 0)
        r.error = std::string("connect: ") + std::strerror(errno);
      else
        ++connections_;
    }
    if (fd_ >= 0) {
      const std::string req = "GET " + target + " HTTP/1.1\r\nHost: e2e\r\n\r\n";
      bool keep = false;
      if (!detail::send_all(fd_, req))
        r.error = std::string("send: ") + std::strerror(errno);
      else
        keep = read_http_response(fd_, in_, r, false);
      if (!keep) disconnect();
    }
    r.took = steady::now() - t0;
    return r;
  }
  std::size_t connections() const { return connections_; }

 private:
  void disconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    in_.clear();
  }
  std::uint16_t port_;
  std::chrono::seconds timeout_;
  int fd_ = -1;
  std::string in_;
  std::size_t connections_ = 0;
};

// The same on loopback.
inline response http_request(std::uint16_t port, const std::string& method,
                             const std::string& target, const std::string& body = {},
                             const std::string& extra_headers = {},
                             std::chrono::seconds timeout = 30s) {
  return http_request_to("127.0.0.1", port, method, target, body, extra_headers, timeout);
}

inline response http_get(std::uint16_t port, const std::string& target,
                         std::chrono::seconds timeout = 30s) {
  return http_request(port, "GET", target, {}, {}, timeout);
}

// A `dockscaler serve` child process with its own config file and log.
class daemon_process {
 public:
  daemon_process(const std::string& name, const std::string& yaml) {
    dir_ = "/tmp/dockscaler-e2e-" + run_id();
    ::mkdir(dir_.c_str(), 0755);
    config_ = dir_ + "/" + name + ".yaml";
    log_ = dir_ + "/" + name + ".log";
    std::ofstream(config_) << yaml;
  }
  ~daemon_process() { kill(SIGKILL); }

  // `env` is set in the child; a value "$PID" becomes the child's pid.
  void start(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {}) {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [k, v] : env)
        ::setenv(k.c_str(), v == "$PID" ? std::to_string(::getpid()).c_str() : v.c_str(), 1);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> args = {DOCKSCALER_BIN, "--log-level", "debug",
                                       "serve",        "-c",          config_};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
  }
  void kill(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
    if (sig == SIGKILL) wait();
  }
  // Exit code, or -1 when it did not exit within `limit`.
  int wait(std::chrono::seconds limit = 60s) {
    if (pid_ <= 0) return exit_code_;
    const auto end = steady::now() + limit;
    while (steady::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  std::string log() const { return read_file(log_); }
  const std::string& config_path() const { return config_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  void write_config(const std::string& yaml) { std::ofstream(config_) << yaml; }

 private:
  std::string dir_, config_, log_;
  pid_t pid_ = 0;
  int exit_code_ = -1;
};

// Per-test service: its name, port, and the containers Docker has for it.
struct service_fixture {
  api::client docker;
  std::string name;
  std::uint16_t port;
  std::string admin_socket;  // each daemon its own, so parallel runs never share one

  explicit service_fixture(const std::string& suffix)
      : name("e2e-" + run_id() + "-" + suffix),
        port(free_port()),
        admin_socket("/tmp/dockscaler-e2e-" + run_id() + "/" + suffix + ".sock") {
    ensure_image(docker);
  }
  ~service_fixture() {
    try {
      for (const auto& id : containers(true)) docker.remove_container(id, true);
      docker.remove_network(network());
    } catch (...) {
      // Another test's containers may still use the network; the last one removes it.
    }
  }

  std::vector<std::string> containers(bool all = false) {
    api::list_containers_options o;
    o.all = all;
    o.filters["label"] = {"dockscaler.service=" + name};
    std::vector<std::string> ids;
    for (const auto& c : docker.list_containers(o)) ids.push_back(c.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  // `top` goes before `services:` (e.g. admin: and metrics: sections).
  std::string config(const std::string& service_body, const std::string& top = {}) const {
    return "docker: { network: " + network() +
           " }\nproxy: { listen: 127.0.0.1:" + std::to_string(port) +
           " }\nadmin: { socket: " + admin_socket + " }\n" + top + "services:\n  " + name +
           ":\n    image: " + image() +
           "\n    route: { path_prefix: /fn, strip_prefix: true }\n"
           "    readiness: { http_get: /healthz, timeout: 20s }\n" +
           service_body;
  }

  bool proxy_up() {
    return eventually([&] { return http_get(port, "/healthz-of-the-proxy", 2s).status != 0; }, 30s);
  }
};

// A service as its daemon reports it (`GET /v1/services/<name>` on the admin
// socket; the suite must link dockscaler::admin to use it).
struct daemon_view {
  bool ok = false;        // the daemon answered 200 with a JSON object
  steady::time_point at;  // when it was asked
  unsigned desired = 0, ready = 0, starting = 0, draining = 0;
  std::uint64_t in_flight = 0;  // the service's requests in its containers
  unsigned outdated = 0;        // containers still of a previous spec
  double wait_p95 = -1;         // seconds over wait_time.window, as the scaler last sampled it
  std::uint64_t reconcile_passes = 0;
  struct container {
    std::string id, state;
    unsigned in_flight = 0;
    std::string node;  // its Swarm node's hostname; "" on one host
  };
  std::vector<container> containers;
  const container* in_state(const std::string& state) const {
    for (const auto& c : containers)
      if (c.state == state) return &c;
    return nullptr;
  }
};

inline daemon_view view_of(const std::string& admin_socket, const std::string& service) {
  daemon_view v;
  v.at = steady::now();
  admin::reply a;
  try {
    a = admin::request(admin_socket, "GET", "/v1/services/" + service, {}, 10s);
  } catch (const std::exception&) {
    return v;
  }
  rapidjson::Document d;
  d.Parse(a.body.c_str(), a.body.size());
  if (a.status != 200 || d.HasParseError() || !d.IsObject()) return v;
  auto uint = [](const rapidjson::Value& o, const char* key) -> std::uint64_t {
    const auto m = o.FindMember(key);
    return m != o.MemberEnd() && m->value.IsUint64() ? m->value.GetUint64() : 0;
  };
  v.ok = true;
  v.desired = static_cast<unsigned>(uint(d, "desired"));
  v.ready = static_cast<unsigned>(uint(d, "ready"));
  v.starting = static_cast<unsigned>(uint(d, "starting"));
  v.draining = static_cast<unsigned>(uint(d, "draining"));
  v.in_flight = uint(d, "in_flight");
  v.reconcile_passes = uint(d, "reconcile_passes");
  if (d.HasMember("wait_time") && d["wait_time"].HasMember("p95"))
    v.wait_p95 = d["wait_time"]["p95"].GetDouble();
  if (d.HasMember("containers") && d["containers"].IsArray())
    for (const auto& c : d["containers"].GetArray()) {
      v.containers.push_back(
          {c["id"].GetString(), c["state"].GetString(), static_cast<unsigned>(uint(c, "in_flight")),
           c.HasMember("node") && c["node"].IsString() ? c["node"].GetString() : ""});
      v.outdated += c.HasMember("outdated") && c["outdated"].IsTrue();
    }
  return v;
}

inline daemon_view view_of(const service_fixture& f) { return view_of(f.admin_socket, f.name); }

struct load_options {
  // Each client keeps one connection for all its requests (as pooled clients
  // do) instead of one Connection: close request per connection.
  bool keep_alive = false;
};

// Client threads looping GETs until stopped; every answer is recorded.
class load {
 public:
  load(std::uint16_t port, std::string target, int clients, load_options o = {}) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port, target, o] {
        keep_alive_client c(port);
        while (!stop_) {
          const auto sent = steady::now();
          auto r = o.keep_alive ? c.get(target) : http_get(port, target);
          std::lock_guard lock(mu_);
          results_.push_back({steady::now(), r.status, r.took, sent, std::move(r.error)});
        }
        connections_ += o.keep_alive ? c.connections() : 0;
      });
  }
  ~load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  struct result {
    steady::time_point at;  // answered (or failed)
    int status;             // 0: a socket error, see `error`
    std::chrono::nanoseconds took;
    steady::time_point sent;
    std::string error;
  };
  std::vector<result> results() {
    std::lock_guard lock(mu_);
    return results_;
  }

  // What the clients saw, split the way a scale-down test asks about it.
  struct tally {
    std::size_t ok = 0;             // 2xx
    std::size_t non_2xx = 0;        // an answer, but not 2xx
    std::size_t socket_errors = 0;  // refused, reset, closed or cut before a whole answer
    std::size_t before = 0;         // 2xx answered before `from`
    std::size_t after = 0;          // 2xx sent after `to`
    std::string failures;           // the first few failures, for the report
  };
  // Counts every result; `before`/`after` count 2xx answers outside [from, to].
  tally count(steady::time_point from = {}, steady::time_point to = steady::time_point::max()) {
    tally t;
    for (const auto& r : results()) {
      const bool ok = r.status >= 200 && r.status < 300;
      if (ok)
        ++t.ok;
      else if (r.status == 0)
        ++t.socket_errors;
      else
        ++t.non_2xx;
      if (ok && r.at < from) ++t.before;
      if (ok && r.sent > to) ++t.after;
      if (!ok && t.non_2xx + t.socket_errors <= 5)
        t.failures += std::to_string(r.status) + " " + r.error + " after " +
                      std::to_string(std::chrono::duration<double>(r.took).count()) + " s\n";
    }
    return t;
  }
  // Client connections opened by keep-alive clients so far (counted when each
  // client stops): one per client means none was ever broken.
  std::size_t connections() const { return connections_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> connections_{0};
  std::mutex mu_;
  std::vector<result> results_;
  std::vector<std::thread> threads_;
};

}  // namespace dockscaler::test
