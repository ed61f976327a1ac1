// `dockscaler invoke`: one request to a service through the daemon's proxy,
// as a client would send it. The daemon's status says where the proxy
// listens and how the service is routed (path prefix or Host); the answer's
// body goes to stdout, curl-like, and its status decides the exit code.
#include <rapidjson/document.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "admin/api.hpp"
#include "admin/client.hpp"
#include "app.hpp"
#include "commands.hpp"
#include "config/config.hpp"
#include "json/parse.hpp"
#include "table.hpp"

namespace po = boost::program_options;

namespace dockscaler::cli {

namespace {

std::string member(const rapidjson::Value& v, const char* key) {
  auto m = v.FindMember(key);
  return m != v.MemberEnd() && m->value.IsString() ? m->value.GetString() : "";
}

// Where to send the request: the listener the daemon's status names that
// admin::request_listener picks (plain, else TLS; a wildcard on loopback).
admin::proxy_listener pick_listener(const rapidjson::Value& status) {
  std::vector<admin::proxy_listener> all;
  auto p = status.FindMember("proxy");
  if (p != status.MemberEnd() && p->value.IsObject())
    if (auto ls = p->value.FindMember("listeners");
        ls != p->value.MemberEnd() && ls->value.IsArray())
      for (const auto& l : ls->value.GetArray())
        if (l.IsObject()) all.push_back({member(l, "scheme"), member(l, "address")});
  if (auto l = admin::request_listener(all)) return *l;
  throw std::runtime_error(
      "the daemon names no proxy listener to send the request to (an older daemon?)");
}

const rapidjson::Value& find_service(const rapidjson::Value& status, const std::string& name) {
  auto s = status.FindMember("services");
  if (s != status.MemberEnd() && s->value.IsArray())
    for (const auto& v : s->value.GetArray())
      if (v.IsObject() && member(v, "name") == name) return v;
  throw std::runtime_error("no such service: " + name);
}

// The request target: the route's prefix, then --path.
std::string target_of(const std::string& prefix, std::string path) {
  std::string t = prefix.empty() ? "/" : prefix;
  if (path.empty()) return t;
  if (path[0] != '/' && path[0] != '?') path = "/" + path;
  if (t.back() == '/' && path[0] == '/') t.pop_back();
  return t + path;
}

std::string read_data(const std::string& data) {
  if (data.empty() || data[0] != '@') return data;
  const std::string file = data.substr(1);
  if (file == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("invoke: cannot read " + file);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The call, from the options and the daemon's status.
admin::http_call build_call(const po::variables_map& vm, const rapidjson::Value& status,
                            const std::string& service) {
  const admin::proxy_listener to = pick_listener(status);
  const rapidjson::Value& svc = find_service(status, service);
  std::string host, prefix = "/";
  if (auto r = svc.FindMember("route"); r != svc.MemberEnd() && r->value.IsObject()) {
    host = member(r->value, "host");
    prefix = member(r->value, "path_prefix");
  }
  admin::http_call c;
  const std::string port = to.address.substr(to.address.rfind(':') + 1);
  const std::string target =
      target_of(prefix, vm.count("path") ? vm["path"].as<std::string>() : std::string());
  if (host.empty()) {
    c.url = to.scheme + "://" + to.address + target;
  } else {
    // The route's name in the URL (so TLS checks and SNI use it), the
    // listener's address to connect to.
    c.url = to.scheme + "://" + host + ":" + port + target;
    std::string addr = to.address.substr(0, to.address.rfind(':'));
    c.connect_to = host + ":" + port + ":" + addr + ":" + port;
  }
  if (vm.count("header")) c.headers = vm["header"].as<std::vector<std::string>>();
  if (vm.count("data")) {
    c.body = read_data(vm["data"].as<std::string>());
    c.method = "POST";
    if (!admin::has_field(c.headers, "content-type"))
      c.headers.push_back("Content-Type: application/octet-stream");
  }
  if (vm.count("request")) c.method = vm["request"].as<std::string>();
  c.verify_tls = vm.count("insecure") == 0;
  c.timeout = *config::parse_duration(vm["timeout"].as<std::string>());  // checked before
  return c;
}

// What the command line alone can get wrong: found before the daemon is asked.
void check_options(const po::variables_map& vm) {
  if (!vm.count("service")) throw usage_error("invoke: SERVICE is required");
  if (vm.count("header"))
    for (const auto& h : vm["header"].as<std::vector<std::string>>())
      if (h.find(':') == std::string::npos)
        throw usage_error("invoke: -H wants 'Name: value', got '" + h + "'");
  if (!config::parse_duration(vm["timeout"].as<std::string>()))
    throw usage_error("invoke: --timeout: not a duration: " + vm["timeout"].as<std::string>());
}

po::options_description invoke_options(const globals& g) {
  po::options_description opts("invoke options");
  opts.add_options()("service", po::value<std::string>(), "the service")(
      "data,d", po::value<std::string>(),
      "the request body; @FILE reads it from FILE, @- from stdin (makes the method POST)")(
      "request,X", po::value<std::string>(), "the method (default GET, or POST with -d)")(
      "header,H", po::value<std::vector<std::string>>()->composing(),
      "a request header 'Name: value' (repeatable)")(
      "path", po::value<std::string>(), "appended to the service's route prefix, e.g. /items?x=1")(
      "include,i", "print the status line and header fields before the body")(
      "verbose,v", "print the URL, the status line and the time taken to stderr")(
      "insecure,k", "https: do not check the proxy's certificate")(
      "timeout", po::value<std::string>()->default_value("60s"), "give up after this long")(
      "admin", po::value<std::string>()->default_value(g.admin), "the daemon's admin socket");
  return opts;
}

}  // namespace

int cmd_invoke(const globals& g, const std::vector<std::string>& args) {
  po::options_description opts = invoke_options(g);
  po::positional_options_description pos;
  pos.add("service", 1);
  po::variables_map vm;
  if (!parse_sub("invoke",
                 "invoke SERVICE [-d DATA|@FILE] [-X METHOD] [-H 'Name: value' ...] [--path /p] "
                 "[-i] [-v] [-k]",
                 opts, args, vm, &pos))
    return exit_ok;
  check_options(vm);
  const std::string service = vm["service"].as<std::string>();
  const admin::reply r = admin_call(vm["admin"].as<std::string>(), "GET", "/v1/status");
  if (r.status != 200) throw std::runtime_error(admin::error_message(r));
  rapidjson::Document status;
  if (auto e = json::parse_untrusted(status, r.body, json::daemon_reply_depth); !e.empty())
    throw std::runtime_error("the daemon sent JSON that does not parse: " + e);
  const admin::http_call call = build_call(vm, status, service);
  const bool verbose = vm.count("verbose") > 0;
  if (verbose) std::fprintf(stderr, "> %s %s\n", call.method.c_str(), call.url.c_str());
  admin::http_answer a;
  try {
    a = admin::send(call);
  } catch (const admin::unreachable& e) {
    throw unreachable_error(std::string("the proxy does not answer: ") + e.what() +
                            "; is `dockscaler serve` running?");
  }
  const std::string status_line = a.head.substr(0, a.head.find("\r\n"));
  if (verbose)
    std::fprintf(stderr, "< %s (%s)\n", status_line.c_str(),
                 seconds_text(std::chrono::duration<double>(a.took).count()).c_str());
  if (vm.count("include")) std::fwrite(a.head.data(), 1, a.head.size(), stdout);
  std::fwrite(a.body.data(), 1, a.body.size(), stdout);
  std::fflush(stdout);
  if (a.status < 400) return exit_ok;
  std::fprintf(stderr, "dockscaler: invoke: %s answered %s\n", service.c_str(),
               status_line.substr(status_line.find(' ') + 1).c_str());
  return exit_user_error;
}

}  // namespace dockscaler::cli
