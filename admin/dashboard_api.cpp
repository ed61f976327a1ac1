// The dashboard's routing, token check and JSON (see dashboard.hpp). The
// page and its scripts are embedded in the binary (detail/dashboard_assets,
// generated at build time); the JSON is dashboard_json.cpp's.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>

#include "admin/api.hpp"
#include "admin/dashboard.hpp"
#include "config/config.hpp"
#include "detail/dashboard_assets.hpp"
#include "detail/dashboard_json.hpp"

namespace dockscaler::admin {

namespace {

using detail::json_error;
constexpr std::string_view cookie_name = "dockscaler_dashboard";

http_response json_ok(std::string body) {
  return {200, "application/json", std::move(body), {{"Cache-Control", "no-store"}}};
}

// Equal without returning early, so the time taken says nothing of where
// the first difference is.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned diff = a.size() != b.size();
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    diff |= static_cast<unsigned char>(i < a.size() ? a[i] : 0) ^
            static_cast<unsigned char>(i < b.size() ? b[i] : 0);
  return diff == 0;
}

// Tokens are visible ASCII but may hold ';' or ',': the cookie carries them in hex.
std::string hex(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned v = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];  // '+' stays: tokens have no spaces, but may have a '+'
    }
  }
  return out;
}

// The value of `key` in the target's query, decoded; "" when absent.
std::string query_param(std::string_view target, std::string_view key) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
  }
  return {};
}

std::string_view cookie_value(std::string_view cookies, std::string_view name) {
  while (!cookies.empty()) {
    const auto semi = cookies.find(';');
    std::string_view c = cookies.substr(0, semi);
    cookies = semi == std::string_view::npos ? std::string_view{} : cookies.substr(semi + 1);
    while (!c.empty() && c.front() == ' ') c.remove_prefix(1);
    if (c.size() > name.size() && c.substr(0, name.size()) == name && c[name.size()] == '=')
      return c.substr(name.size() + 1);
  }
  return {};
}

bool any_token(const std::vector<std::string>& tokens, std::string_view given, bool in_hex) {
  bool ok = false;  // every token compared: no early exit either
  for (const auto& t : tokens) ok |= same_secret(in_hex ? hex(t) : t, given);
  return ok && !given.empty();
}

// A Bearer token or the page's cookie.
bool authorized(const http_request& req, const std::vector<std::string>& tokens) {
  if (tokens.empty()) return true;
  const std::string_view auth = req.header("authorization");
  if (auth.size() > 7 && std::equal(auth.begin(), auth.begin() + 7, "bearer ", [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == b;
      }))
    return any_token(tokens, auth.substr(7), false);
  return any_token(tokens, cookie_value(req.header("cookie"), cookie_name), true);
}

// Without a token, a page on loopback is still reachable from any site the
// browser visits by DNS rebinding (a name of theirs that resolves to
// 127.0.0.1): only Host names that cannot be theirs are served.
bool safe_host(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') return true;  // an IPv6 literal
  const std::string_view name = host.substr(0, host.rfind(':'));
  if (name == "localhost") return true;
  return !name.empty() && std::all_of(name.begin(), name.end(),
                                      [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

std::string content_type_of(std::string_view path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

http_response asset(std::string_view name) {
  for (const auto& a : detail::dashboard_assets())
    if (a.name == name) {
      http_response r{200, content_type_of(name), std::string(a.body), {}};
      // Same origin only: no inline script, no frames, no referrer (the
      // first URL may carry ?token=).
      r.headers = {{"Content-Security-Policy",
                    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src "
                    "'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'"},
                   {"X-Content-Type-Options", "nosniff"},
                   {"Referrer-Policy", "no-referrer"},
                   {"Cache-Control", "no-cache"}};
      return r;
    }
  return json_error(404, "page not found");
}

// The page opened with ?token=: the token moves into a cookie the browser
// sends only to this origin (SameSite=Strict, HttpOnly), and the address
// bar loses it.
http_response token_login(const std::string& token) {
  http_response r{303, "text/plain; charset=utf-8", "see /\n", {}};
  r.headers = {{"Location", "/"},
               {"Set-Cookie", std::string(cookie_name) + "=" + hex(token) +
                                  "; Path=/; HttpOnly; SameSite=Strict"},
               {"Referrer-Policy", "no-referrer"},
               {"Cache-Control", "no-store"}};
  return r;
}

http_response unauthorized(bool page) {
  if (page)
    return {401,
            "text/plain; charset=utf-8",
            "This dashboard asks for a token: open /?token=TOKEN (the token of "
            "dashboard.token_file).\n",
            {{"WWW-Authenticate", "Bearer realm=\"dockscaler dashboard\""}}};
  auto r = json_error(401, "a token is required (Authorization: Bearer TOKEN)");
  r.headers = {{"WWW-Authenticate", "Bearer realm=\"dockscaler dashboard\""}};
  return r;
}

}  // namespace

dashboard_api::dashboard_api(dashboard_sources src, dashboard_settings s)
    : src_(std::move(src)), settings_(std::move(s)) {}

void dashboard_api::configure(dashboard_settings s) {
  std::lock_guard lock(mu_);
  settings_ = std::move(s);
}

dashboard_settings dashboard_api::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

http_response dashboard_api::handle(const http_request& req) const {
  try {
    const dashboard_settings s = settings();
    const std::string path = req.target.substr(0, req.target.find('?'));
    const bool get = req.method == "GET" || req.method == "HEAD";
    const bool page = path == "/" || path == "/index.html";
    if (s.tokens.empty() && !safe_host(req.header("host")))
      return json_error(403,
                        "open the dashboard at an IP address or localhost, or set "
                        "dashboard.token_file");
    if (page && get && !s.tokens.empty()) {
      const std::string token = query_param(req.target, "token");
      if (!token.empty() && any_token(s.tokens, token, false)) return token_login(token);
    }
    if (!authorized(req, s.tokens)) return unauthorized(!path.starts_with("/api/"));
    // A cross-site page may send a form here, never with our Origin.
    const std::string_view origin = req.header("origin");
    if (!get && !origin.empty() && origin != "http://" + std::string(req.header("host")))
      return json_error(403, "cross-origin requests are refused");
    if (page) return get ? asset("index.html") : json_error(405, "method not allowed");
    if (path.starts_with("/assets/"))
      return get ? asset(path.substr(8)) : json_error(405, "method not allowed");
    if (path == "/api/status") {
      if (!get) return json_error(405, "method not allowed");
      const auto now =
          std::chrono::duration_cast<std::chrono::milliseconds>(src_.now().time_since_epoch());
      return json_ok(detail::dashboard_status_json(src_.info(), src_.status(), s, now.count()));
    }
    if (path == "/api/history") {
      if (!get) return json_error(405, "method not allowed");
      const std::string service = query_param(req.target, "service");
      if (service.empty()) return json_error(400, "?service= is required");
      std::int64_t since = 0;
      const std::string text = query_param(req.target, "since");
      if (!text.empty() && std::from_chars(text.data(), text.data() + text.size(), since).ptr !=
                               text.data() + text.size())
        return json_error(400, "?since= must be Unix time in milliseconds");
      return json_ok(detail::history_json(service, src_.hist->points(service, since)));
    }
    if (path == "/api/events") {
      if (!get) return json_error(405, "method not allowed");
      std::uint64_t after = 0;
      const std::string text = query_param(req.target, "after");
      if (!text.empty() && std::from_chars(text.data(), text.data() + text.size(), after).ptr !=
                               text.data() + text.size())
        return json_error(400, "?after= must be an event's seq");
      return json_ok(events_json(src_.hist->events(query_param(req.target, "service"), after)));
    }
    if (path.starts_with("/api/invoke/")) {
      if (!s.invoke) return json_error(403, "invoke is off (dashboard.invoke)");
      if (req.method != "POST") return json_error(405, "method not allowed");
      const std::string name = percent_decode(path.substr(12));
      const auto svc = std::find_if(s.services.begin(), s.services.end(),
                                    [&](const dashboard_service& d) { return d.name == name; });
      if (svc == s.services.end()) return json_error(404, "no such service: " + name);
      return detail::invoke_reply(req, *svc, src_);
    }
    return json_error(404, "page not found");
  } catch (const std::exception& e) {
    return json_error(500, e.what());
  }
}

dashboard_settings dashboard_settings_of(const config::config& cfg) {
  dashboard_settings s;
  if (cfg.dashboard) {
    s.invoke = cfg.dashboard->invoke;
    s.tokens = cfg.dashboard->tokens;
  }
  for (const auto& svc : cfg.services) {
    dashboard_service d;
    d.name = svc.name;
    d.wait_time_above = std::chrono::duration<double>(svc.scale_up.wait_time_above).count();
    d.wait_time_below = std::chrono::duration<double>(svc.scale_down.wait_time_below).count();
    d.wait_stat = config::to_string(svc.wait_time.stat);
    d.path_prefix = svc.route.path_prefix;
    d.host = svc.route.host;
    s.services.push_back(std::move(d));
  }
  return s;
}

}  // namespace dockscaler::admin
