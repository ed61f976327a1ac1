// hello-http: the example HTTP function. A small static HTTP/1.1 server with
// keep-alive, meant to run as PID 1 in a FROM-scratch image:
//   GET /healthz        -> 200 "ok"
//   anything else       -> 200 "<GREETING> from <hostname>\n" (request body is read and discarded)
//   ?delay=MS or env DELAY_MS delays each answer, so load tests can saturate it.
// PORT (default 8080) picks the port. SIGTERM/SIGINT stop it at once: as PID 1 it
// would otherwise ignore them and every `docker stop` would wait its timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct settings {
  std::string greeting;
  std::string host;
  long delay_ms;
};

// What the answer depends on, from one request head.
struct request_head {
  std::string target;
  bool http10 = false;
  bool close_after = false;
  long long content_length = 0;
};

// Reads until buf holds a whole head; returns where it ends, or npos when the
// peer closed or sent an oversized head.
size_t read_head(int fd, std::string& buf) {
  char chunk[16384];
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > 64 * 1024) return std::string::npos;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::string::npos;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return end;
}

request_head parse_head(std::string_view head) {
  request_head r;
  size_t line_end = head.find("\r\n");
  std::string_view request_line = head.substr(0, line_end);
  r.http10 = request_line.size() >= 8 && request_line.substr(request_line.size() - 8) == "HTTP/1.0";
  r.close_after = r.http10;
  bool chunked = false;
  size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string_view::npos) next = head.size();
    std::string_view line = head.substr(pos, next - pos);
    if (iequals_prefix(line, "content-length:"))
      r.content_length = std::atoll(std::string(line.substr(15)).c_str());
    if (iequals_prefix(line, "transfer-encoding:")) chunked = true;
    if (iequals_prefix(line, "connection:")) {
      std::string v(line.substr(11));
      for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (v.find("close") != std::string::npos) r.close_after = true;
      if (v.find("keep-alive") != std::string::npos) r.close_after = false;
    }
    pos = next + 2;
  }
  if (chunked) r.close_after = true;  // body framing we do not parse: answer, then close
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  if (sp1 != std::string_view::npos && sp2 > sp1)
    r.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  return r;
}

// Discards a body (it may arrive after the head); false when the peer closed.
bool skip_body(int fd, std::string& buf, long long length) {
  char chunk[16384];
  while (length > 0) {
    if (!buf.empty()) {
      size_t take = std::min<size_t>(buf.size(), static_cast<size_t>(length));
      buf.erase(0, take);
      length -= static_cast<long long>(take);
      continue;
    }
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return true;
}

std::string answer(const request_head& r, const settings& s) {
  long delay = s.delay_ms;
  if (size_t q = r.target.find("delay="); q != std::string::npos)
    delay = std::atol(r.target.c_str() + q + 6);
  std::string body;
  if (r.target == "/healthz") {
    body = "ok\n";
  } else {
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    body = s.greeting + " from " + s.host + "\n";
  }
  return std::string(r.http10 ? "HTTP/1.0" : "HTTP/1.1") +
         " 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" +
         (r.close_after ? "Connection: close\r\n"
                        : (r.http10 ? "Connection: keep-alive\r\n" : "")) +
         "\r\n" + body;
}

// One connection: parse requests one after another (keep-alive) until the peer
// closes, asks to close, or sends something we do not understand.
void serve(int fd, const settings& s) {
  std::string buf;
  for (;;) {
    const size_t end = read_head(fd, buf);
    if (end == std::string::npos) break;
    const request_head r = parse_head(std::string_view(buf.data(), end));
    buf.erase(0, end + 4);
    if (!skip_body(fd, buf, r.content_length)) break;
    if (!send_all(fd, answer(r, s)) || r.close_after) break;
  }
  ::close(fd);
}

void on_signal(int) { _exit(0); }

}  // namespace

int main() {
  ::signal(SIGTERM, on_signal);
  ::signal(SIGINT, on_signal);
  ::signal(SIGPIPE, SIG_IGN);

  settings s;
  s.greeting = env_or("GREETING", "hello");
  char hn[256] = {};
  ::gethostname(hn, sizeof hn - 1);
  s.host = hn;
  s.delay_ms = std::atol(env_or("DELAY_MS", "0").c_str());
  int port = std::atoi(env_or("PORT", "8080").c_str());

  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 1024) != 0) {
    std::fprintf(stderr, "hello-http: cannot listen on port %d: %s\n", port, std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "hello-http: listening on port %d\n", port);
  std::printf("hello-http: %s from %s, ready\n", s.greeting.c_str(), s.host.c_str());
  std::fflush(stdout);
  for (;;) {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) continue;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread([fd, &s] { serve(fd, s); }).detach();
  }
}
