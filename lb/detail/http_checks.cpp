// The request checks of http_rules.hpp (RFC 9110/9112) as pure functions:
// Host, request-target, framing fields, the request line, and the watches
// that answer at once what the parser would wait on forever.
#include "http_rules.hpp"

#include <cstring>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

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

void to_origin_form(request_head& r) {
  const auto abs = split_absolute_form(r.target());
  if (!abs) return;
  const std::string host(abs->authority);
  std::string origin;
  if (abs->origin.empty() || abs->origin.front() == '?') origin = "/";
  origin.append(abs->origin.data(), abs->origin.size());
  r.target(origin);
  r.set(http::field::host, host);
}

unsigned check_request(const request_head& r) {
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

unsigned parse_error_status(const boost::system::error_code& ec, bool line_done,
                            std::string_view pending) {
  if (!ec) return 0;
  if (ec == http::error::header_limit) return line_done ? 431 : long_request_line_status(pending);
  if (ec == http::error::body_limit) return 413;
  if (!line_done) {
    const unsigned st = request_line_status(pending);  // 505 for a version we do not speak
    return st ? st : 400;
  }
  return 400;
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

bool send_continue(const request_head& r, bool has_body, bool body_bytes_buffered) {
  return has_body && !body_bytes_buffered && r.version() == 11 &&
         beast::iequals(r[http::field::expect], "100-continue");
}

}  // namespace dockscaler::lb::detail
