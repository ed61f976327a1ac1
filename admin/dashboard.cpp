// The dashboard served (see dashboard.hpp): dashboard_api on an admin::server
// TCP listener, and the invoke form's requests sent through the daemon's
// own proxy by admin::send, as `dockscaler invoke` sends them.
#include "admin/dashboard.hpp"

#include <exception>
#include <string>
#include <utility>

#include "admin/client.hpp"

namespace dockscaler::admin {

namespace {

std::string url_of(const std::string& base, const dashboard_service& s, const std::string& path) {
  std::string prefix = s.path_prefix;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return base + prefix + path;
}

}  // namespace

std::string invoke_base_url(const std::vector<proxy_listener>& listeners) {
  const auto l = request_listener(listeners);
  return l ? l->scheme + "://" + l->address : std::string();
}

invoke_answer invoke_through(const std::string& base_url, const dashboard_service& service,
                             const invoke_call& call, std::chrono::milliseconds timeout) {
  invoke_answer a;
  if (base_url.empty()) {
    a.error = "the proxy has no listener to send it to";
    return a;
  }
  http_call c;
  c.url = url_of(base_url, service, call.path);
  c.method = call.method;
  for (const auto& [k, v] : call.headers) c.headers.push_back(k + ": " + v);
  if (!service.host.empty() && !has_field(c.headers, "host"))
    c.headers.push_back("Host: " + service.host);
  if (!call.body.empty() || (call.method != "GET" && call.method != "HEAD")) c.body = call.body;
  c.verify_tls = false;  // our own listener, reached by address: its certificate names the services
  c.timeout = timeout;
  c.max_body = max_invoke_body;
  try {
    http_answer r = send(c);
    a.status = r.status;
    a.headers = header_fields(r.head);
    a.body = std::move(r.body);
    a.truncated = r.truncated;
    a.took_seconds = std::chrono::duration<double>(r.took).count();
  } catch (const std::exception& e) {
    a.error = e.what();  // what `dockscaler invoke` would say
  }
  return a;
}

namespace {

server_options listener_options(std::string listen) {
  server_options o;
  o.socket_path.clear();
  o.metrics_listen = std::move(listen);
  return o;
}

}  // namespace

dashboard::dashboard(std::string listen, dashboard_sources src, dashboard_settings s)
    : api_(std::move(src), std::move(s)),
      server_(listener_options(std::move(listen)),
              [this](const http_request& r) { return api_.handle(r); }) {}

dashboard::~dashboard() { stop(); }

void dashboard::start() {
  try {
    server_.start();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("dashboard: ") + e.what());
  }
}

void dashboard::stop() { server_.stop(); }

std::string dashboard::endpoint() const { return server_.metrics_endpoint(); }

}  // namespace dockscaler::admin
