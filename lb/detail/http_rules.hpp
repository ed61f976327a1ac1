// The HTTP/1.1 rules of the proxy as pure functions (no sockets, no I/O):
// the RFC 9110/9112 checks a request head must pass before it is forwarded,
// the checks that turn a stalled parse into an immediate 400, and the
// serialisation of the heads the proxy writes (to the backend, to the
// client, and its own short answers): the checks in http_checks.cpp, the
// serialisation in http_heads.cpp. The session calls these; the unit suites
// test_lb_http_rules and test_lb_rfc9112 test them directly. docs/proxy.md "Conformance"
// says which choice each rule makes and why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional/optional.hpp>

#include "field_allocator.hpp"

namespace dockscaler::lb::detail {

namespace http = boost::beast::http;

// The heads the proxy parses: Beast's, with fields from the recycling
// allocator (field_allocator.hpp).
using fields = http::basic_fields<field_allocator<char>>;
using request_head = http::request_header<fields>;
using response_head = http::response_header<fields>;

// ---- request checks ---------------------------------------------------------

// Checks Beast does not make (or makes leniently) on a parsed request head:
// version, Host (count and `uri-host [":" port]`), Transfer-Encoding and
// Content-Length together, field names and values, the request-target (origin
// form, or `*` for OPTIONS; ASCII only), Expect. Returns 0 when the head may
// be forwarded, otherwise the status to answer (400, 417, 505).
unsigned check_request(const request_head& r);

// `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal in
// brackets, an IPv4 address or a reg-name, then an optional port (digits,
// at most 65535). Empty, userinfo, a path, a list: false.
bool valid_host(std::string_view host);

// origin-form (RFC 9112 §3.2.1): "/" then visible ASCII without '#'; the
// asterisk "*" when `options` (asterisk-form, §3.2.4); or absolute-form
// (§3.2.2) with an http or https scheme, a valid authority without userinfo
// and such a path.
bool valid_target(std::string_view target, bool options);

// An absolute-form target split into its authority and the origin-form rest
// ("" when it has no path). nullopt when it is not http(s)://authority...
struct absolute_target {
  std::string_view authority;
  std::string_view origin;
};
std::optional<absolute_target> split_absolute_form(std::string_view target);

// Turns a checked absolute-form request into origin-form: the target loses
// scheme and authority, and Host becomes the authority (RFC 9112 §3.2.2: the
// server "MUST ignore the received Host header field"). Anything else is
// left as it is.
void to_origin_form(request_head& r);

// The first line of `data` (what was buffered, starting at the request
// line, ending at its LF) as a request line: 0 when it is "method SP target
// SP HTTP/1.x CRLF" (method a token, target without SP or CTL), 505 for a
// well-formed line with another version, 400 for anything else.
unsigned request_line_status(std::string_view data);

// The status for a request head Beast's parser refused with `ec` (0 when
// `ec` is not an error): 431 or the long_request_line_status() when over the
// header limit, 413 over the body limit, request_line_status() (505 for a
// version we do not speak) while the request line was not consumed
// (`line_done` false; `pending` is what was buffered from it), else 400.
unsigned parse_error_status(const boost::system::error_code& ec, bool line_done,
                            std::string_view pending);

// The status when the request line alone exceeds the header limit: 501 when
// the method does not end (longer than any method), 414 when the target does
// not, 400 otherwise (RFC 9112 §3).
unsigned long_request_line_status(std::string_view data);

// Watches the not yet parsed bytes of a request head while the parser asks
// for more, for input on which it would wait forever although the client has
// sent all it will: a bare LF anywhere, or a complete request line that is
// malformed ("GET / " then CRLF CRLF: the parser waits for a version). A
// well-formed request line is looked at once; other bytes are scanned once
// until reset().
class head_watch {
 public:
  // `pending`: the unconsumed bytes (from the request line, or from the
  // current incomplete field line once `line_done`). 0: keep reading;
  // otherwise the status to answer now.
  unsigned status(std::string_view pending, bool line_done);
  void reset() { checked_ = 0; }

 private:
  std::size_t checked_ = 0;
  bool line_checked_ = false;
};

// An incremental checker of chunked framing (RFC 9112 §7.1), fed the raw
// bytes of a chunked body in order. Used on what arrived with the header so
// a framing error the parser would wait on (a bare LF ending the last chunk
// or a trailer: "0\r\n\n") is answered 400 at once.
class chunked_watch {
 public:
  enum class verdict { more, done, bad };
  verdict feed(std::string_view bytes);

 private:
  enum class state { size, ext, size_lf, data, data_cr, data_lf, trailer, trailer_lf, done, bad };
  state st_ = state::size;
  std::uint64_t left_ = 0;
  bool last_ = false;       // the chunk being read is the last (size 0)
  bool line_empty_ = true;  // trailer line so far empty
  unsigned digits_ = 0;
};

// Whether to send "100 Continue" (RFC 9110 §10.1.1): only to an HTTP/1.1
// request that expects it, has a body, and none of whose body has arrived
// yet. A client that already sent body bytes does not wait for it, and an
// interim response it does not expect could only confuse it.
bool send_continue(const request_head& r, bool has_body, bool body_bytes_buffered);

// ---- forwarding ----------------------------------------------------------------

// What the backend learns about the client. `trusted`: the peer is in
// proxy.trusted_proxies, so its Forwarded/X-Real-IP/X-Forwarded-* are kept
// and X-Forwarded-For appended to; from anyone else they are removed and the
// proxy's own are sent.
struct forward_params {
  std::string_view strip_prefix;  // non-empty: the route's prefix to strip from the target
  std::string_view host;          // the client's Host, port and all
  std::string_view client_ip;
  bool trusted = false;
  bool chunked = false;
  boost::optional<std::uint64_t> length;
  // Beast appends a chunked body's trailer fields to the header fields; those
  // past the first `header_fields` are not merged into the forwarded head
  // (RFC 9110 §6.5.1), e.g. when a buffered chunked body goes on with a
  // Content-Length.
  std::size_t header_fields = SIZE_MAX;
  bool https = false;  // the client came over TLS: X-Forwarded-Proto: https
  // The request asks for an upgrade the proxy lets through: its Upgrade
  // field goes on, with `Connection: upgrade` (both are hop-by-hop).
  bool upgrade = false;
};

// The request head as the backend gets it, written into `out` (cleared):
// HTTP/1.1, hop-by-hop fields and Expect dropped, framing re-made, the
// forwarding fields set as `p` says, and our Via.
void put_request_head(std::string& out, const request_head& r, const forward_params& p);

// The end-to-end fields of a request as a function call gets them, with the
// same forwarding fields a backend would get (Content-Length is not included).
std::vector<std::pair<std::string, std::string>> function_headers(const request_head& r,
                                                                  const forward_params& p);

// Target for the backend when the route strips its prefix.
std::string stripped_target(std::string_view target, std::string_view prefix);

// ---- responses -----------------------------------------------------------------

// The response head as the client gets it, written into `out` (cleared):
// hop-by-hop fields dropped, no Content-Length on 1xx/204 (RFC 9110 §8.6),
// a Date when the backend sent none (RFC 9110 §6.6.1), chunked when asked.
// A 101 keeps its Upgrade field and says `Connection: upgrade`.
void put_response_head(std::string& out, const response_head& r, bool chunked, bool keep,
                       unsigned client_version);

// "HTTP/1.1 <code> <reason>\r\n"; the standard reason when `reason` is empty.
void put_status_line(std::string& out, unsigned code, std::string_view reason = {});
// The Connection field our answer needs: close, or keep-alive spelled out for HTTP/1.0.
void put_connection(std::string& out, bool keep, unsigned client_version);
void put_field(std::string& out, std::string_view name, std::string_view value);
// "Date: <IMF-fixdate>\r\n" for the current second; formatted once per second
// per thread, so it costs a clock read per response.
std::string_view date_field();
// The same for a given time (seconds since the epoch), for tests.
std::string format_date_field(std::int64_t epoch_seconds);

// The proxy's own short answer (error statuses): the status as text, or with
// `message` a JSON body {"message": ...} that says why. `fields`: more
// header fields, each ending in CRLF (a Retry-After there replaces the usual one).
std::string simple_response(unsigned status, bool close, bool keep_alive_10, bool retry_after,
                            bool head, std::string_view message = {}, std::string_view fields = {});
// The body bytes of a whole response the proxy made (simple_response): what
// follows its head.
inline std::uint64_t body_size(std::string_view response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string_view::npos ? 0 : response.size() - end - 4;
}
// The answer to "OPTIONS * HTTP/1.x": 200 with Allow, no body.
std::string options_asterisk_response(bool keep, unsigned client_version);
// What a TLS listener answers, in plain HTTP, to a client that did not start
// with a TLS handshake: 400, closing.
std::string plain_http_on_tls_port();
// "https://" + the Host without its port (+ ":" + port unless 443) + target;
// empty when there is no usable Host.
std::string https_location(std::string_view host, std::string_view target, std::uint16_t port);
// 308 Permanent Redirect (the method and body are kept on the way) to `location`.
std::string redirect_response(std::string_view location, bool keep, unsigned client_version);

}  // namespace dockscaler::lb::detail
