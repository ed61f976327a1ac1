// hello-hot-json: IronFunctions' hello as a hot function in the `json`
// format (Fn's; docs/functions.md): one process serves call after call. Each
// call arrives on stdin as one JSON object on one line (then a blank line):
// {"call_id", "content_type", "deadline", "body", "protocol": {"method",
// "request_url", "headers"}}. Each answer goes to stdout as one JSON object:
// {"body", "content_type", "protocol": {"status_code", "headers"}}.
// Body {"Name":"Alice"} -> "Hello Alice!\n", anything else "Hello World!\n".
// As PID 1 a signal without a handler is ignored, so SIGTERM gets one.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include "../hello_name.hpp"

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

std::string answer(const std::string& text, unsigned status) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("body");
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  w.Key("content_type");
  w.String("text/plain");
  w.Key("protocol");
  w.StartObject();
  w.Key("status_code");
  w.Uint(status);
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n\n";
}

void on_signal(int sig) { std::_Exit(128 + sig); }

}  // namespace

int main() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;  // the blank line after each call
    rapidjson::Document call;
    call.Parse(line.data(), line.size());
    if (call.HasParseError() || !call.IsObject() || !call.HasMember("body") ||
        !call["body"].IsString()) {
      std::cout << answer("bad call\n", 400) << std::flush;
      continue;
    }
    const std::string body(call["body"].GetString(), call["body"].GetStringLength());
    std::cout << answer("Hello " + name_from(body) + "!\n", 200) << std::flush;
  }
  return 0;
}
