// Unit tests of the hot functions' framing (functions/hot_frame.hpp): calls
// encoded for stdin, answers found in stdout however it is cut, with injected
// input only (no container).
#include "functions/hot_frame.hpp"

#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <random>
#include <string>
#include <vector>

using namespace dockscaler;
using namespace dockscaler::functions;
using config::function_format;
using status = answer_reader::status;

namespace {

lb::function_call a_call(std::string body) {
  lb::function_call c;
  c.service = "fn";
  c.method = "POST";
  c.target = "/r/app/fn?x=1";
  c.host = "example.org:8080";
  c.headers = {{"Content-Type", "text/plain"},
               {"X-Trace", "a"},
               {"X-Trace", "b"},
               {"Content-Length", "999"},
               {"Connection", "close"}};
  c.body = std::move(body);
  return c;
}

const call_frame_info info{"c0ffee", std::chrono::system_clock::time_point{}};

// Feeds `data` in pieces of random sizes from 1 to `max_piece`; returns the last status.
status feed(answer_reader& r, const std::string& data, std::size_t max_piece, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> size(1, max_piece);
  status st = status::more;
  for (std::size_t i = 0; i < data.size();) {
    const std::size_t n = std::min(size(rng), data.size() - i);
    st = r.add(std::string_view(data).substr(i, n));
    i += n;
  }
  return st;
}

std::string http_answer(const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 201 Created\r\nX-Out: yes\r\nConnection: keep-alive\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string field(const lb::function_result& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "<none>";
}

std::string json_answer(const std::string& body_json) {
  return R"(  {"body":)" + body_json +
         R"(,"content_type":"text/x-a","protocol":{"status_code":202,)"
         R"("headers":{"X-Many":["1","2"],"X-One":"v","Content-Length":["5"]}}})"
         "\n\n";
}

}  // namespace

TEST_CASE("http: a call is an HTTP/1.1 request with Content-Length, hop fields left out",
          "[hot][frame]") {
  const std::string f = encode_call(function_format::http, a_call("hello"), info);
  CHECK(f.rfind("POST /r/app/fn?x=1 HTTP/1.1\r\nHost: example.org:8080\r\n", 0) == 0);
  CHECK(f.find("Content-Type: text/plain\r\n") != std::string::npos);
  CHECK(f.find("X-Trace: a\r\nX-Trace: b\r\n") != std::string::npos);
  CHECK(f.find("Fn-Call-Id: c0ffee\r\n") != std::string::npos);
  CHECK(f.find("Fn-Deadline: 1970-01-01T00:00:00.000Z\r\n") != std::string::npos);
  CHECK(f.find("999") == std::string::npos);
  CHECK(f.find("Connection") == std::string::npos);
  CHECK(f.size() - f.find("\r\n\r\n") == 4 + 5);
  CHECK(f.find("Content-Length: 5\r\n\r\nhello") != std::string::npos);
  CHECK(f.find("Content-Length") == f.rfind("Content-Length"));
}

TEST_CASE("http: an answer in one piece, byte by byte or in random pieces gives the same result",
          "[hot][frame]") {
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{100000}}) {
    answer_reader r(function_format::http, 1 << 20);
    REQUIRE(feed(r, http_answer("hi there"), piece) == status::done);
    CHECK_FALSE(r.pending());
    const auto a = r.take();
    CHECK(a.status == 201);
    CHECK(a.body == "hi there");
    CHECK(field(a, "X-Out") == "yes");
    CHECK(field(a, "Connection") == "<none>");      // hop-by-hop: not passed on
    CHECK(field(a, "Content-Length") == "<none>");  // the proxy sets its own
  }
}

TEST_CASE("http: bodies of 0 B and 1 MB; answer after answer on one reader", "[hot][frame]") {
  answer_reader r(function_format::http, 2 << 20);
  REQUIRE(r.add(http_answer("")) == status::done);
  CHECK(r.take().body.empty());
  const std::string big(1 << 20, 'x');
  REQUIRE(feed(r, http_answer(big), 65536) == status::done);
  CHECK(r.take().body == big);
  // Two answers in one piece: the first is done, the second waits as pending.
  REQUIRE(r.add(http_answer("one") + http_answer("two")) == status::done);
  CHECK(r.pending());
  CHECK(r.take().body == "one");
  REQUIRE(r.add("") == status::done);
  CHECK(r.take().body == "two");
  CHECK_FALSE(r.pending());
}

TEST_CASE("http: garbage, no length, interim and oversize answers are refused", "[hot][frame]") {
  {
    answer_reader r(function_format::http, 1024);
    CHECK(r.add("Hello World!\n") == status::bad);
    CHECK(r.error().find("not an HTTP/1.1 response") != std::string::npos);
    CHECK(r.add("HTTP/1.1 200 OK\r\n") == status::bad);  // stays bad
  }
  {
    answer_reader r(function_format::http, 1024);
    CHECK(r.add("HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody") == status::bad);
    CHECK(r.error().find("without Content-Length") != std::string::npos);
  }
  {
    answer_reader r(function_format::http, 1024);
    CHECK(r.add("HTTP/1.1 100 Continue\r\n\r\n") == status::bad);
  }
  {
    answer_reader r(function_format::http, 1024);
    CHECK(r.add("HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n") == status::too_large);
  }
  {
    answer_reader r(function_format::http, 1024);
    CHECK(feed(r, "HTTP/1.1 200 OK\r\nX: " + std::string(2000, 'a'), 100) == status::too_large);
  }
  {
    answer_reader r(function_format::http, 1024);
    CHECK(r.add("HTTP/1.1 200 OK\r\n") == status::more);  // a header in progress
    CHECK(r.pending());
  }
}

TEST_CASE("http: the answer to HEAD ends after its header", "[hot][frame]") {
  answer_reader r(function_format::http, 1024);
  r.expect_head(true);
  REQUIRE(r.add("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n") == status::done);
  CHECK(r.take().body.empty());
}

TEST_CASE("json: a call is Fn's JSON object, then a blank line", "[hot][frame]") {
  const std::string f = encode_call(function_format::json, a_call("{\"Name\":\"Bob\"}"), info);
  REQUIRE(f.size() > 2);
  CHECK(f.substr(f.size() - 2) == "\n\n");
  CHECK(f.find('\n') == f.size() - 2);  // one line: the object is compact
  rapidjson::Document d;
  d.Parse(f.data(), f.size() - 2);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["call_id"].GetString()) == "c0ffee");
  CHECK(std::string(d["content_type"].GetString()) == "text/plain");
  CHECK(std::string(d["body"].GetString()) == "{\"Name\":\"Bob\"}");
  CHECK(std::string(d["deadline"].GetString()) == "1970-01-01T00:00:00.000Z");
  const auto& p = d["protocol"];
  CHECK(std::string(p["type"].GetString()) == "http");
  CHECK(std::string(p["method"].GetString()) == "POST");
  CHECK(std::string(p["request_url"].GetString()) == "http://example.org:8080/r/app/fn?x=1");
  REQUIRE(p["headers"]["X-Trace"].Size() == 2);
  CHECK(std::string(p["headers"]["X-Trace"][1].GetString()) == "b");
  CHECK_FALSE(p["headers"].HasMember("Connection"));
  CHECK_FALSE(p["headers"].HasMember("Content-Length"));
}

TEST_CASE("json: an answer cut anywhere, strings with braces and escaped quotes", "[hot][frame]") {
  const std::string tricky = R"("a \"}\" {[ \\\" ] end")";
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{100000}}) {
    answer_reader r(function_format::json, 1 << 20);
    REQUIRE(feed(r, json_answer(tricky), piece) == status::done);
    CHECK_FALSE(r.pending());  // the blank line after it is not output of its own
    const auto a = r.take();
    CHECK(a.status == 202);
    CHECK(a.body == "a \"}\" {[ \\\" ] end");
    CHECK(field(a, "Content-Type") == "text/x-a");
    CHECK(field(a, "X-One") == "v");
    CHECK(field(a, "Content-Length") == "<none>");
    int many = 0;
    for (const auto& [k, v] : a.headers) many += k == "X-Many";
    CHECK(many == 2);
  }
}

TEST_CASE("json: bodies of 0 B and 1 MB; the defaults; answer after answer", "[hot][frame]") {
  answer_reader r(function_format::json, 4 << 20);
  REQUIRE(r.add("{\"body\":\"\"}\n\n") == status::done);
  const auto empty = r.take();
  CHECK(empty.body.empty());
  CHECK(empty.status == 200);
  CHECK(empty.headers.empty());  // the service's content_type is the container's to add
  const std::string big(1 << 20, 'y');
  REQUIRE(feed(r, "{\"body\":\"" + big + "\"}\n\n", 65536) == status::done);
  CHECK(r.take().body == big);
  REQUIRE(r.add("{\"body\":\"1\"}{\"body\":\"2\"}") == status::done);
  CHECK(r.pending());
  CHECK(r.take().body == "1");
  REQUIRE(r.add("") == status::done);
  CHECK(r.take().body == "2");
}

TEST_CASE("json: garbage, a missing body, bad fields and oversize answers are refused",
          "[hot][frame]") {
  auto refused = [](const std::string& text, const std::string& why) {
    answer_reader r(function_format::json, 1024);
    const auto st = r.add(text);
    INFO(text << " -> " << r.error());
    CHECK(st == status::bad);
    CHECK(r.error().find(why) != std::string::npos);
  };
  refused("Hello World!\n", "not a JSON object");
  refused("[1,2]", "not a JSON object");
  refused("{\"body\":}", "not valid JSON");
  refused("{\"nobody\":\"x\"}", "no body");
  refused("{\"body\":1}", "no body");
  refused(R"({"body":"","protocol":{"status_code":99}})", "status_code");
  refused(R"({"body":"","protocol":{"status_code":"200"}})", "status_code");
  refused(R"({"body":"","protocol":{"headers":{"X":"a\r\nSet-Cookie: x"}}})", "not a valid field");
  refused(R"({"body":"","protocol":{"headers":{"Bad Name":"a"}}})", "not a valid field");
  refused(R"({"body":"","protocol":{"headers":{"X":[1]}}})", "not a valid field");
  refused(R"({"body":"","content_type":"a\nb"})", "content_type");
  {
    answer_reader r(function_format::json, 1024);
    CHECK(r.add("{\"body\":\"" + std::string(2000, 'z')) == status::too_large);
  }
  {
    answer_reader r(function_format::json, 1024);
    CHECK(r.add(" \n\t ") == status::more);  // whitespace between frames: nothing
    CHECK_FALSE(r.pending());
    CHECK(r.add("{\"bo") == status::more);
    CHECK(r.pending());
  }
}
