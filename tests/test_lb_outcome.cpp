// What the proxy reports of each request (request_outcome, for the access
// log): the request's strings with detailed_outcomes, body bytes both ways,
// the backend's name and status, and why the proxy refused a request.
#include <catch2/catch.hpp>

#include <future>
#include <mutex>
#include <vector>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

// A request_outcome with its own copies of the strings.
struct seen {
  std::string service, client, method, target, referer, user_agent, backend;
  unsigned status = 0, upstream = 0, version = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0;
  refusal refused = refusal::none;
};

struct recorder {
  std::mutex mu;
  std::vector<seen> all;
  void operator()(const request_outcome& o) {
    std::lock_guard lock(mu);
    all.push_back({std::string(o.service), std::string(o.client), std::string(o.method),
                   std::string(o.target), std::string(o.referer), std::string(o.user_agent),
                   std::string(o.backend), o.status, o.upstream_status, o.version, o.bytes_in,
                   o.bytes_out, o.refused});
  }
  // The outcome of the request for `target` once reported.
  std::optional<seen> of(const std::string& target) {
    std::optional<seen> found;
    eventually([&] {
      std::lock_guard lock(mu);
      for (const auto& s : all)
        if (s.target == target) found = s;
      return found.has_value();
    });
    return found;
  }
};

proxy_options detailed(recorder& rec, bool on = true) {
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 1;
  o.request_buffer = 1024;  // larger bodies stream
  o.detailed_outcomes = on;
  o.on_request = [&rec](const request_outcome& r) { rec(r); };
  return o;
}

service_options svc(std::string name, std::string prefix, std::size_t queue_max = 100,
                    std::chrono::milliseconds queue_timeout = 10s) {
  service_options s;
  s.name = std::move(name);
  s.route.path_prefix = std::move(prefix);
  s.queue.max_length = queue_max;
  s.queue.timeout = queue_timeout;
  return s;
}

}  // namespace

TEST_CASE("outcome: a relayed request's strings, bytes, backend and status", "[lb][net]") {
  backend a("a"), b("b");
  recorder rec;
  proxy p(detailed(rec));
  p.add_service(svc("s", "/"));
  auto t_svc = svc("t", "/t");
  t_svc.route.strip_prefix = true;
  p.add_service(t_svc);
  p.add_backend("s", "127.0.0.1", a.port(), "ctr-a");
  p.add_backend("t", "127.0.0.1", b.port());  // no label: its address
  p.start();
  client c(p.port());
  auto r = c.request(http::verb::post, "/echo?x=1", "hello world",
                     {{"Referer", "https://r.example/"}, {"User-Agent", "test-agent/1"}});
  REQUIRE(r.result_int() == 200);
  auto s = rec.of("/echo?x=1");
  REQUIRE(s);
  CHECK(s->service == "s");
  CHECK(s->client == "127.0.0.1");
  CHECK(s->method == "POST");
  CHECK(s->referer == "https://r.example/");
  CHECK(s->user_agent == "test-agent/1");
  CHECK(s->version == 11);
  CHECK(s->backend == "ctr-a");
  CHECK(s->status == 200);
  CHECK(s->upstream == 200);
  CHECK(s->bytes_in == 11);
  CHECK(s->bytes_out == 11);
  CHECK(s->refused == refusal::none);

  // A body larger than request_buffer streams both ways; chunked out.
  const std::string big(100'000, 'x');
  auto rb = c.request(http::verb::post, "/t/echo", big, {{"X-Chunked-Response", "1"}});
  REQUIRE(rb.body().size() == big.size());
  auto t = rec.of("/t/echo");
  REQUIRE(t);
  CHECK(t->backend == "127.0.0.1:" + std::to_string(b.port()));
  CHECK(t->bytes_in == big.size());
  CHECK(t->bytes_out == big.size());  // the body, not its chunk framing
}

TEST_CASE(
    "outcome: the client is the one a rate limit counts: behind a trusted proxy, from "
    "X-Forwarded-For",
    "[lb][net]") {
  backend a("a");
  recorder rec;
  auto opts = detailed(rec);
  const bool trusted = GENERATE(false, true);
  if (trusted) opts.trusted_proxies = {*parse_cidr("127.0.0.0/8")};
  proxy p(opts);
  p.add_service(svc("s", "/"));
  p.add_backend("s", "127.0.0.1", a.port());
  p.start();
  client c(p.port());
  // The last hop that is not a trusted proxy: 198.51.100.9 (127.0.0.2 is ours).
  auto r = c.request(http::verb::get, "/xff", "",
                     {{"X-Forwarded-For", "203.0.113.7, 198.51.100.9, 127.0.0.2"}});
  REQUIRE(r.result_int() == 200);
  auto s = rec.of("/xff");
  REQUIRE(s);
  CHECK(s->client == (trusted ? "198.51.100.9" : "127.0.0.1"));
}

TEST_CASE("outcome: why the proxy refused a request", "[lb][net]") {
  recorder rec;
  proxy p(detailed(rec));
  p.add_service(svc("wait", "/wait", 1, 500ms));  // no backend: requests queue, one at most
  p.add_service(svc("dead", "/dead"));
  {
    asio::io_context ioc;
    tcp::acceptor gone(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    p.add_backend("dead", "127.0.0.1", gone.local_endpoint().port(), "ctr-dead");
  }  // nothing listens there any more
  p.start();

  auto queued = std::async(std::launch::async, [&] { return get_status(p.port(), "/wait/1"); });
  REQUIRE(eventually([&] { return p.snapshot("wait").queue_length == 1; }));
  CHECK(get_status(p.port(), "/wait/2") == 503);  // the queue is full
  CHECK(queued.get() == 503);                     // and the first one timed out in it
  CHECK(get_status(p.port(), "/nowhere") == 404);
  CHECK(get_status(p.port(), "/dead/x") == 502);
  CHECK(status_of(raw_exchange(p.port(), "GET /bad HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")) ==
        400);

  auto full = rec.of("/wait/2");
  REQUIRE(full);
  CHECK(full->refused == refusal::queue_full);
  CHECK(full->upstream == 0);
  CHECK(full->backend.empty());
  CHECK(full->bytes_out > 0);  // the proxy's own answer
  CHECK(rec.of("/wait/1")->refused == refusal::queue_timeout);
  auto none = rec.of("/nowhere");
  REQUIRE(none);
  CHECK(none->refused == refusal::no_route);
  CHECK(none->service.empty());
  auto dead = rec.of("/dead/x");
  REQUIRE(dead);
  CHECK(dead->refused == refusal::upstream_error);
  CHECK(dead->status == 502);
  CHECK(dead->backend == "ctr-dead");
  auto bad = rec.of("/bad");
  REQUIRE(bad);
  CHECK(bad->refused == refusal::bad_request);
  CHECK(bad->status == 400);
}

TEST_CASE("outcome: without detailed_outcomes no string is looked up", "[lb][net]") {
  backend a("a");
  recorder rec;
  proxy p(detailed(rec, false));
  p.add_service(svc("s", "/s"));
  p.add_backend("s", "127.0.0.1", a.port(), "ctr-a");
  p.start();
  CHECK(get_status(p.port(), "/s/1") == 200);
  CHECK(get_status(p.port(), "/other") == 404);
  REQUIRE(eventually([&] {
    std::lock_guard lock(rec.mu);
    return rec.all.size() == 2;
  }));
  std::lock_guard lock(rec.mu);
  for (const auto& s : rec.all) {
    CHECK(s.target.empty());
    CHECK(s.client.empty());
    CHECK(s.backend.empty());
  }
  CHECK(rec.all[0].upstream == 200);  // the figures are always there
  CHECK(rec.all[1].refused == refusal::no_route);
}
