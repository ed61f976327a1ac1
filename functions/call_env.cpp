// Call environment and answers of stdio functions (see call_env.hpp).
#include "detail/call_env.hpp"

#include <cctype>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace dockscaler::functions {

std::string function_route(const config::service_config& svc) {
  // IronFunctions' ROUTE is the path after /r/<app>; a configured route is its prefix.
  const std::string shape = "/r/" + svc.app + "/" + svc.name;
  if (svc.route.host.empty() && svc.route.path_prefix == shape) return "/" + svc.name;
  return svc.route.path_prefix;
}

std::string header_env_name(std::string_view header) {
  std::string out = "HEADER_";
  for (unsigned char c : header) out += std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
  return out;
}

std::map<std::string, std::string> call_env(const config::service_config& svc,
                                            const lb::function_call& call) {
  std::map<std::string, std::string> env = svc.env;
  env["APP_NAME"] = svc.app;
  env["ROUTE"] = function_route(svc);
  env["METHOD"] = call.method;
  env["REQUEST_URL"] = "http://" + call.host + call.target;
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : call.headers) {
    auto [it, fresh] = headers.try_emplace(header_env_name(name), value);
    if (!fresh) it->second += ", " + value;
  }
  env.merge(headers);  // never over a configured variable of the same name
  return env;
}

namespace {

std::string json_message(const std::string& message) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("message");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

lb::function_result error(unsigned status, const std::string& message) {
  lb::function_result r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}};
  r.body = json_message(message);
  return r;
}

}  // namespace

lb::function_result answer(const config::service_config& svc, run_end end) {
  const std::string fn = "function " + svc.name;
  switch (end.how) {
    case run_end::kind::exited:
      if (end.exit_code == 0) {
        lb::function_result r;
        r.headers = {{"Content-Type", svc.content_type}};
        r.body = std::move(end.stdout_data);
        return r;
      }
      return error(502, fn + " exited with code " + std::to_string(end.exit_code));
    case run_end::kind::timed_out:
      return error(504, fn + " did not finish within " + config::format_duration(svc.call_timeout));
    case run_end::kind::output_too_large:
      return error(502, fn + " wrote more output than allowed: " + end.error);
    case run_end::kind::failed:
      return error(502, fn + " could not run: " + end.error);
    case run_end::kind::bad_answer:
      return error(502, fn + " answered with something that is not a valid answer: " + end.error);
    case run_end::kind::cancelled:
      return error(499, fn + ": the client went away");
  }
  return error(500, fn + ": unknown outcome");
}

}  // namespace dockscaler::functions
