// Unit tests of the access log (admin/access_log.hpp): both line formats and
// their escaping of whatever a client sends, the bounded record buffer and
// its drops, and reopening the file as logrotate does.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "admin/access_log.hpp"

using namespace dockscaler::admin;
using namespace std::chrono_literals;
namespace lb = dockscaler::lb;
namespace fs = std::filesystem;

namespace {

// 2026-12-02T03:04:05.123Z
wall_clock::time_point sample_time() {
  return wall_clock::time_point(std::chrono::seconds(1796180645)) + 123ms;
}

access_entry sample_entry() {
  access_entry e;
  e.time = sample_time();
  lb::request_outcome& o = e.outcome;
  o.service = "hello";
  o.status = 200;
  o.wait = 1500us;
  o.duration = 2500ms;
  o.upstream_status = 200;
  o.bytes_in = 11;
  o.bytes_out = 42;
  o.client = "10.0.0.7";
  o.method = "POST";
  o.target = "/hello?x=1";
  o.referer = "https://example.com/";
  o.user_agent = "curl/8.0";
  o.backend = "hello-1";
  return e;
}

// The line, parsed strictly (UTF-8 validated); fails the test when it is not JSON.
rapidjson::Document parse_line(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size() - 1);
  INFO(line);
  REQUIRE_FALSE(d.HasParseError());
  REQUIRE(d.IsObject());
  return d;
}

std::string json_line(const access_entry& e) {
  std::string out;
  append_json_line(out, e);
  return out;
}

std::string combined_line(const access_entry& e) {
  std::string out;
  append_combined_line(out, e);
  return out;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "dockscaler-alog-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

lb::request_outcome numbered(int i) {
  lb::request_outcome o;
  o.status = 200;
  o.method = "GET";
  o.target = "/n";
  o.bytes_out = static_cast<std::uint64_t>(i);
  return o;
}

}  // namespace

TEST_CASE("a JSON line carries every field of the request", "[access_log]") {
  const auto d = parse_line(json_line(sample_entry()));
  CHECK(std::string(d["time"].GetString()) == "2026-12-02T03:04:05.123Z");
  CHECK(std::string(d["client"].GetString()) == "10.0.0.7");
  CHECK(std::string(d["method"].GetString()) == "POST");
  CHECK(std::string(d["target"].GetString()) == "/hello?x=1");
  CHECK(std::string(d["protocol"].GetString()) == "HTTP/1.1");
  CHECK(d["status"].GetUint() == 200);
  CHECK(d["bytes_in"].GetUint64() == 11);
  CHECK(d["bytes_out"].GetUint64() == 42);
  CHECK(d["wait_time"].GetDouble() == Approx(0.0015));
  CHECK(d["duration"].GetDouble() == Approx(2.5));
  CHECK(std::string(d["service"].GetString()) == "hello");
  CHECK(std::string(d["backend"].GetString()) == "hello-1");
  CHECK(d["upstream_status"].GetUint() == 200);
  CHECK(std::string(d["referer"].GetString()) == "https://example.com/");
  CHECK(std::string(d["user_agent"].GetString()) == "curl/8.0");
  CHECK_FALSE(d.HasMember("refused"));  // relayed: nothing refused

  auto e = sample_entry();
  e.outcome.status = 503;
  e.outcome.upstream_status = 0;
  e.outcome.refused = lb::refusal::queue_full;
  const auto r = parse_line(json_line(e));
  CHECK(std::string(r["refused"].GetString()) == "queue_full");
  CHECK(r["upstream_status"].GetUint() == 0);
}

TEST_CASE("JSON escaping: whatever the client sent, the line is valid JSON", "[access_log]") {
  auto e = sample_entry();
  const std::string target = std::string("/a\"b\\c\n\r\t\x01\x1f\x7f") + "\xff\xc3(\xe2\x82";
  const std::string agent = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf";
  e.outcome.target = target;
  e.outcome.user_agent = agent;
  const std::string line = json_line(e);
  CHECK(line.find('\n') == line.size() - 1);  // one line: no raw newline inside
  const auto d = parse_line(line);
  // Escaped characters come back as they were; bytes that are not UTF-8 become U+FFFD.
  CHECK(std::string(d["target"].GetString()) ==
        "/a\"b\\c\n\r\t\x01\x1f\x7f\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd");
  // Valid UTF-8 is kept; a surrogate and an overlong form are not.
  CHECK(std::string(d["user_agent"].GetString()) ==
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
        "\xef\xbf\xbd\xef\xbf\xbd");
  std::string s;
  append_json_string(s, std::string("\0x", 2));
  CHECK(s == "\"\\u0000x\"");
}

TEST_CASE("combined format: as Apache and nginx write it, fields escaped", "[access_log]") {
  CHECK(combined_line(sample_entry()) ==
        "10.0.0.7 - - [02/Dec/2026:03:04:05 +0000] \"POST /hello?x=1 HTTP/1.1\" 200 42 "
        "\"https://example.com/\" \"curl/8.0\"\n");
  auto e = sample_entry();
  e.outcome.target = "/a\"b\\c\n";
  e.outcome.user_agent = "x\xff\x1b[31m";
  e.outcome.referer = {};
  e.outcome.version = 10;
  CHECK(combined_line(e) ==
        "10.0.0.7 - - [02/Dec/2026:03:04:05 +0000] \"POST /a\\x22b\\x5Cc\\x0A HTTP/1.0\" 200 42 "
        "\"-\" \"x\\xFF\\x1B[31m\"\n");
  // A request whose line could not be read.
  e.outcome.method = {};
  e.outcome.status = 400;
  e.outcome.bytes_out = 0;
  CHECK(combined_line(e) ==
        "10.0.0.7 - - [02/Dec/2026:03:04:05 +0000] \"-\" 400 0 \"-\" "
        "\"x\\xFF\\x1B[31m\"\n");
}

TEST_CASE("the record buffer keeps what fits and drops the rest", "[access_log]") {
  const auto e = sample_entry();
  record_queue probe(1 << 20);
  REQUIRE(probe.push(e.time, e.outcome));
  const std::size_t one = probe.pending_bytes();

  record_queue q(one * 3 + one / 2);  // room for three
  int kept = 0;
  for (int i = 0; i < 5; ++i) kept += q.push(e.time, e.outcome) ? 1 : 0;
  CHECK(kept == 3);
  std::string batch;
  q.take(batch);
  CHECK(q.pending_bytes() == 0);
  CHECK(q.push(e.time, e.outcome));  // room again once taken
  int n = 0;
  record_queue::for_each(batch, [&](const access_entry& got) {
    ++n;
    CHECK(json_line(got) == json_line(e));  // every field survives the round trip
  });
  CHECK(n == 3);

  // A field longer than max_field is cut, so a record's size is bounded.
  auto big = e;
  const std::string target(record_queue::max_field * 2, 'a');
  big.outcome.target = target;
  record_queue b(1 << 20);
  REQUIRE(b.push(big.time, big.outcome));
  b.take(batch);
  record_queue::for_each(batch, [&](const access_entry& got) {
    CHECK(got.outcome.target.size() == record_queue::max_field);
  });
}

TEST_CASE("the log writes lines to its file; a full buffer drops and counts", "[access_log]") {
  temp_dir dir;
  const fs::path file = dir.path / "access.log";
  std::uint64_t told = 0;
  {
    access_log log({.path = file.string(), .format = access_log_format::combined});
    for (int i = 0; i < 100; ++i) log.record(numbered(i));
    log.flush();
    CHECK(lines_of(file).size() == 100);
    CHECK(log.dropped() == 0);
  }
  {
    // Smaller than one record: every one is dropped, and each is counted.
    access_log tiny({.path = file.string(), .buffer_bytes = 16, .on_drop = [&](std::uint64_t n) {
                       told += n;
                     }});
    for (int i = 0; i < 10; ++i) tiny.record(numbered(i));
    tiny.flush();
    CHECK(tiny.dropped() == 10);
    CHECK(told == 10);
  }
  CHECK(lines_of(file).size() == 100);
  CHECK_THROWS_WITH(access_log({.path = (dir.path / "no" / "such.log").string()}),
                    Catch::Contains("cannot open access log") && Catch::Contains("no/such.log"));
}

TEST_CASE("a line's time is when its request arrived, not when it was reported", "[access_log]") {
  temp_dir dir;
  const fs::path file = dir.path / "access.log";
  {
    access_log log({.path = file.string()});
    auto o = numbered(1);
    o.arrival = std::chrono::steady_clock::now() - 3h;  // e.g. reported after a long teardown
    o.duration = 1s;
    log.record(o);
    log.record(numbered(2));  // no arrival: now
  }
  const auto lines = lines_of(file);
  REQUIRE(lines.size() == 2);
  auto seconds_of = [](const std::string& line) {
    const auto d = parse_line(line + "\n");
    std::tm tm{};
    REQUIRE(::strptime(d["time"].GetString(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    return static_cast<long>(::timegm(&tm));
  };
  const long gap = seconds_of(lines[1]) - seconds_of(lines[0]);
  CHECK(gap >= 3 * 3600 - 60);
  CHECK(gap <= 3 * 3600 + 60);
}

TEST_CASE("reopen: after a rename, later lines go to a new file; none is lost", "[access_log]") {
  temp_dir dir;
  const fs::path file = dir.path / "access.log";
  access_log log({.path = file.string()});
  for (int i = 0; i < 10; ++i) log.record(numbered(i));
  fs::rename(file, dir.path / "access.log.1");
  for (int i = 0; i < 5; ++i) log.record(numbered(i));  // queued before the reopen
  CHECK(log.reopen().empty());
  for (int i = 0; i < 7; ++i) log.record(numbered(i));
  log.flush();
  const auto old_lines = lines_of(dir.path / "access.log.1");
  const auto new_lines = lines_of(file);
  CHECK(old_lines.size() + new_lines.size() == 22);
  CHECK(new_lines.size() >= 7);
  for (const auto& l : new_lines) parse_line(l + "\n");
}

TEST_CASE("reopen failing keeps writing to the previous file", "[access_log]") {
  temp_dir dir;
  fs::create_directory(dir.path / "logs");
  access_log log({.path = (dir.path / "logs" / "access.log").string()});
  fs::rename(dir.path / "logs", dir.path / "moved");  // the path cannot be opened any more
  const std::string err = log.reopen();
  CHECK_THAT(err,
             Catch::Contains("cannot reopen access log") && Catch::Contains("logs/access.log"));
  for (int i = 0; i < 3; ++i) log.record(numbered(i));
  log.flush();
  CHECK(lines_of(dir.path / "moved" / "access.log").size() == 3);
}
