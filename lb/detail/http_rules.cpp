// The proxy's HTTP/1.1 rules as pure functions (see http_rules.hpp).
#include "lb/detail/http_rules.hpp"

#include <time.h>

#include <cstdio>
#include <cstring>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

namespace dockscaler::lb::detail {
namespace {

namespace beast = boost::beast;

bool is_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) {
  return is_alnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

// `port = *DIGIT` (RFC 3986 §3.2.3), and a real port number when present.
bool valid_port(std::string_view p) {
  if (p.size() > 5) return false;
  unsigned v = 0;
  for (char c : p) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v <= 65535;
}

// reg-name (RFC 3986 §3.2.2): unreserved / pct-encoded / sub-delims, without
// ',' (several proxies read a Host with a comma as a list of hosts). An
// IPv4 address is a reg-name syntactically.
bool valid_reg_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') continue;
    if (c == '%') {
      if (i + 2 >= n.size() || !is_hex(n[i + 1]) || !is_hex(n[i + 2])) return false;
      i += 2;
      continue;
    }
    if (c != 0 && std::strchr("!$&'()*+;=", c) != nullptr) continue;
    return false;
  }
  return true;
}

bool valid_ip_literal(std::string_view lit) {
  if (lit.size() < 2 || lit.find(':') == std::string_view::npos) return false;
  for (char c : lit)
    if (!is_hex(c) && c != ':' && c != '.') return false;
  return true;
}

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
forwarding_seen end_to_end_fields(const http::request_header<>& r, bool trusted, std::size_t limit,
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

// Transfer-Encoding of a request (RFC 9112 §6.1): chunked must be the final
// coding (else 400); a coding before it we do not implement: 501.
unsigned transfer_coding_status(std::string_view list) {
  bool last_chunked = false;
  bool other = false;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = trim_ows(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (item.empty()) continue;
    if (last_chunked) return 400;  // something after chunked (or chunked twice)
    if (beast::iequals(item, "chunked"))
      last_chunked = true;
    else
      other = true;
  }
  if (!last_chunked) return 400;
  return other ? 501 : 0;
}

}  // namespace

// ---- request checks ---------------------------------------------------------

bool valid_host(std::string_view h) {
  std::string_view port;
  bool has_port = false;
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    if (close == std::string_view::npos || !valid_ip_literal(h.substr(1, close - 1))) return false;
    const auto rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    const auto colon = h.find(':');
    if (!valid_reg_name(h.substr(0, colon))) return false;
    if (colon != std::string_view::npos) {
      has_port = true;
      port = h.substr(colon + 1);
    }
  }
  return !has_port || valid_port(port);
}

namespace {
bool visible_ascii_no_fragment(std::string_view t) {
  for (unsigned char c : t)
    if (c <= 0x20 || c >= 0x7f || c == '#') return false;
  return true;
}
}  // namespace

std::optional<absolute_target> split_absolute_form(std::string_view target) {
  std::size_t scheme = 0;
  if (target.size() > 7 && beast::iequals(target.substr(0, 7), "http://"))
    scheme = 7;
  else if (target.size() > 8 && beast::iequals(target.substr(0, 8), "https://"))
    scheme = 8;
  else
    return std::nullopt;
  const auto rest = target.substr(scheme);
  const auto end = rest.find_first_of("/?");
  return absolute_target{rest.substr(0, end),
                         end == std::string_view::npos ? std::string_view{} : rest.substr(end)};
}

bool valid_target(std::string_view target, bool options) {
  if (target == "*") return options;
  if (!visible_ascii_no_fragment(target)) return false;
  if (!target.empty() && target.front() == '/') return true;
  const auto abs = split_absolute_form(target);
  return abs && valid_host(abs->authority);
}

void to_origin_form(http::request_header<>& r) {
  const auto abs = split_absolute_form(r.target());
  if (!abs) return;
  const std::string host(abs->authority);
  std::string origin;
  if (abs->origin.empty() || abs->origin.front() == '?') origin = "/";
  origin.append(abs->origin.data(), abs->origin.size());
  r.target(origin);
  r.set(http::field::host, host);
}

unsigned check_request(const http::request_header<>& r) {
  if (r.version() != 10 && r.version() != 11) return 505;
  unsigned hosts = 0;
  unsigned te = 0;
  bool length = false;
  bool bad_expect = false;
  std::string_view host;
  std::string_view te_value;
  for (const auto& f : r) {
    const auto name = f.name_string();
    if (name.empty()) return 400;
    for (unsigned char c : name)
      if (is_ctl(c) || c == ' ' || c == ':' || c > 0x7e) return 400;
    for (unsigned char c : f.value())
      if (is_ctl(c)) return 400;
    switch (f.name()) {
      case http::field::host:
        ++hosts;
        host = f.value();
        break;
      case http::field::transfer_encoding:
        ++te;
        te_value = f.value();
        break;
      case http::field::content_length:
        length = true;
        break;
      case http::field::expect:
        bad_expect |= !beast::iequals(trim_ows(f.value()), "100-continue");
        break;
      default:
        break;
    }
  }
  if (hosts > 1 || (r.version() == 11 && hosts == 0)) return 400;
  if (hosts == 1 && !valid_host(host)) return 400;
  if (te > 0) {
    if (te > 1 || length || r.version() == 10) return 400;
    if (const unsigned st = transfer_coding_status(te_value)) return st;
  }
  if (r.method() == http::verb::connect) return 501;  // tunnels are not proxied
  if (!valid_target(r.target(), r.method() == http::verb::options)) return 400;
  if (bad_expect) return 417;
  return 0;
}

unsigned request_line_status(std::string_view data) {
  const auto eol = data.find('\n');
  if (eol == std::string_view::npos || eol == 0 || data[eol - 1] != '\r') return 400;
  const std::string_view line = data.substr(0, eol - 1);
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return 400;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return 400;
  for (char c : line.substr(0, sp1))
    if (!is_tchar(c)) return 400;
  for (unsigned char c : line.substr(sp1 + 1, sp2 - sp1 - 1))
    if (is_ctl(c)) return 400;
  const std::string_view v = line.substr(sp2 + 1);
  const bool well_formed =
      v.size() == 8 && v.substr(0, 5) == "HTTP/" && is_digit(v[5]) && v[6] == '.' && is_digit(v[7]);
  if (!well_formed) return 400;
  return v == "HTTP/1.0" || v == "HTTP/1.1" ? 0 : 505;
}

unsigned long_request_line_status(std::string_view data) {
  const auto sp1 = data.find(' ');
  if (sp1 == std::string_view::npos) return 501;
  if (data.find(' ', sp1 + 1) == std::string_view::npos) return 414;
  return 400;
}

unsigned head_watch::status(std::string_view pending, bool line_done) {
  if (checked_ > pending.size()) checked_ = 0;
  while (checked_ < pending.size()) {
    const void* lf = std::memchr(pending.data() + checked_, '\n', pending.size() - checked_);
    if (!lf) break;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(lf) - pending.data());
    if (at == 0 || pending[at - 1] != '\r') return 400;  // a bare LF
    if (!line_done && !line_checked_) {
      // The parser may wait for the whole head before it reads the line: a
      // bad line is answered now, a good one is not looked at again.
      line_checked_ = true;
      if (const unsigned st = request_line_status(pending)) return st;
    }
    checked_ = at + 1;
  }
  checked_ = pending.size();
  return 0;
}

chunked_watch::verdict chunked_watch::feed(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size() && st_ != state::done && st_ != state::bad; ++i) {
    const char c = bytes[i];
    switch (st_) {
      case state::size:
        if (is_hex(c)) {
          if (left_ > (UINT64_MAX >> 4)) st_ = state::bad;
          const int d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
          left_ = left_ * 16 + static_cast<unsigned>(d);
          ++digits_;
        } else if (digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          st_ = state::ext;
        } else {
          st_ = digits_ > 0 && c == '\r' ? state::size_lf : state::bad;
        }
        break;
      case state::ext:
        if (c == '\r')
          st_ = state::size_lf;
        else if (is_ctl(static_cast<unsigned char>(c)))
          st_ = state::bad;
        break;
      case state::size_lf:
        if (c != '\n')
          st_ = state::bad;
        else if (left_ == 0)
          st_ = state::trailer;
        else
          st_ = state::data;
        line_empty_ = true;
        break;
      case state::data: {
        const auto take = std::min<std::uint64_t>(left_, bytes.size() - i);
        left_ -= take;
        i += static_cast<std::size_t>(take) - 1;
        if (left_ == 0) st_ = state::data_cr;
        break;
      }
      case state::data_cr:
        st_ = c == '\r' ? state::data_lf : state::bad;
        break;
      case state::data_lf:
        st_ = c == '\n' ? state::size : state::bad;
        digits_ = 0;
        break;
      case state::trailer:
        if (c == '\r')
          st_ = state::trailer_lf;
        else if (c == '\n' || is_ctl(static_cast<unsigned char>(c)))
          st_ = state::bad;
        else
          line_empty_ = false;
        break;
      case state::trailer_lf:
        if (c != '\n')
          st_ = state::bad;
        else if (line_empty_)
          st_ = state::done;
        else
          st_ = state::trailer;
        line_empty_ = true;
        break;
      case state::done:
      case state::bad:
        break;
    }
  }
  if (st_ == state::bad) return verdict::bad;
  return st_ == state::done ? verdict::done : verdict::more;
}

bool send_continue(const http::request_header<>& r, bool has_body, bool body_bytes_buffered) {
  return has_body && !body_bytes_buffered && r.version() == 11 &&
         beast::iequals(r[http::field::expect], "100-continue");
}

// ---- forwarding ----------------------------------------------------------------

std::string stripped_target(std::string_view target, std::string_view prefix) {
  if (prefix == "/") return std::string(target);
  std::string_view rest = target.substr(prefix.size());
  if (rest.empty() || rest.front() != '/') return "/" + std::string(rest);
  return std::string(rest);
}

void put_request_head(std::string& out, const http::request_header<>& r, const forward_params& p) {
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
  if (!seen.xfp) out.append("X-Forwarded-Proto: http\r\n");
  if (!seen.xfh) put_field(out, "X-Forwarded-Host", p.host);
  if (!seen.real_ip) put_field(out, "X-Real-IP", p.client_ip);
  // RFC 9110 §7.6.3: a gateway MUST send Via in each inbound request (a
  // client's own Via fields went before: together they are one list).
  out.append(r.version() == 10 ? "Via: 1.0 dockscaler\r\n" : "Via: 1.1 dockscaler\r\n");
  out.append("\r\n", 2);
}

std::vector<std::pair<std::string, std::string>> function_headers(const http::request_header<>& r,
                                                                  const forward_params& p) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto seen =
      end_to_end_fields(r, p.trusted, p.header_fields, [&](std::string_view n, std::string_view v) {
        out.emplace_back(std::string(n), std::string(v));
      });
  std::string xff;
  append_xff(xff, seen, p.client_ip);
  out.emplace_back("X-Forwarded-For", std::move(xff));
  if (!seen.xfp) out.emplace_back("X-Forwarded-Proto", "http");
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

void put_response_head(std::string& out, const http::response_header<>& r, bool chunked, bool keep,
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
  put_connection(out, keep, client_version);
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
                            bool head, std::string_view message) {
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
  put_connection(s, !close, keep_alive_10 ? 10 : 11);
  s += "\r\n";
  if (!head) s += body;
  return s;
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
