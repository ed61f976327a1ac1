// The dashboard served (see dashboard.hpp): dashboard_api on an admin::server
// TCP listener, and the invoke form's requests sent through the daemon's
// own proxy with libcurl, as a client from outside would send them.
#include "admin/dashboard.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>

namespace dockscaler::admin {

namespace {

using easy_ptr = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using slist_ptr = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

easy_ptr make_easy() {
  static const bool initialised = [] { return curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK; }();
  return easy_ptr(initialised ? curl_easy_init() : nullptr, &curl_easy_cleanup);
}

// An answer larger than this is cut off: the page shows max_invoke_body of
// it, the rest is read (so the proxy sees a whole exchange) up to here.
constexpr std::size_t max_read = 16 * 1024 * 1024;

struct reading {
  invoke_answer* answer;
  std::size_t total = 0;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto& r = *static_cast<reading*>(user);
  const std::size_t len = size * n;
  r.total += len;
  if (r.total > max_read) return 0;  // aborts the transfer
  auto& body = r.answer->body;
  const std::size_t room = max_invoke_body - std::min(max_invoke_body, body.size());
  body.append(data, std::min(room, len));
  if (len > room) r.answer->truncated = true;
  return len;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto& a = *static_cast<invoke_answer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) a.headers.clear();  // a 100 Continue's, then the answer's
  const auto colon = line.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    a.headers.emplace_back(lower(std::string(line.substr(0, colon))), std::string(value));
  }
  return size * n;
}

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
  easy_ptr h = make_easy();
  if (!h) {
    a.error = "libcurl could not start";
    return a;
  }
  CURL* e = h.get();
  const std::string url = url_of(base_url, service, call.path);
  slist_ptr headers(nullptr, &curl_slist_free_all);
  auto add = [&](const std::string& line) {
    if (curl_slist* more = curl_slist_append(headers.get(), line.c_str())) {
      (void)headers.release();  // `more` is the same list, grown (or a new one)
      headers.reset(more);
    }
  };
  bool has_host = false;
  for (const auto& [k, v] : call.headers) {
    add(k + ": " + v);
    has_host |= lower(k) == "host";
  }
  if (!service.host.empty() && !has_host) add("Host: " + service.host);
  add("Expect:");  // no 100-continue round trip for a small body
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROXY, "");  // never an http_proxy from the environment
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  // Our own listener, reached by address: its certificate names the services.
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, call.method.c_str());
  if (call.method == "HEAD") curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  if (!call.body.empty() || (call.method != "GET" && call.method != "HEAD")) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, call.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
  reading r{&a};
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &a);
  const auto t0 = std::chrono::steady_clock::now();
  const CURLcode rc = curl_easy_perform(e);
  a.took_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && r.total > max_read)) {
    a.error = curl_easy_strerror(rc);
    a.status = 0;
    return a;
  }
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  a.status = static_cast<unsigned>(status);
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
