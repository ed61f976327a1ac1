// Unit tests of the RFC 9110/9112 rules a request head meets on its way
// through the proxy, as the session applies them: Beast's parser first
// (framing fields, field syntax), then parse_error_status() for what it
// refused and check_request() for what it accepted; then the head the
// backend gets (hop-by-hop fields, Connection tokens, obs-fold). Pure: heads
// are parsed from strings, no sockets. The wire-level suites
// (test_lb_conformance, test_lb_bad_input) check the same answers end to end.
#include <catch2/catch.hpp>

#include <string>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "lb/detail/http_rules.hpp"

using namespace dockscaler::lb::detail;

namespace {

// The status the proxy answers to a complete request head `raw` (0: it is
// forwarded), decided the way session::read_head and check_head decide it.
unsigned answer_to(const std::string& raw, std::uint32_t header_limit = 8192) {
  http::request_parser<http::buffer_body, field_allocator<char>> p;
  p.header_limit(header_limit);
  boost::system::error_code ec;
  const auto used = p.put(boost::asio::buffer(raw), ec);
  if (ec && ec != http::error::need_more)
    return parse_error_status(ec, used > 0, std::string_view(raw).substr(0, header_limit));
  INFO(raw);
  REQUIRE(p.is_header_done());
  return check_request(p.get());
}

// The head a backend gets for `raw` from an untrusted client.
std::string forwarded(const std::string& raw) {
  http::request_parser<http::string_body, field_allocator<char>> p;
  boost::system::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  INFO(raw);
  REQUIRE(!ec);
  std::string out;
  put_request_head(out, p.get(), {{}, "x", "10.0.0.9", false, false, boost::none});
  return out;
}

const std::string get11 = "GET / HTTP/1.1\r\nHost: x\r\n";
const std::string post11 = "POST / HTTP/1.1\r\nHost: x\r\n";

}  // namespace

TEST_CASE("Transfer-Encoding with Content-Length is refused, in either order",
          "[lb][rfc9112][framing]") {
  CHECK(answer_to(post11 + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
  CHECK(answer_to(post11 + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n") == 400);
  CHECK(answer_to(post11 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        400);
  // HTTP/1.0 has no chunked coding: a smuggling vector, not a body.
  CHECK(answer_to("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
  CHECK(answer_to(post11 + "Transfer-Encoding: identity\r\n\r\n") == 400);
  CHECK(answer_to(post11 + "Transfer-Encoding: gzip, chunked\r\n\r\n") == 501);
  CHECK(answer_to(post11 + "Transfer-Encoding: chunked\r\n\r\n") == 0);
}

TEST_CASE("Content-Length: one decimal value; a list of equal values is that value",
          "[lb][rfc9112][framing]") {
  CHECK(answer_to(post11 + "Content-Length: 5\r\n\r\n") == 0);
  CHECK(answer_to(post11 + "Content-Length: 5, 5\r\n\r\n") == 0);
  CHECK(answer_to(post11 + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n") == 0);
  for (const char* bad : {"5, 6", "-1", "+5", "0x5", "", "5 5", "99999999999999999999999"})
    CHECK(answer_to(post11 + "Content-Length: " + bad + "\r\n\r\n") == 400);
  CHECK(answer_to(post11 + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n") == 400);
}

TEST_CASE("field lines: names are tokens, values have no CTL, lines end in CRLF",
          "[lb][rfc9112][fields]") {
  CHECK(answer_to("GET / HTTP/1.1\r\nHost : x\r\n\r\n") == 400);  // space before the colon
  CHECK(answer_to(get11 + "X A: a\r\n\r\n") == 400);
  CHECK(answer_to(get11 + ": a\r\n\r\n") == 400);
  CHECK(answer_to(get11 + "X-A\r\n\r\n") == 400);
  CHECK(answer_to(get11 + "X-A: a\x01" + "b\r\n\r\n") == 400);
  CHECK(answer_to(get11 + "X-A: a\x7f\r\n\r\n") == 400);
  CHECK(answer_to("GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n") == 400);          // a bare CR
  CHECK(answer_to("GET / HTTP/1.1\r\n X-A: a\r\nHost: x\r\n\r\n") == 400);  // fold of nothing
}

TEST_CASE("obs-fold is replaced by SP, never forwarded as a line break", "[lb][rfc9112][fields]") {
  const std::string folded = get11 + "X-A: a\r\n b\r\n\tc\r\n\r\n";
  CHECK(answer_to(folded) == 0);
  const auto out = forwarded(folded);
  CHECK(out.find("X-A: a b c\r\n") != std::string::npos);
  CHECK(out.find("\r\n ") == std::string::npos);
  CHECK(out.find("\r\n\t") == std::string::npos);
}

TEST_CASE("hop-by-hop fields stop at the proxy", "[lb][rfc9112][hop]") {
  const auto out = forwarded(get11 +
                             "Connection: keep-alive\r\nKeep-Alive: 5\r\nProxy-Connection: k\r\n"
                             "Proxy-Authorization: Basic eA==\r\nTE: trailers\r\nTrailer: X-T\r\n"
                             "Upgrade: h2c\r\nX-End: 1\r\n\r\n");
  for (const char* gone : {"Connection:", "Keep-Alive:", "Proxy-Connection:",
                           "Proxy-Authorization:", "TE:", "Trailer:", "Upgrade:"})
    CHECK(out.find(gone) == std::string::npos);
  CHECK(out.find("X-End: 1\r\n") != std::string::npos);

  http::response<http::string_body, fields> r{http::status::ok, 11};
  r.set(http::field::keep_alive, "timeout=5");
  r.set(http::field::upgrade, "h2c");
  r.set(http::field::transfer_encoding, "chunked");
  r.set("X-End", "1");
  std::string head;
  put_response_head(head, r, false, true, 11);
  for (const char* gone : {"Keep-Alive:", "Upgrade:", "Transfer-Encoding:"})
    CHECK(head.find(gone) == std::string::npos);
  CHECK(head.find("X-End: 1\r\n") != std::string::npos);
}

TEST_CASE("fields named in Connection are hop-by-hop too, except Host", "[lb][rfc9112][hop]") {
  const auto out =
      forwarded(get11 + "Connection: keep-alive, X-B, close\r\nX-B: 1\r\nx-b: 2\r\nX-C: 3\r\n\r\n");
  CHECK(out.find("X-B") == std::string::npos);
  CHECK(out.find("x-b") == std::string::npos);
  CHECK(out.find("X-C: 3\r\n") != std::string::npos);
  // close and keep-alive are options, not field names; Host is never dropped.
  CHECK(forwarded(get11 + "Connection: Host\r\n\r\n").find("Host: x\r\n") != std::string::npos);
  http::response<http::string_body, fields> r{http::status::ok, 11};
  r.set(http::field::connection, "X-Hop, close");
  r.set("X-Hop", "1");
  r.set("X-End", "2");
  std::string head;
  put_response_head(head, r, false, true, 11);
  CHECK(head.find("X-Hop") == std::string::npos);
  CHECK(head.find("X-End: 2\r\n") != std::string::npos);
}

TEST_CASE("Host: exactly one in HTTP/1.1, at most one in 1.0, always uri-host [:port]",
          "[lb][rfc9112][host]") {
  CHECK(answer_to(get11 + "\r\n") == 0);
  CHECK(answer_to("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") == 0);
  CHECK(answer_to("GET / HTTP/1.1\r\n\r\n") == 400);
  CHECK(answer_to("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
  CHECK(answer_to("GET / HTTP/1.0\r\n\r\n") == 0);
  CHECK(answer_to("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
  CHECK(answer_to("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == 400);
  CHECK(answer_to("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n") == 400);
  CHECK(answer_to("GET / HTTP/1.1\r\nHost: h:99999\r\n\r\n") == 400);
}

TEST_CASE("what the parser refused: the status for each limit and request line",
          "[lb][rfc9112][limits]") {
  CHECK(answer_to("GET / HTTP/3.0\r\nHost: x\r\n\r\n") == 505);
  CHECK(answer_to("GET / HTTP/1.1\nHost: x\n\n") == 400);
  CHECK(answer_to(get11 + "X: " + std::string(9000, 'a') + "\r\n\r\n") == 431);
  CHECK(answer_to("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n") == 414);
  CHECK(answer_to(std::string(9000, 'A') + " / HTTP/1.1\r\nHost: x\r\n\r\n") == 501);
  CHECK(parse_error_status({}, true, "") == 0);
  CHECK(parse_error_status(http::error::body_limit, true, "") == 413);
  CHECK(parse_error_status(http::error::bad_field, true, "GET / HTTP/1.1\r\n") == 400);
}
