// Unit tests of dockerapi's pure parts: frame demux and line splitting at every
// split point, filter/query encoding, DOCKER_HOST parsing, JSON mapping of
// replies captured from a real 20.10 daemon (tests/data/docker), error mapping,
// and the tar writer.
#include <curl/curl.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dockerapi/detail/encoding.hpp"
#include "dockerapi/detail/errors.hpp"
#include "dockerapi/detail/frame_demux.hpp"
#include "dockerapi/detail/json_mapping.hpp"
#include "dockerapi/detail/line_splitter.hpp"
#include "dockerapi/error.hpp"
#include "dockerapi/tar_writer.hpp"

namespace api = dockscaler::dockerapi;
namespace detail = dockscaler::dockerapi::detail;

namespace {

std::string sample(const std::string& name) {
  std::ifstream f(std::string(DOCKSCALER_TEST_DATA) + "/docker/" + name, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string frame(int stream, const std::string& payload) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(stream);
  auto n = static_cast<std::uint32_t>(payload.size());
  h[4] = static_cast<char>(n >> 24);
  h[5] = static_cast<char>(n >> 16);
  h[6] = static_cast<char>(n >> 8);
  h[7] = static_cast<char>(n);
  return h + payload;
}

struct demuxed {
  std::map<int, std::string> text;
  std::vector<std::string> whole_errors;
  std::string pending_error;
};

void feed(detail::frame_demux& d, std::string_view in, demuxed& out) {
  d.feed(in, [&](int s, std::string_view p, bool end) {
    out.text[s].append(p);
    if (s == 3) {
      out.pending_error.append(p);
      if (end) out.whole_errors.push_back(std::exchange(out.pending_error, {}));
    }
  });
}

}  // namespace

TEST_CASE("frame demux gives the same output for every split point", "[demux]") {
  const std::string big(70000, 'x');
  const std::string input = frame(1, "hello\n") + frame(2, "warn: x\n") + frame(1, "") +
                            frame(1, big) + frame(3, "log driver failed") + frame(2, "bye");
  // One split anywhere, and two splits at a stride, plus byte-by-byte.
  for (std::size_t i = 0; i <= input.size(); i += (i < 200 || i > input.size() - 200) ? 1 : 997) {
    detail::frame_demux d;
    demuxed out;
    feed(d, std::string_view(input).substr(0, i), out);
    feed(d, std::string_view(input).substr(i), out);
    INFO("split at " << i);
    REQUIRE(out.text[1] == "hello\n" + big);
    REQUIRE(out.text[2] == "warn: x\nbye");
    REQUIRE(out.whole_errors == std::vector<std::string>{"log driver failed"});
    REQUIRE(d.at_boundary());
  }
  detail::frame_demux d;
  demuxed out;
  for (char c : input) feed(d, std::string_view(&c, 1), out);
  CHECK(out.text[1] == "hello\n" + big);
  CHECK(out.text[2] == "warn: x\nbye");
  CHECK(out.whole_errors.size() == 1);
}

TEST_CASE("frame demux reports truncation and bad headers", "[demux][errors]") {
  detail::frame_demux d;
  demuxed out;
  std::string f = frame(1, "abcdef");
  feed(d, std::string_view(f).substr(0, 10), out);
  CHECK_FALSE(d.at_boundary());
  detail::frame_demux d2;
  feed(d2, std::string_view(f).substr(0, 5), out);
  CHECK_FALSE(d2.at_boundary());

  detail::frame_demux bad;
  try {
    feed(bad, "hello world, not a frame", out);
    FAIL("expected a protocol error");
  } catch (const api::error& e) {
    CHECK(e.code() == api::errc::protocol);
  }

  detail::frame_demux raw(true);
  demuxed r;
  feed(raw, "plain tty text", r);
  CHECK(r.text[1] == "plain tty text");
}

TEST_CASE("the real daemon's logs stream demultiplexes", "[demux][json]") {
  detail::frame_demux d;
  demuxed out;
  feed(d, sample("container_logs.bin"), out);
  CHECK(out.text[2] == "echo: ready\necho: terminated\n");
  CHECK(out.text[1].empty());
  CHECK(d.at_boundary());
}

TEST_CASE("line splitter yields whole lines for every chunking", "[events][lines]") {
  const std::string input = sample("events_raw.txt");
  std::vector<std::string> expected;
  {
    std::istringstream ss(input);
    for (std::string l; std::getline(ss, l);)
      if (!l.empty()) expected.push_back(l);
  }
  REQUIRE(expected.size() >= 2);
  for (std::size_t i = 0; i <= input.size(); ++i) {
    for (std::size_t j : {i, std::min(input.size(), i + 1), std::min(input.size(), i + 37)}) {
      detail::line_splitter ls;
      std::vector<std::string> got;
      auto sink = [&](std::string_view l) { got.emplace_back(l); };
      ls.feed(std::string_view(input).substr(0, i), sink);
      ls.feed(std::string_view(input).substr(i, j - i), sink);
      ls.feed(std::string_view(input).substr(j), sink);
      INFO("splits at " << i << ", " << j);
      REQUIRE(got == expected);
      REQUIRE(ls.pending().empty());
    }
  }
  // Every line is an event the parser understands.
  auto e = detail::parse_event(expected.front());
  CHECK(e.type == "container");
  CHECK(e.action == "create");
  CHECK(e.actor_id.size() == 64);
  CHECK(e.attributes.at("dockscaler.test") == "capture");
  CHECK(e.time_nano > 1'600'000'000'000'000'000);

  detail::line_splitter crlf;
  std::vector<std::string> got;
  crlf.feed("a\r\n\r\nb\nc", [&](std::string_view l) { got.emplace_back(l); });
  CHECK(got == std::vector<std::string>{"a", "b"});
  CHECK(crlf.pending() == "c");

  detail::line_splitter small(8);
  CHECK_THROWS_AS(small.feed("0123456789", [](std::string_view) {}), api::error);
}

TEST_CASE("filters and queries are encoded the way the daemon expects", "[filters]") {
  CHECK(detail::filters_json({}).empty());
  CHECK(detail::filters_json({{"label", {}}}).empty());
  CHECK(detail::filters_json(
            {{"label", {"a=b", "dockscaler.managed=true"}}, {"status", {"running"}}}) ==
        R"({"label":{"a=b":true,"dockscaler.managed=true":true},"status":{"running":true}})");
  CHECK(detail::filters_json({{"label", {"q\"uote"}}}) == R"({"label":{"q\"uote":true}})");
  CHECK(detail::url_encode("a b/c?d=e&f~_.-") == "a%20b%2Fc%3Fd%3De%26f~_.-");
  CHECK(detail::query_string({}) == "");
  CHECK(detail::query_string({{"filters", R"({"label":{"x=y":true}})"}, {"all", "1"}}) ==
        "?filters=%7B%22label%22%3A%7B%22x%3Dy%22%3Atrue%7D%7D&all=1");
  CHECK(detail::labels_json({{"a", "1"}, {"b", "two"}}) == R"({"a":"1","b":"two"})");
}

TEST_CASE("DOCKER_HOST parsing", "[host][errors]") {
  auto u = detail::parse_docker_host("unix:///var/run/docker.sock", false);
  CHECK(u.type == detail::endpoint::kind::unix_socket);
  CHECK(u.socket_path == "/var/run/docker.sock");
  auto t = detail::parse_docker_host("tcp://127.0.0.1:2375", false);
  CHECK(t.type == detail::endpoint::kind::tcp);
  CHECK(t.host == "127.0.0.1");
  CHECK(t.port == 2375);
  CHECK(detail::parse_docker_host("tcp://docker.local", true).port == 2376);
  CHECK(detail::parse_docker_host("tcp://docker.local", false).port == 2375);
  CHECK(detail::parse_docker_host("tcp://[::1]:1234", false).host == "[::1]");
  CHECK(detail::parse_docker_host("tcp://[::1]:1234", false).port == 1234);
  for (const char* bad :
       {"", "/var/run/docker.sock", "unix://relative.sock", "tcp://", "tcp://:2375",
        "tcp://host:", "tcp://host:99999", "tcp://host:12ab", "ssh://me@host",
        "npipe:////./pipe/docker_engine", "tcp://host:2375/path", "tcp://[::1"}) {
    INFO(bad);
    try {
      detail::parse_docker_host(bad, false);
      FAIL("accepted");
    } catch (const api::error& e) {
      CHECK(e.code() == api::errc::invalid_argument);
      CHECK(std::string(e.what()).find("DOCKER_HOST") != std::string::npos);
    }
  }
}

TEST_CASE("API versions compare numerically", "[version]") {
  CHECK(detail::compare_api_versions("1.41", "1.40") > 0);
  CHECK(detail::compare_api_versions("1.9", "1.40") < 0);
  CHECK(detail::compare_api_versions("1.45", "1.45") == 0);
  CHECK(detail::compare_api_versions("2.0", "1.45") > 0);
  CHECK_THROWS_AS(detail::parse_api_version("1"), api::error);
  CHECK_THROWS_AS(detail::parse_api_version("v1.41"), api::error);
  CHECK_THROWS_AS(detail::parse_api_version("1.41x"), api::error);
}

TEST_CASE("captured daemon replies map to the typed structs", "[json]") {
  auto v = detail::parse_version(sample("version.json"));
  CHECK(v.api_version == "1.41");
  CHECK(v.min_api_version == "1.12");
  CHECK(v.version.rfind("20.10", 0) == 0);
  CHECK(v.os == "linux");

  auto i = detail::parse_info(sample("info.json"));
  CHECK(i.ncpu >= 1);
  CHECK(i.mem_total > 0);
  CHECK(i.server_version == v.version);

  auto cr = detail::parse_create_result(sample("container_create.json"));
  CHECK(cr.id.size() == 64);
  CHECK(cr.warnings.empty());

  auto list = detail::parse_container_list(sample("container_list.json"));
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == cr.id);
  CHECK(list[0].names == std::vector<std::string>{"/dockscaler-capture-c1"});
  CHECK(list[0].state == "running");
  CHECK(list[0].labels.at("role") == "sample");
  REQUIRE(list[0].networks.count("dockscaler-capture") == 1);
  CHECK_FALSE(list[0].networks.at("dockscaler-capture").ip_address.empty());

  auto run = detail::parse_container_inspect(sample("container_inspect_running.json"));
  CHECK(run.id == cr.id);
  CHECK(run.name == "/dockscaler-capture-c1");
  CHECK(run.image_name == "dockscaler-sample-echo:capture");
  CHECK(run.image.rfind("sha256:", 0) == 0);
  CHECK(run.logging.type == "json-file");  // HostConfig.LogConfig
  CHECK(run.logging.options.empty());
  CHECK(run.state.status == "running");
  CHECK(run.state.running);
  CHECK(run.state.pid > 0);
  CHECK_FALSE(run.state.health.has_value());
  CHECK(run.open_stdin);
  CHECK_FALSE(run.tty);
  CHECK(run.labels.at("dockscaler.test") == "capture");
  const auto& ep = run.networks.at("dockscaler-capture");
  CHECK(ep.ip_address == list[0].networks.at("dockscaler-capture").ip_address);
  CHECK(ep.ip_prefix_len > 0);
  CHECK_FALSE(ep.gateway.empty());

  auto ex = detail::parse_container_inspect(sample("container_inspect_exited.json"));
  CHECK(ex.state.status == "exited");
  CHECK_FALSE(ex.state.running);
  CHECK(ex.state.exit_code == 143);

  auto w = detail::parse_wait_result(sample("container_wait.json"));
  CHECK(w.exit_code == 143);
  CHECK(w.error.empty());
  auto werr = detail::parse_wait_result(R"({"Error":{"Message":"boom"},"StatusCode":128})");
  CHECK(werr.exit_code == 128);
  CHECK(werr.error == "boom");

  auto img = detail::parse_image_inspect(sample("image_inspect.json"));
  CHECK(img.id.rfind("sha256:", 0) == 0);
  CHECK(img.repo_tags == std::vector<std::string>{"dockscaler-sample-echo:capture"});
  CHECK(img.entrypoint == std::optional<std::vector<std::string>>{{"/echo"}});
  CHECK(img.labels.at("dockscaler.test") == "capture");
  auto imgs = detail::parse_image_list(sample("image_list.json"));
  REQUIRE(imgs.size() == 1);
  CHECK(imgs[0].id == img.id);

  auto net = detail::parse_network_inspect(sample("network_inspect.json"));
  CHECK(net.name == "dockscaler-capture");
  CHECK(net.driver == "bridge");
  CHECK(net.id == detail::parse_id(sample("network_create.json")));
  CHECK(net.labels.at("dockscaler.test") == "capture");
  REQUIRE(net.subnets.size() == 1);
  REQUIRE(net.containers.count(cr.id) == 1);
  CHECK(net.containers.at(cr.id).name == "dockscaler-capture-c1");
}

TEST_CASE("malformed and truncated JSON is a protocol error", "[json][errors]") {
  std::string full = sample("container_inspect_running.json");
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, full.size() / 2, full.size() - 2}) {
    try {
      detail::parse_container_inspect(full.substr(0, cut));
      FAIL("accepted JSON cut at " << cut);
    } catch (const api::error& e) {
      CHECK(e.code() == api::errc::protocol);
    }
  }
  CHECK_THROWS_AS(detail::parse_container_list("{}"), api::error);  // wrong shape
  CHECK_THROWS_AS(detail::parse_container_inspect("[]"), api::error);
  CHECK_THROWS_AS(detail::parse_wait_result("{}"), api::error);
  CHECK_THROWS_AS(detail::parse_event("{\"Type\":"), api::error);
}

// A daemon (or whatever answers on its socket) that sends absurdly nested
// JSON gets a protocol error: the parser is iterative and stops at 512 levels
// instead of recursing once per `[` until the stack overflows.
TEST_CASE("deeply nested replies are a protocol error, not a stack overflow",
          "[json][errors][hostile]") {
  const std::string deep(200000, '[');
  for (auto parse : {+[](const std::string& j) { detail::parse_container_inspect(j); },
                     +[](const std::string& j) { detail::parse_event(j); },
                     +[](const std::string& j) { detail::parse_container_list(j); }}) {
    try {
      parse(deep);
      FAIL("accepted 200,000 nested arrays");
    } catch (const api::error& e) {
      CHECK(e.code() == api::errc::protocol);
      CHECK_THAT(e.what(), Catch::Contains("nested deeper than 512 levels"));
    }
  }
  // Deep but within the limit still parses (labels are never this deep; the
  // limit only refuses the absurd).
  const std::string nested =
      "{\"Id\":\"x\",\"Extra\":" + std::string(500, '[') + std::string(500, ']') + "}";
  CHECK(detail::parse_id(nested) == "x");
}

TEST_CASE("progress streams surface in-band errors", "[json][errors]") {
  std::string aux;
  auto p = detail::parse_progress(R"({"status":"Pulling fs layer","progressDetail":{},"id":"abc"})",
                                  &aux);
  CHECK(p.status == "Pulling fs layer");
  CHECK(p.id == "abc");
  detail::parse_progress(R"({"aux":{"ID":"sha256:1234"}})", &aux);
  CHECK(aux == "sha256:1234");
  try {
    detail::parse_progress(
        R"({"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"})");
    FAIL("no error");
  } catch (const api::error& e) {
    CHECK(e.code() == api::errc::server_error);
    CHECK(e.daemon_message() == "manifest unknown");
  }
}

TEST_CASE("HTTP and curl results map to typed errors", "[errors]") {
  CHECK(detail::errc_from_http(304) == api::errc::not_modified);
  CHECK(detail::errc_from_http(400) == api::errc::bad_request);
  CHECK(detail::errc_from_http(403) == api::errc::bad_request);
  CHECK(detail::errc_from_http(404) == api::errc::not_found);
  CHECK(detail::errc_from_http(409) == api::errc::conflict);
  CHECK(detail::errc_from_http(500) == api::errc::server_error);
  CHECK(detail::errc_from_http(503) == api::errc::server_error);

  auto e404 = detail::http_error("inspect container", 404, sample("error_404.json"));
  CHECK(e404.code() == api::errc::not_found);
  CHECK(e404.http_status() == 404);
  CHECK(e404.daemon_message() == "No such container: nonexistent-xyz");
  CHECK(std::string(e404.what()).find("No such container") != std::string::npos);
  auto e409 = detail::http_error("create container", 409, sample("error_409.json"));
  CHECK(e409.code() == api::errc::conflict);
  CHECK(e409.daemon_message().find("already in use") != std::string::npos);
  auto plain = detail::http_error("x", 500, "  plain text failure\n");
  CHECK(plain.daemon_message() == "plain text failure");

  CHECK(detail::errc_from_curl(CURLE_COULDNT_CONNECT) == api::errc::unreachable);
  CHECK(detail::errc_from_curl(CURLE_OPERATION_TIMEDOUT) == api::errc::timeout);
  CHECK(detail::errc_from_curl(CURLE_PARTIAL_FILE) == api::errc::protocol);
  CHECK(detail::errc_from_curl(CURLE_GOT_NOTHING) == api::errc::protocol);
  CHECK(detail::errc_from_curl(CURLE_RECV_ERROR) == api::errc::protocol);
  CHECK(detail::errc_from_curl(CURLE_SSL_CONNECT_ERROR) == api::errc::unreachable);
  CHECK(detail::errc_from_curl(CURLE_URL_MALFORMAT) == api::errc::invalid_argument);
  CHECK(detail::errc_from_curl(CURLE_UNSUPPORTED_PROTOCOL) == api::errc::protocol);
  CHECK(api::to_string(api::errc::not_found) == "not_found");
}

TEST_CASE("container create body carries the scaler's settings", "[json]") {
  api::container_spec s;
  s.image = "img:1";
  s.cmd = std::vector<std::string>{"7"};
  s.env = {{"PORT", "8080"}};
  s.labels = {{"dockscaler.managed", "true"}};
  s.exposed_ports = {8080};
  s.memory_bytes = 128 << 20;
  s.nano_cpus = 500'000'000;
  s.pids_limit = 128;
  s.network = "dockscaler";
  s.network_aliases = {"hello"};
  s.restart.name = "on-failure";
  s.restart.maximum_retry_count = 3;
  s.open_stdin = s.stdin_once = s.attach_stdin = true;
  s.no_new_privileges = true;
  s.cap_drop = {"ALL"};
  s.read_only_rootfs = true;
  s.user = "1000";
  s.tmpfs = {{"/tmp", "size=16m"}};
  s.binds = {"/run/x:/.x"};
  s.logging = api::log_config{"json-file", {{"max-size", "10485760"}, {"max-file", "3"}}};
  s.healthcheck = api::healthcheck{
      {"CMD", "/check"}, std::chrono::milliseconds(500), std::chrono::seconds(2), {}, 3};
  std::string b = detail::container_create_body(s);
  for (
      const char* part :
      {R"("Image":"img:1")",
       R"("Cmd":["7"])",
       R"("Env":["PORT=8080"])",
       R"("Labels":{"dockscaler.managed":"true"})",
       R"("ExposedPorts":{"8080/tcp":{}})",
       R"("Memory":134217728)",
       R"("NanoCpus":500000000)",
       R"("PidsLimit":128)",
       R"("NetworkMode":"dockscaler")",
       R"("SecurityOpt":["no-new-privileges"])",
       R"("CapDrop":["ALL"])",
       R"("ReadonlyRootfs":true)",
       R"("User":"1000")",
       R"("OpenStdin":true)",
       R"("StdinOnce":true)",
       R"("AttachStdin":true)",
       R"("RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3})",
       R"("EndpointsConfig":{"dockscaler":{"Aliases":["hello"]}})",
       R"("Tmpfs":{"/tmp":"size=16m"})",
       R"("Binds":["/run/x:/.x"])",
       R"("LogConfig":{"Type":"json-file","Config":{"max-file":"3","max-size":"10485760"}})",
       R"("Healthcheck":{"Test":["CMD","/check"],"Interval":500000000,"Timeout":2000000000,"Retries":3})"}) {
    INFO(part);
    CHECK(b.find(part) != std::string::npos);
  }
}

TEST_CASE("tar writer produces a valid ustar archive", "[tar]") {
  api::tar_writer w;
  w.add_file("Dockerfile", "FROM scratch\n");
  w.add_file("bin/echo", std::string(1000, 'e'), 0755);
  std::string long_name = std::string(120, 'd') + "/file";
  w.add_file(long_name, "x");
  std::string tar = w.finish();
  REQUIRE(tar.size() % 512 == 0);
  CHECK(tar.size() == 512 + 512 + 512 + 1024 + 512 + 512 + 1024);
  CHECK(tar.substr(0, 10) == "Dockerfile");
  CHECK(tar.substr(257, 5) == "ustar");
  CHECK(tar.substr(512, 13) == "FROM scratch\n");
  // Checksum: sum of header bytes with the checksum field as spaces.
  std::string h = tar.substr(0, 512);
  unsigned stored = std::stoul(h.substr(148, 6), nullptr, 8);
  for (int k = 148; k < 156; ++k) h[k] = ' ';
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  CHECK(stored == sum);
  CHECK(std::stoul(tar.substr(1024 + 124, 11), nullptr, 8) == 1000);  // size field
  CHECK(std::stoul(tar.substr(1024 + 100, 7), nullptr, 8) == 0755);
  CHECK_THROWS_AS(api::tar_writer().add_file(std::string(300, 'a'), "x"), api::error);
}
