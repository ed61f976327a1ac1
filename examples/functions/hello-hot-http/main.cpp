// hello-hot-http: IronFunctions' hello as a hot function in the `http`
// format (docs/functions.md): one process serves call after call. Each call
// arrives on stdin as an HTTP/1.1 request whose body has a Content-Length;
// each answer goes to stdout as one HTTP/1.1 response with a Content-Length.
// Body {"Name":"Alice"} -> "Hello Alice!\n", anything else "Hello World!\n".
// As PID 1 a signal without a handler is ignored, so SIGTERM gets one:
// `docker stop` (a scale-down) then ends it at once.
#include <rapidjson/document.h>
#include "../hello_name.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

// Reads one request's head (up to its blank line) and returns its
// Content-Length; false at the end of stdin.
bool read_head(std::size_t& length) {
  length = 0;
  std::string line;
  bool first = true;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (first) continue;  // tolerate blank lines between requests
      return true;
    }
    first = false;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;  // the request line
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "content-length") length = std::strtoul(line.c_str() + colon + 1, nullptr, 10);
  }
  return false;
}

void on_signal(int sig) { std::_Exit(128 + sig); }

}  // namespace

int main() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::ios::sync_with_stdio(false);
  std::size_t length = 0;
  while (read_head(length)) {
    std::string body(length, '\0');
    if (!std::cin.read(body.data(), static_cast<std::streamsize>(length))) return 0;
    const std::string answer = "Hello " + name_from(body) + "!\n";
    std::cout << "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " << answer.size()
              << "\r\n\r\n"
              << answer << std::flush;  // one answer per call, sent at once
  }
  return 0;
}
