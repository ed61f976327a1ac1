// A headless Chromium driven over the DevTools protocol, for tests that
// check what a page renders: Chromium started with --remote-debugging-pipe
// (commands on its descriptor 3, answers on 4, each JSON message ended by a
// NUL byte), one tab opened on a URL, JavaScript evaluated in it. Pipes
// rather than a WebSocket: no port to pick, nothing else can connect.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace dockscaler::test {

// The Chromium binary: $DOCKSCALER_CHROMIUM, else chromium on the PATH; "" when none.
inline std::string chromium_binary() {
  if (const char* c = std::getenv("DOCKSCALER_CHROMIUM"); c && *c) return c;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

class browser {
 public:
  // Starts Chromium with a profile of its own under `dir`. Throws when it cannot.
  explicit browser(const std::string& dir) {
    int to_chrome[2], from_chrome[2];
    if (::pipe(to_chrome) != 0 || ::pipe(from_chrome) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(to_chrome[0], 3);
      ::dup2(from_chrome[1], 4);
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      for (int fd = 5; fd < 1024; ++fd) ::close(fd);
      const std::string bin = chromium_binary();
      std::vector<std::string> args = {bin,
                                       "--headless",
                                       "--no-sandbox",  // tests run as root in CI
                                       "--disable-gpu",
                                       "--disable-dev-shm-usage",
                                       "--no-first-run",
                                       "--remote-debugging-pipe",
                                       "--user-data-dir=" + dir + "/chromium-profile",
                                       "--window-size=1280,1600",
                                       "about:blank"};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(to_chrome[0]);
    ::close(from_chrome[1]);
    out_ = to_chrome[1];
    in_ = from_chrome[0];
  }
  ~browser() {
    if (out_ >= 0) ::close(out_);  // Chromium ends when its pipe closes; SIGKILL if it lingers
    if (in_ >= 0) ::close(in_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  browser(const browser&) = delete;
  browser& operator=(const browser&) = delete;

  // Opens a tab on `url` and attaches to it; later calls evaluate in it.
  void open(const std::string& url) {
    auto target = call("Target.createTarget", "{\"url\":" + quoted(url) + "}", false);
    const std::string id = target["result"]["targetId"].GetString();
    auto attached =
        call("Target.attachToTarget", "{\"targetId\":" + quoted(id) + ",\"flatten\":true}", false);
    session_ = attached["result"]["sessionId"].GetString();
  }

  // The value of `expression` in the tab, as JSON text ("" when it threw).
  std::string eval(const std::string& expression) {
    auto r = call("Runtime.evaluate",
                  "{\"expression\":" + quoted(expression) + ",\"returnByValue\":true}", true);
    if (!r.HasMember("result") || r["result"].HasMember("exceptionDetails")) return {};
    const auto& v = r["result"]["result"];
    if (!v.HasMember("value")) return {};
    rapidjson::StringBuffer b;
    rapidjson::Writer<rapidjson::StringBuffer> w(b);
    v["value"].Accept(w);
    return b.GetString();
  }

 private:
  static std::string quoted(const std::string& s) {
    rapidjson::StringBuffer b;
    rapidjson::Writer<rapidjson::StringBuffer> w(b);
    w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    return b.GetString();
  }

  // Sends a command and waits (60 s at most) for its answer, skipping events.
  rapidjson::Document call(const std::string& method, const std::string& params, bool in_tab) {
    const int id = ++next_id_;
    std::string msg = "{\"id\":" + std::to_string(id) + ",\"method\":\"" + method +
                      "\",\"params\":" + params +
                      (in_tab ? ",\"sessionId\":" + quoted(session_) : std::string()) + "}";
    msg.push_back('\0');
    for (std::size_t off = 0; off < msg.size();) {
      const auto n = ::write(out_, msg.data() + off, msg.size() - off);
      if (n <= 0) throw std::runtime_error("chromium: its pipe closed");
      off += static_cast<std::size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      for (auto end = in_buf_.find('\0'); end != std::string::npos; end = in_buf_.find('\0')) {
        rapidjson::Document d;
        d.Parse(in_buf_.c_str(), end);
        in_buf_.erase(0, end + 1);
        if (!d.HasParseError() && d.IsObject() && d.HasMember("id") && d["id"].IsInt() &&
            d["id"].GetInt() == id)
          return d;
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("chromium: no answer to " + method);
      pollfd p{in_, POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[65536];
      const auto n = ::read(in_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("chromium: it exited");
      in_buf_.append(buf, static_cast<std::size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  int next_id_ = 0;
  std::string session_;
  std::string in_buf_;
};

}  // namespace dockscaler::test
