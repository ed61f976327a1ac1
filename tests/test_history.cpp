// Unit tests of the daemon's in-memory history (admin/history.hpp): points per
// second with rates from counter differences, the 15-minute bound, the event
// ring and its follow wait, and metrics::counts feeding it. Times are made up.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "admin/history.hpp"
#include "admin/metrics.hpp"

using namespace std::chrono_literals;
using dockscaler::admin::history;
using dockscaler::admin::history_options;
using dockscaler::admin::request_counts;
using dockscaler::admin::wall_clock;
namespace scaler = dockscaler::scaler;

namespace {

const wall_clock::time_point t0 = wall_clock::time_point{} + 1'700'000'000s;

scaler::service_status service(const std::string& name, unsigned ready, std::uint64_t queue = 0) {
  scaler::service_status s;
  s.name = name;
  s.desired = ready;
  s.ready = ready;
  s.min = 1;
  s.max = 5;
  s.figures.queue_length = queue;
  s.figures.wait_p50 = 0.010;
  s.figures.wait_p95 = 0.120;
  return s;
}

std::int64_t ms(wall_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

TEST_CASE("a point per service and second, with rates from the counters' differences") {
  history h;
  std::map<std::string, request_counts, std::less<>> counts;
  auto counts_of = [&](std::string_view s) {
    auto it = counts.find(s);
    return it == counts.end() ? request_counts{} : it->second;
  };
  counts["a"] = {100, 4};
  h.sample({service("a", 1), service("b", 2, 7)}, counts_of, t0);
  counts["a"] = {150, 5};  // 50 answered, 1 error over 2 s
  h.sample({service("a", 3), service("b", 2, 7)}, counts_of, t0 + 2s);

  auto a = h.points("a");
  REQUIRE(a.size() == 2);
  CHECK(a[0].time_ms == ms(t0));
  CHECK(a[0].request_rate == 0);  // no earlier point to compare with
  CHECK(a[1].ready == 3);
  CHECK(a[1].min == 1);
  CHECK(a[1].max == 5);
  CHECK(a[1].wait_p95 == Approx(0.120));
  CHECK(a[1].request_rate == Approx(25.0));
  CHECK(a[1].error_rate == Approx(0.5));
  auto b = h.points("b");
  REQUIRE(b.size() == 2);
  CHECK(b[1].queue_length == 7);
  CHECK(h.services() == std::vector<std::string>{"a", "b"});
  CHECK(h.points("nope").empty());
  // Only the points after a time: what a dashboard asks for after its first load.
  auto later = h.points("a", ms(t0));
  REQUIRE(later.size() == 1);
  CHECK(later[0].time_ms == ms(t0 + 2s));
}

TEST_CASE("points older than keep are dropped, and a service gone ages out") {
  history h(history_options{60s, 10});
  for (int i = 0; i <= 120; ++i) h.sample({service("a", 1)}, nullptr, t0 + std::chrono::seconds(i));
  auto a = h.points("a");
  REQUIRE(!a.empty());
  CHECK(a.front().time_ms == ms(t0 + 60s));  // exactly keep behind the newest
  CHECK(a.size() == 61);
  // "a" removed from the config: its points stay until they are older than keep.
  h.sample({service("b", 1)}, nullptr, t0 + 150s);
  CHECK(h.points("a").size() == 31);
  h.sample({service("b", 1)}, nullptr, t0 + 181s);
  CHECK(h.points("a").empty());
  CHECK(h.services() == std::vector<std::string>{"b"});
}

TEST_CASE("scale events are numbered, filtered by service and bounded") {
  history h(history_options{900s, 3});
  scaler::scale_event up;
  up.service = "a";
  up.from = 1;
  up.to = 3;
  up.what.dir = scaler::direction::up;
  up.what.why.kind = scaler::reason_kind::wait_time_above;
  up.what.why.wait_time = 0.25;
  up.what.why.threshold = 0.1;
  up.what.why.queue_length = 9;
  h.record(up, t0);
  scaler::scale_event manual;
  manual.service = "b";
  manual.from = 2;
  manual.to = 1;
  manual.manual = true;
  h.record(manual, t0 + 1s);

  auto all = h.events();
  REQUIRE(all.size() == 2);
  CHECK(all[0].seq == 1);
  CHECK(all[0].direction == "up");
  CHECK(all[0].reason == "wait_time_above");
  CHECK(all[0].detail == up.what.why.to_string());
  CHECK(all[0].wait_time == Approx(0.25));
  CHECK(all[0].queue_length == 9);
  CHECK(all[1].direction == "down");
  CHECK(all[1].reason == "manual");
  CHECK(all[1].time_ms == ms(t0 + 1s));
  CHECK(h.events("b").size() == 1);
  CHECK(h.events({}, 1).size() == 1);  // after seq 1: what a follower has not seen

  h.record(up, t0 + 2s);
  h.record(up, t0 + 3s);
  all = h.events();
  REQUIRE(all.size() == 3);  // max_events: the oldest went
  CHECK(all.front().seq == 2);
  CHECK(all.back().seq == 4);
}

TEST_CASE("a follower waits for the next event, and close() releases it") {
  history h;
  const auto soon = std::chrono::steady_clock::now() + 50ms;
  CHECK_FALSE(h.wait_events(0, soon));  // nothing recorded: the deadline ends the wait

  scaler::scale_event e;
  e.service = "a";
  e.from = 0;
  e.to = 1;
  e.what.why.kind = scaler::reason_kind::cold_start;
  bool woke = false;
  std::thread follower([&] { woke = h.wait_events(0, std::chrono::steady_clock::now() + 60s); });
  h.record(e, t0);
  follower.join();
  CHECK(woke);
  CHECK(h.wait_events(0, std::chrono::steady_clock::now()));  // already there: no wait

  std::thread closed([&] { woke = h.wait_events(1, std::chrono::steady_clock::now() + 60s); });
  CHECK_FALSE(h.closed());
  h.close();
  closed.join();
  CHECK_FALSE(woke);
  CHECK(h.closed());  // what a follower checks once it has sent every event
}

TEST_CASE("metrics::counts gives a service's answered requests and errors") {
  dockscaler::admin::metrics m;
  CHECK(m.counts("a").answered == 0);
  for (unsigned code : {200u, 200u, 404u, 502u, 503u, 0u}) m.on_request("a", code, 0ns, 1ms);
  m.on_request("b", 200, 0ns, 1ms);
  auto c = m.counts("a");
  CHECK(c.answered == 6);
  CHECK(c.errors == 3);  // 502, 503 and the one cut short; a 404 is the client's
  CHECK(m.counts("b").answered == 1);
}

TEST_CASE("the sampler takes a point every step until stopped, then releases followers") {
  history h;
  std::atomic<int> calls{0};
  dockscaler::admin::history_sampler sampler(
      h,
      [&] {
        ++calls;
        return std::vector<scaler::service_status>{service("a", 1)};
      },
      [](std::string_view) {
        return request_counts{10, 0};
      },
      5ms);
  sampler.start();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (h.points("a").size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(h.points("a").size() >= 3);
  std::thread follower([&] { h.wait_events(0, std::chrono::steady_clock::now() + 60s); });
  sampler.stop();
  follower.join();  // hangs (and the test times out) if stop() did not close the history
  const int after_stop = calls.load();
  sampler.stop();  // twice is fine
  CHECK(calls.load() == after_stop);
}
