// A hot function for tests/test_hot_functions_e2e.cpp (a static binary in a
// FROM scratch image), format from $HOT_FORMAT (http, the default, or json).
// Serves call after call; what it does with one is the body's first word:
//  - "die": exits 3 without answering (a function that dies mid-call);
//  - "garbage": writes a line that is no frame of either format;
//  - "hang": never answers (until SIGTERM);
//  - "status NNN": answers with status NNN;
//  - anything else: echoes the body (200), with X-Calls (its count of calls),
//    X-Host ($HOSTNAME: which container answered) and X-Echo (the request's
//    X-In header).
// One stderr line per call. SIGTERM ends it (the init passes it on; without
// the init it is PID 1, where an unhandled signal is ignored).
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

struct request {
  std::string body, x_in;
};

struct reply {
  unsigned status = 200;
  std::string body, x_in;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool read_http(request& r) {
  std::string line;
  std::size_t length = 0;
  bool started = false;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() && started) break;
    if (line.empty()) continue;
    started = true;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (name == "content-length") length = std::strtoul(value.c_str(), nullptr, 10);
    if (name == "x-in") r.x_in = value;
  }
  if (!started) return false;
  r.body.assign(length, '\0');
  return static_cast<bool>(std::cin.read(r.body.data(), static_cast<std::streamsize>(length)));
}

bool read_json(request& r) {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("body")) return false;
    r.body.assign(d["body"].GetString(), d["body"].GetStringLength());
    const auto& h = d["protocol"]["headers"];
    for (auto it = h.MemberBegin(); it != h.MemberEnd(); ++it)
      if (lower(it->name.GetString()) == "x-in" && it->value.Size() > 0)
        r.x_in = it->value[0].GetString();
    return true;
  }
  return false;
}

void write_http(const reply& a, unsigned long calls) {
  std::cout << "HTTP/1.1 " << a.status << " Whatever\r\nContent-Type: application/octet-stream\r\n"
            << "X-Calls: " << calls << "\r\nX-Host: " << std::getenv("HOSTNAME")
            << "\r\nX-Echo: " << a.x_in << "\r\nContent-Length: " << a.body.size() << "\r\n\r\n"
            << a.body << std::flush;
}

void write_json(const reply& a, unsigned long calls) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto header = [&](const char* name, const std::string& value) {
    w.Key(name);
    w.StartArray();
    w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    w.EndArray();
  };
  w.StartObject();
  w.Key("body");
  w.String(a.body.data(), static_cast<rapidjson::SizeType>(a.body.size()));
  w.Key("content_type");
  w.String("application/octet-stream");
  w.Key("protocol");
  w.StartObject();
  w.Key("status_code");
  w.Uint(a.status);
  w.Key("headers");
  w.StartObject();
  header("X-Calls", std::to_string(calls));
  header("X-Host", std::getenv("HOSTNAME"));
  header("X-Echo", a.x_in);
  w.EndObject();
  w.EndObject();
  w.EndObject();
  std::cout << std::string(sb.GetString(), sb.GetSize()) << "\n\n" << std::flush;
}

void on_signal(int sig) { std::_Exit(128 + sig); }

}  // namespace

int main() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::ios::sync_with_stdio(false);
  const char* f = std::getenv("HOT_FORMAT");
  const bool json = f && std::string(f) == "json";
  unsigned long calls = 0;
  for (request r; json ? read_json(r) : read_http(r); r = {}) {
    ++calls;
    std::cerr << "hot-fn: call " << calls << " (" << r.body.size() << " bytes)" << std::endl;
    const std::string word = r.body.substr(0, r.body.find(' '));
    reply a{200, std::move(r.body), std::move(r.x_in)};
    if (word == "die") std::_Exit(3);
    if (word == "hang") ::pause();
    if (word == "garbage") {
      std::cout << "this is no frame at all\n" << std::flush;
      continue;
    }
    if (word == "status") a.status = static_cast<unsigned>(std::atoi(a.body.c_str() + 7));
    json ? write_json(a, calls) : write_http(a, calls);
  }
  return 0;
}
