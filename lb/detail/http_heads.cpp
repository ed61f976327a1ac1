// The header rules of http_rules.hpp as pure functions: the heads the proxy
// writes (to the backend, to a function, to the client), hop-by-hop removal,
// the forwarding fields, Date, and the proxy's own short answers.
#include "http_rules.hpp"

#include <time.h>

#include <cstdio>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

namespace dockscaler::lb::detail {
namespace {

namespace beast = boost::beast;

// Whether a field is hop-by-hop (RFC 9110 §7.6.1).
bool hop_by_hop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
      return true;
    default:
      return false;
  }
}

// Field names listed in Connection (other than close/keep-alive); usually none.
template <class Fields>
std::vector<std::string_view> connection_tokens(const Fields& f) {
  std::vector<std::string_view> named;
  for (const auto& fld : f)
    if (fld.name() == http::field::connection)
      for (auto tok : http::token_list{fld.value()})
        if (!beast::iequals(tok, "close") && !beast::iequals(tok, "keep-alive"))
          named.push_back(tok);
  return named;
}

bool named_in(const std::vector<std::string_view>& named, std::string_view name) {
  for (auto n : named)
    if (beast::iequals(n, name)) return true;
  return false;
}

// The forwarding fields a client could forge.
enum class fwd_kind { other, forwarded, real_ip, xff, xfp, xfh, x_forwarded };

fwd_kind forwarding_kind(http::field id, std::string_view name) {
  if (id == http::field::forwarded) return fwd_kind::forwarded;
  if (id != http::field::unknown || name.size() < 9 || (name[0] != 'x' && name[0] != 'X') ||
      name[1] != '-')
    return fwd_kind::other;
  if (beast::iequals(name, "x-real-ip")) return fwd_kind::real_ip;
  if (name.size() <= 12 || !beast::iequals(name.substr(0, 12), "x-forwarded-"))
    return fwd_kind::other;
  const auto rest = name.substr(12);
  if (beast::iequals(rest, "for")) return fwd_kind::xff;
  if (beast::iequals(rest, "proto")) return fwd_kind::xfp;
  if (beast::iequals(rest, "host")) return fwd_kind::xfh;
  return fwd_kind::x_forwarded;
}

// What the end-to-end pass saw of the forwarding fields a trusted peer sent.
struct forwarding_seen {
  std::string_view xff_in;
  std::string xff_more;  // second and later X-Forwarded-For fields (rare)
  bool xfp = false;
  bool xfh = false;
  bool real_ip = false;
};

// Calls put(name, value) for each end-to-end field the next hop gets:
// hop-by-hop fields, Content-Length and Expect dropped (the proxy re-makes
// framing and answers Expect itself), forwarding fields kept only from a
// trusted peer, X-Forwarded-For collected instead of passed.
template <class Put>
forwarding_seen end_to_end_fields(const request_head& r, bool trusted, std::size_t limit,
                                  Put&& put) {
  forwarding_seen seen;
  const auto named = connection_tokens(r);
  for (const auto& f : r) {
    if (limit-- == 0) break;  // the rest came in a trailer section
    const auto id = f.name();
    if (hop_by_hop(id) || id == http::field::content_length || id == http::field::expect) continue;
    const auto name = f.name_string();
    const auto kind = forwarding_kind(id, name);
    if (kind != fwd_kind::other) {
      if (!trusted) continue;
      if (kind == fwd_kind::xff) {
        if (seen.xff_in.empty()) {
          seen.xff_in = f.value();
        } else {
          seen.xff_more += ", ";
          seen.xff_more.append(f.value().data(), f.value().size());
        }
        continue;
      }
      seen.xfp |= kind == fwd_kind::xfp;
      seen.xfh |= kind == fwd_kind::xfh;
      seen.real_ip |= kind == fwd_kind::real_ip;
    }
    if (!named.empty() && id != http::field::host && named_in(named, name)) continue;
    put(name, f.value());
  }
  return seen;
}

void append_xff(std::string& out, const forwarding_seen& seen, std::string_view client_ip) {
  if (!seen.xff_in.empty()) {
    out.append(seen.xff_in.data(), seen.xff_in.size());
    out += seen.xff_more;
    out.append(", ", 2);
  }
  out.append(client_ip.data(), client_ip.size());
}

std::size_t format_date(char* out, std::size_t cap, std::int64_t epoch_seconds) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const time_t t = static_cast<time_t>(epoch_seconds);
  tm g{};
  gmtime_r(&t, &g);
  const int n = std::snprintf(out, cap, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                              days[g.tm_wday % 7], g.tm_mday, months[g.tm_mon % 12],
                              g.tm_year + 1900, g.tm_hour, g.tm_min, g.tm_sec);
  return n < 0 ? 0 : std::min(static_cast<std::size_t>(n), cap - 1);
}

}  // namespace

// ---- forwarding ----------------------------------------------------------------

std::string stripped_target(std::string_view target, std::string_view prefix) {
  if (prefix == "/") return std::string(target);
  std::string_view rest = target.substr(prefix.size());
  if (rest.empty() || rest.front() != '/') return "/" + std::string(rest);
  return std::string(rest);
}

void put_request_head(std::string& out, const request_head& r, const forward_params& p) {
  out.clear();
  const auto method = r.method_string();
  out.append(method.data(), method.size());
  out += ' ';
  const std::string_view target = r.target();
  if (p.strip_prefix.empty() || target == "*")
    out.append(target.data(), target.size());
  else
    out += stripped_target(target, p.strip_prefix);
  out.append(" HTTP/1.1\r\n", 11);
  const auto seen =
      end_to_end_fields(r, p.trusted, p.header_fields,
                        [&](std::string_view n, std::string_view v) { put_field(out, n, v); });
  if (p.upgrade) {
    put_field(out, "Upgrade", r[http::field::upgrade]);
    out.append("Connection: upgrade\r\n");
  }
  if (p.chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (p.length) {
    out.append("Content-Length: ");
    out += std::to_string(*p.length);
    out.append("\r\n", 2);
  }
  out.append("X-Forwarded-For: ");
  append_xff(out, seen, p.client_ip);
  out.append("\r\n", 2);
  if (!seen.xfp)
    out.append(p.https ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
  if (!seen.xfh) put_field(out, "X-Forwarded-Host", p.host);
  if (!seen.real_ip) put_field(out, "X-Real-IP", p.client_ip);
  // RFC 9110 §7.6.3: a gateway MUST send Via in each inbound request (a
  // client's own Via fields went before: together they are one list).
  out.append(r.version() == 10 ? "Via: 1.0 dockscaler\r\n" : "Via: 1.1 dockscaler\r\n");
  out.append("\r\n", 2);
}

std::vector<std::pair<std::string, std::string>> function_headers(const request_head& r,
                                                                  const forward_params& p) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto seen =
      end_to_end_fields(r, p.trusted, p.header_fields, [&](std::string_view n, std::string_view v) {
        out.emplace_back(std::string(n), std::string(v));
      });
  std::string xff;
  append_xff(xff, seen, p.client_ip);
  out.emplace_back("X-Forwarded-For", std::move(xff));
  if (!seen.xfp) out.emplace_back("X-Forwarded-Proto", p.https ? "https" : "http");
  if (!seen.xfh) out.emplace_back("X-Forwarded-Host", std::string(p.host));
  if (!seen.real_ip) out.emplace_back("X-Real-IP", std::string(p.client_ip));
  return out;
}

// ---- responses -----------------------------------------------------------------

void put_status_line(std::string& out, unsigned code, std::string_view reason) {
  out.append("HTTP/1.1 ");
  out += static_cast<char>('0' + code / 100 % 10);
  out += static_cast<char>('0' + code / 10 % 10);
  out += static_cast<char>('0' + code % 10);
  out += ' ';
  if (reason.empty()) reason = http::obsolete_reason(static_cast<http::status>(code));
  out.append(reason.data(), reason.size());
  out.append("\r\n", 2);
}

void put_connection(std::string& out, bool keep, unsigned client_version) {
  if (!keep)
    out.append("Connection: close\r\n");
  else if (client_version == 10)
    out.append("Connection: keep-alive\r\n");
}

void put_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name.data(), name.size());
  out.append(": ", 2);
  out.append(value.data(), value.size());
  out.append("\r\n", 2);
}

std::string_view date_field() {
  struct cache {
    std::int64_t second = -1;
    char text[48];
    std::size_t size = 0;
  };
  thread_local cache c;
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
  if (now.tv_sec != c.second) {
    c.size = format_date(c.text, sizeof c.text, now.tv_sec);
    c.second = now.tv_sec;
  }
  return {c.text, c.size};
}

std::string format_date_field(std::int64_t epoch_seconds) {
  char text[48];
  return std::string(text, format_date(text, sizeof text, epoch_seconds));
}

void put_response_head(std::string& out, const response_head& r, bool chunked, bool keep,
                       unsigned client_version) {
  out.clear();
  const unsigned code = r.result_int();
  put_status_line(out, code, r.reason());
  const bool no_length = chunked || code < 200 || code == 204;  // RFC 9110 §8.6
  const auto named = connection_tokens(r);
  bool dated = false;
  for (const auto& f : r) {
    const auto id = f.name();
    if (hop_by_hop(id) || (no_length && id == http::field::content_length)) continue;
    dated |= id == http::field::date;
    const auto name = f.name_string();
    if (!named.empty() && named_in(named, name)) continue;
    put_field(out, name, f.value());
  }
  if (!dated) out.append(date_field());
  if (chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (code == 101) {  // only ever relayed to a request that asked for it
    put_field(out, "Upgrade", r[http::field::upgrade]);
    out.append("Connection: upgrade\r\n");
  } else {
    put_connection(out, keep, client_version);
  }
  out.append("\r\n", 2);
}

// {"message": "<text>"} (Docker's error shape), escaped for JSON.
std::string json_message(std::string_view text) {
  std::string out = "{\"message\": \"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"}\n";
}

std::string simple_response(unsigned status, bool close, bool keep_alive_10, bool retry_after,
                            bool head, std::string_view message, std::string_view fields) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string body;
  if (message.empty()) {
    body = std::to_string(status);
    body += ' ';
    body.append(reason.data(), reason.size());
    body += '\n';
  } else {
    body = json_message(message);
  }
  std::string s;
  put_status_line(s, status, reason);
  s += message.empty() ? "Content-Type: text/plain\r\n" : "Content-Type: application/json\r\n";
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  s += date_field();
  if (retry_after) s += "Retry-After: 1\r\n";
  s += fields;
  put_connection(s, !close, keep_alive_10 ? 10 : 11);
  s += "\r\n";
  if (!head) s += body;
  return s;
}

std::string https_location(std::string_view host, std::string_view target, std::uint16_t port) {
  std::string_view name = host;
  if (!name.empty() && name.front() == '[') {  // [v6]:port
    const auto close = name.find(']');
    if (close == std::string_view::npos) return {};
    name = name.substr(0, close + 1);
  } else if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
    name = name.substr(0, colon);
  }
  if (name.empty() || port == 0) return {};
  std::string out = "https://";
  out.append(name.data(), name.size());
  if (port != 443) out += ":" + std::to_string(port);
  out.append(target.data(), target.size());
  return out;
}

std::string redirect_response(std::string_view location, bool keep, unsigned client_version) {
  std::string s;
  put_status_line(s, 308);
  put_field(s, "Location", location);
  s += "Content-Length: 0\r\n";
  s += date_field();
  put_connection(s, keep, client_version);
  s += "\r\n";
  return s;
}

std::string plain_http_on_tls_port() {
  return simple_response(400, true, false, false, false,
                         "this port speaks HTTPS: send the request with https://");
}

std::string options_asterisk_response(bool keep, unsigned client_version) {
  std::string s;
  put_status_line(s, 200);
  s += "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nContent-Length: 0\r\n";
  s += date_field();
  put_connection(s, keep, client_version);
  s += "\r\n";
  return s;
}

}  // namespace dockscaler::lb::detail
