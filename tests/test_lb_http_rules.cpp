// Unit tests of the proxy's HTTP/1.1 rules (lb/detail/http_rules) and of the
// CIDR matching behind proxy.trusted_proxies: pure functions, no sockets.
#include <catch2/catch.hpp>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "lb/cidr.hpp"
#include "lb/detail/http_rules.hpp"

using namespace dockscaler::lb;
using namespace dockscaler::lb::detail;

namespace {

// Parses a request head (must be complete and accepted by Beast).
http::request<http::string_body, fields> parse(const std::string& raw) {
  http::request_parser<http::string_body, field_allocator<char>> p;
  p.eager(false);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  INFO(raw);
  REQUIRE(!ec);
  REQUIRE(p.is_header_done());
  return p.release();
}

unsigned check(const std::string& raw) { return check_request(parse(raw)); }

std::vector<std::uint8_t> v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return {a, b, c, d};
}

}  // namespace

TEST_CASE("Host must be uri-host [:port]", "[lb][rules]") {
  for (const char* ok : {"example.com", "example.com:8080", "h:", "10.0.0.1:80", "[::1]",
                         "[::1]:443", "a-b.c_d~e", "caf%C3%A9.example", "x!$&'()*+;=y"})
    CHECK(valid_host(ok));
  for (const char* bad : {"", "h:1/path", "user@h", "a, b", "a,b", "h:abc", "h:99999", "h:123456",
                          "[::1", "[zz]", "[::1]x", "h h", "h\t", "%zz", "caf\xc3\xa9"})
    CHECK_FALSE(valid_host(bad));
}

TEST_CASE("the request-target is origin-form or OPTIONS *", "[lb][rules]") {
  CHECK(valid_target("/", false));
  CHECK(valid_target("/a/b?x=1&y=%20", false));
  CHECK(valid_target("*", true));
  CHECK_FALSE(valid_target("*", false));
  CHECK_FALSE(valid_target("", false));
  CHECK(valid_target("http://x/", false));
  CHECK(valid_target("HTTPS://x:8443/a?b", false));
  CHECK(valid_target("http://x", false));
  CHECK(valid_target("http://x?q", false));
  CHECK_FALSE(valid_target("http://user@x/", false));
  CHECK_FALSE(valid_target("http:///a", false));
  CHECK_FALSE(valid_target("ftp://x/", false));
  CHECK_FALSE(valid_target("x:443", false));
  CHECK_FALSE(valid_target("/caf\xc3\xa9", false));
  CHECK_FALSE(valid_target("/\xc0\xaf", false));
  CHECK_FALSE(valid_target("/a#frag", false));
  CHECK_FALSE(valid_target("/a\x7f", false));
}

TEST_CASE("absolute-form becomes origin-form with the authority as Host", "[lb][rules]") {
  auto r = parse("GET http://other:81/a?b HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(check_request(r) == 0);
  to_origin_form(r);
  CHECK(r.target() == "/a?b");
  CHECK(r[http::field::host] == "other:81");
  CHECK(r.count(http::field::host) == 1);
  auto q = parse("GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  to_origin_form(q);
  CHECK(q.target() == "/?x=1");
  auto o = parse("GET /already HTTP/1.1\r\nHost: h\r\n\r\n");
  to_origin_form(o);
  CHECK(o.target() == "/already");
}

TEST_CASE("check_request: statuses for parsed heads", "[lb][rules]") {
  CHECK(check("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  CHECK(check("GET / HTTP/1.0\r\n\r\n") == 0);
  CHECK(check("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  CHECK(check("GET * HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
  CHECK(check("GET / HTTP/1.1\r\n\r\n") == 400);
  CHECK(check("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
  CHECK(check("GET / HTTP/1.1\r\nHost: user@h\r\n\r\n") == 400);
  CHECK(check("GET / HTTP/1.1\r\nHost:\r\n\r\n") == 400);
  CHECK(check("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n") == 400);
  CHECK(check("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501);
  CHECK(check("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == 400);
  CHECK(check("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked , \r\n\r\n") == 0);
  CHECK(check("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n") == 501);
  CHECK(check("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n") == 400);
  CHECK(check("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n") ==
        0);
  CHECK(check("POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n") == 417);
}

TEST_CASE("request lines the parser refused or outgrew", "[lb][rules]") {
  CHECK(request_line_status("GET / HTTP/1.1\r\n") == 0);
  CHECK(request_line_status("get /a?b HTTP/1.0\r\nHost: x\r\n") == 0);
  CHECK(request_line_status("GET / HTTP/2.0\r\n") == 505);
  CHECK(request_line_status("GET / HTTP/1.2\r\nHost: x\r\n") == 505);
  CHECK(request_line_status("GET /pa th HTTP/1.1\r\n") == 400);
  CHECK(request_line_status("GET / HTTP/x.y\r\n") == 400);
  CHECK(request_line_status("GET / \r\n\r\n") == 400);
  CHECK(request_line_status("GET / HTTP/2.0\n") == 400);
  CHECK(request_line_status("GE(T / HTTP/1.1\r\n") == 400);
  CHECK(request_line_status("GET /\x01 HTTP/1.1\r\n") == 400);
  CHECK(request_line_status("GET / HTTP/1.1") == 400);  // no line end
  CHECK(long_request_line_status(std::string(100, 'A')) == 501);
  CHECK(long_request_line_status("GET /" + std::string(100, 'a')) == 414);
  CHECK(long_request_line_status("GET / HTTP/1.1" + std::string(100, ' ')) == 400);
}

TEST_CASE("head_watch: what the parser would wait on forever", "[lb][rules]") {
  head_watch w;
  CHECK(w.status("GET / ", false) == 0);
  CHECK(w.status("GET / \r\n\r\n", false) == 400);  // a complete line without a version
  head_watch w2;
  // A good line the parser waits to read until the head is complete: keep reading.
  CHECK(w2.status("GET / HTTP/1.1\r\nHost: x\r\n", false) == 0);
  CHECK(w2.status("GET / HTTP/1.1\r\nHost: x\r\nX: 1\r\n", false) == 0);
  CHECK(head_watch{}.status("GET / HTTP/1.1\n", false) == 400);
  CHECK(head_watch{}.status("GET / HTTP/2.0\r\nHost: x\r\n", false) == 505);
  head_watch w3;
  CHECK(w3.status("Host: x\r\n", true) == 0);  // waits to see whether a fold follows
  CHECK(w3.status("Host: x\r\n\n", true) == 400);
  CHECK(head_watch{}.status("\n", true) == 400);
  head_watch w4;
  CHECK(w4.status("X-A: 1", true) == 0);
  CHECK(w4.status("X-A: 12", true) == 0);  // incremental: only the new byte is looked at
}

TEST_CASE("chunked_watch: framing checked as it arrives", "[lb][rules]") {
  using v = chunked_watch::verdict;
  auto run = [](std::initializer_list<std::string_view> parts) {
    chunked_watch w;
    v last = v::more;
    for (auto p : parts) last = w.feed(p);
    return last;
  };
  CHECK(run({"5\r\nhello\r\n0\r\n\r\n"}) == v::done);
  CHECK(run({"5\r", "\nhel", "lo\r\n0\r", "\n\r\n"}) == v::done);
  CHECK(run({"5;ext=1;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n"}) == v::done);
  CHECK(run({"0\r\nX-T: 1\r\nY: 2\r\n\r\n"}) == v::done);
  CHECK(run({"5\r\nhel"}) == v::more);
  CHECK(run({"0\r\n\n"}) == v::bad);
  CHECK(run({"0\n\r\n"}) == v::bad);
  CHECK(run({"5\nhello\r\n0\r\n\r\n"}) == v::bad);
  CHECK(run({"5\r\nhello\n0\r\n\r\n"}) == v::bad);
  CHECK(run({"5\r\nhelloXX"}) == v::bad);
  CHECK(run({"\r\n"}) == v::bad);
  CHECK(run({"zz\r\n"}) == v::bad);
  CHECK(run({"0\r\nX: 1\n\r\n"}) == v::bad);
  CHECK(run({"fffffffffffffffff\r\n"}) == v::bad);  // 17 hex digits overflow 64 bits
}

TEST_CASE("100 Continue only when no body byte has arrived", "[lb][rules]") {
  const auto r =
      parse("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  CHECK(send_continue(r, true, false));
  CHECK_FALSE(send_continue(r, true, true));
  CHECK_FALSE(send_continue(r, false, false));
  const auto r10 = parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  CHECK_FALSE(send_continue(r10, true, false));
}

TEST_CASE("forwarding fields: untrusted peers get ours, trusted ones are appended to",
          "[lb][rules]") {
  const auto r = parse(
      "GET /a HTTP/1.1\r\nHost: h:81\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: "
      "1.2.3.4\r\n"
      "Connection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Keep: y\r\n\r\n");
  std::string out;
  forward_params p{{}, "h:81", "10.0.0.9", false, false, boost::none};
  put_request_head(out, r, p);
  CHECK(out ==
        "GET /a HTTP/1.1\r\nHost: h:81\r\nX-Keep: y\r\nX-Forwarded-For: "
        "10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: h:81\r\nX-Real-IP: 10.0.0.9\r\nVia: 1.1 dockscaler\r\n\r\n");
  p.trusted = true;
  put_request_head(out, r, p);
  CHECK(out ==
        "GET /a HTTP/1.1\r\nHost: h:81\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
        "X-Forwarded-Port: 1\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\nX-Keep: y\r\n"
        "X-Forwarded-For: 1.2.3.4, 10.0.0.9\r\nVia: 1.1 dockscaler\r\n\r\n");

  const auto fh = function_headers(r, {{}, "h:81", "10.0.0.9", false, false, boost::none});
  using kv = std::pair<std::string, std::string>;
  CHECK(fh == std::vector<kv>{{"Host", "h:81"},
                              {"X-Keep", "y"},
                              {"X-Forwarded-For", "10.0.0.9"},
                              {"X-Forwarded-Proto", "http"},
                              {"X-Forwarded-Host", "h:81"},
                              {"X-Real-IP", "10.0.0.9"}});
}

TEST_CASE("request head: framing re-made, prefix stripped, Expect dropped", "[lb][rules]") {
  const auto r = parse(
      "POST /api/x?q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: "
      "100-continue\r\nTE: trailers\r\n\r\n");
  std::string out;
  put_request_head(out, r, {"/api", "h", "1.1.1.1", false, true, boost::none});
  CHECK(out.rfind("POST /x?q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: "
                  "1.1.1.1\r\n",
                  0) == 0);
  CHECK(out.find("Expect") == std::string::npos);
  CHECK(out.find("TE:") == std::string::npos);
  const auto star = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  put_request_head(out, star, {"/api", "h", "1.1.1.1", false, false, boost::none});
  CHECK(out.rfind("OPTIONS * HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("response head: Date added once, no Content-Length on 1xx/204, hop-by-hop gone",
          "[lb][rules]") {
  http::response<http::string_body, fields> r{http::status::no_content, 11};
  r.set(http::field::content_length, "0");
  r.set(http::field::connection, "X-Hop");
  r.set("X-Hop", "1");
  r.set("X-End", "2");
  std::string out;
  put_response_head(out, r, false, true, 11);
  CHECK(out.rfind("HTTP/1.1 204 No Content\r\nX-End: 2\r\nDate: ", 0) == 0);
  CHECK(out.find("Content-Length") == std::string::npos);
  CHECK(out.find("X-Hop") == std::string::npos);

  http::response<http::string_body, fields> d{http::status::ok, 11};
  d.set(http::field::date, "Sun, 06 Nov 1994 08:49:37 GMT");
  d.set(http::field::content_length, "5");
  put_response_head(out, d, false, false, 11);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: "
        "5\r\nConnection: close\r\n\r\n");
  d.result(http::status::not_modified);
  put_response_head(out, d, false, true, 11);
  CHECK(out.find("Content-Length: 5") != std::string::npos);  // allowed on 304 (RFC 9110 §8.6)
}

TEST_CASE("Date is an IMF-fixdate, cached per second", "[lb][rules]") {
  CHECK(format_date_field(784111777) == "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
  CHECK(format_date_field(0) == "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
  const auto a = date_field();
  CHECK(a.size() == 37);
  CHECK(a.substr(0, 6) == "Date: ");
  CHECK(date_field().data() == a.data());  // the same cached buffer
}

TEST_CASE("own answers carry Date; OPTIONS * lists what is allowed", "[lb][rules]") {
  const auto s = simple_response(400, true, false, false, false);
  CHECK(s.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(s.find("\r\nDate: ") != std::string::npos);
  CHECK(s.find("Connection: close") != std::string::npos);
  const auto o = options_asterisk_response(true, 11);
  CHECK(o.rfind("HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, "
                "OPTIONS\r\nContent-Length: 0\r\n",
                0) == 0);
}

TEST_CASE("CIDR parsing", "[lb][rules][cidr]") {
  auto c = parse_cidr("10.0.0.0/8");
  REQUIRE(c);
  CHECK_FALSE(c->v6);
  CHECK(c->prefix == 8);
  CHECK(parse_cidr("192.168.1.7")->prefix == 32);
  CHECK(parse_cidr("2001:db8::/32")->v6);
  CHECK(parse_cidr("::1")->prefix == 128);
  CHECK(parse_cidr("0.0.0.0/0")->prefix == 0);
  for (const char* bad : {"", "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8",
                          "300.1.1.1", "2001:db8::/129", "2001:db8::1/32", " 10.0.0.0/8",
                          "10.0.0.0/8 ", "10.0.0.0/-1", "host.example", "10.0.0.0/08x"})
    CHECK_FALSE(parse_cidr(bad));
}

TEST_CASE("CIDR matching, IPv4, IPv6 and IPv4-mapped", "[lb][rules][cidr]") {
  const auto net = *parse_cidr("10.1.0.0/16");
  CHECK(contains(net, v4(10, 1, 200, 3)));
  CHECK_FALSE(contains(net, v4(10, 2, 0, 1)));
  const auto odd = *parse_cidr("192.168.0.0/23");
  CHECK(contains(odd, v4(192, 168, 1, 255)));
  CHECK_FALSE(contains(odd, v4(192, 168, 2, 0)));
  std::vector<std::uint8_t> mapped(16, 0);
  mapped[10] = mapped[11] = 0xff;
  mapped[12] = 10;
  mapped[13] = 1;
  CHECK(contains(net, mapped));
  const auto v6 = *parse_cidr("fd00::/8");
  std::vector<std::uint8_t> a6(16, 0);
  a6[0] = 0xfd;
  a6[15] = 1;
  CHECK(contains(v6, a6));
  CHECK_FALSE(contains(v6, v4(253, 0, 0, 1)));  // no family mixing
  a6[0] = 0xfe;
  CHECK_FALSE(contains(v6, a6));
  CHECK(contains(*parse_cidr("0.0.0.0/0"), v4(8, 8, 8, 8)));
  CHECK(contains_any({*parse_cidr("1.2.3.4"), net}, v4(10, 1, 0, 0)));
  CHECK_FALSE(contains_any({}, v4(10, 1, 0, 0)));
}

TEST_CASE("field_allocator hands a freed block of the same size class out again", "[lb][alloc]") {
  field_allocator<char> a;
  char* first = a.allocate(100);  // the 128-byte class
  const auto kept128 = field_block_cache::kept(128);
  a.deallocate(first, 100);
#if !defined(__SANITIZE_ADDRESS__)  // under ASan every block is new, so a use after free shows
  CHECK(field_block_cache::kept(100) == kept128 + 1);
  char* again = a.allocate(120);
  CHECK(again == first);
  CHECK(field_block_cache::kept(120) == kept128);
#else
  char* again = a.allocate(120);
  CHECK(field_block_cache::kept(120) == 0);
#endif
  char* other = a.allocate(30);  // the 64-byte class: a block of its own
  CHECK(other != again);
  a.deallocate(other, 30);
  a.deallocate(again, 120);
  // Beyond the largest class: straight to operator new and back, never kept.
  char* big = a.allocate(5000);
  big[4999] = 'x';
  a.deallocate(big, 5000);
  CHECK(field_block_cache::kept(5000) == 0);
  // Heads parsed and dropped many times reuse the same blocks: the lists
  // stay as short as one head needs.
  for (int i = 0; i < 1000; ++i) {
    const auto r =
        parse("GET /a HTTP/1.1\r\nHost: h\r\nX-A: " + std::string(200, 'a') + "\r\n\r\n");
    CHECK(r[http::field::host] == "h");
  }
  CHECK(field_block_cache::kept(64) < 8);
  CHECK(field_block_cache::kept(512) < 8);
}

TEST_CASE("the HTTPS location a redirect listener sends", "[lb][rules][tls]") {
  CHECK(https_location("a.test:80", "/x?y=1", 8443) == "https://a.test:8443/x?y=1");
  CHECK(https_location("a.test", "/", 443) == "https://a.test/");
  CHECK(https_location("[::1]:8080", "/p", 443) == "https://[::1]/p");
  CHECK(https_location("[::1", "/p", 443).empty());
  CHECK(https_location("", "/p", 443).empty());
  CHECK(https_location("a.test", "/p", 0).empty());  // no TLS listener bound
}
