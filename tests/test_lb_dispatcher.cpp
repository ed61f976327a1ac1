// Unit tests of the socket-free slot / round-robin / FIFO queue / drain logic
// (lb/detail/dispatcher), driven by a fake clock.
#include <catch2/catch.hpp>

#include <map>

#include "lb/detail/dispatcher.hpp"

using namespace dockscaler::lb::detail;
using namespace std::chrono_literals;

namespace {

struct fake_waiter : waiter {
  int notified = 0;
  void notify() noexcept override { ++notified; }
};

boost::asio::ip::tcp::endpoint ep(unsigned short port) {
  return {boost::asio::ip::make_address("127.0.0.1"), port};
}

const clock::time_point t0{};  // the fake clock's origin

}  // namespace

TEST_CASE("round robin spreads over backends with free slots", "[dispatcher]") {
  dispatcher d({2, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  d.add_backend(t0, 3, "c", 3, ep(3));
  std::map<backend_id, int> hits;
  for (int i = 0; i < 6; ++i) {
    grant g;
    REQUIRE(d.try_acquire(g));
    ++hits[g.id];
    d.release(t0, g.id).run();
  }
  CHECK(hits[1] == 2);
  CHECK(hits[2] == 2);
  CHECK(hits[3] == 2);
}

TEST_CASE("slots are limited by concurrency and skipped when full", "[dispatcher]") {
  dispatcher d({2, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  grant g[4];
  for (auto& x : g) REQUIRE(d.try_acquire(x));
  grant extra;
  CHECK_FALSE(d.try_acquire(extra));
  auto v = d.view();
  CHECK(v.in_flight == 4);
  CHECK(v.backends[0].in_flight == 2);
  CHECK(v.backends[1].in_flight == 2);
  // Freeing a slot on backend 2 makes exactly that backend eligible.
  d.release(t0, 2).run();
  REQUIRE(d.try_acquire(extra));
  CHECK(extra.id == 2);
}

TEST_CASE("queue is FIFO, bounded, and hands freed slots to its head", "[dispatcher]") {
  dispatcher d({1, 2});
  d.add_backend(t0, 1, "a", 1, ep(1));
  grant busy;
  REQUIRE(d.try_acquire(busy));

  auto w1 = std::make_shared<fake_waiter>();
  auto w2 = std::make_shared<fake_waiter>();
  auto w3 = std::make_shared<fake_waiter>();
  CHECK(d.enqueue(t0 + 1ms, w1) == dispatcher::enqueue_result::queued);
  CHECK(d.enqueue(t0 + 2ms, w2) == dispatcher::enqueue_result::queued);
  CHECK(d.enqueue(t0 + 3ms, w3) == dispatcher::enqueue_result::full);
  CHECK(d.queue_length() == 2);

  // Newcomers may not overtake the queue even when a slot is free for a moment.
  auto a = d.release(t0 + 100ms, 1);
  REQUIRE(a.wake == w1);
  CHECK(w1->state == waiter::granted);
  CHECK(w1->slot.id == 1);
  CHECK(w1->dispatched == t0 + 100ms);
  CHECK(w1->notified == 0);  // the caller notifies, outside the lock
  a.run();
  CHECK(w1->notified == 1);
  CHECK(w2->state == waiter::waiting);
  grant g;
  CHECK_FALSE(d.try_acquire(g));

  auto b = d.release(t0 + 250ms, 1);
  REQUIRE(b.wake == w2);
  CHECK(w2->dispatched - t0 == 250ms);
  CHECK(d.queue_length() == 0);
}

TEST_CASE("a timed-out waiter is cancelled; a granted one cannot be", "[dispatcher]") {
  dispatcher d({1, 5});
  d.add_backend(t0, 1, "a", 1, ep(1));
  grant busy;
  REQUIRE(d.try_acquire(busy));
  auto w1 = std::make_shared<fake_waiter>();
  auto w2 = std::make_shared<fake_waiter>();
  d.enqueue(t0, w1);
  d.enqueue(t0, w2);
  CHECK(d.cancel(*w1));
  CHECK_FALSE(d.cancel(*w1));
  auto a = d.release(t0 + 1s, 1);
  CHECK(a.wake == w2);
  CHECK_FALSE(d.cancel(*w2));  // granted meanwhile: the waiter must use its grant
  CHECK(w2->state == waiter::granted);
}

TEST_CASE("with zero backends requests wait; adding one dispatches them", "[dispatcher]") {
  dispatcher d({2, 10});
  grant g;
  CHECK_FALSE(d.try_acquire(g));
  auto w1 = std::make_shared<fake_waiter>();
  auto w2 = std::make_shared<fake_waiter>();
  auto w3 = std::make_shared<fake_waiter>();
  for (auto& w : {w1, w2, w3}) CHECK(d.enqueue(t0, w) == dispatcher::enqueue_result::queued);
  auto woken = d.add_backend(t0 + 5s, 7, "a", 1, ep(1));
  REQUIRE(woken.size() == 2);  // concurrency 2
  CHECK(woken[0] == w1);
  CHECK(woken[1] == w2);
  CHECK(w1->dispatched - t0 == 5s);
  CHECK(w3->state == waiter::waiting);
  CHECK(d.queue_length() == 1);
}

TEST_CASE("drain leaves rotation at once, fires when idle, keeps the queue", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  grant g1, g2;
  REQUIRE(d.try_acquire(g1));
  REQUIRE(d.try_acquire(g2));
  REQUIRE(g1.id != g2.id);
  const backend_id drained_id = g1.id;
  const backend_id other = g2.id;
  auto w = std::make_shared<fake_waiter>();
  REQUIRE(d.enqueue(t0, w) == dispatcher::enqueue_result::queued);

  int fired = 0;
  bool idle_flag = false;
  auto immediate = d.drain(drained_id, [&](bool idle) {
    ++fired;
    idle_flag = idle;
  });
  CHECK_FALSE(immediate);  // one request in flight
  // The draining backend's slot does not go to the queue...
  auto a = d.release(t0 + 1s, drained_id);
  CHECK_FALSE(a.wake);
  a.run();
  CHECK(fired == 1);
  CHECK(idle_flag);
  CHECK(w->state == waiter::waiting);
  // ...the other backend's does.
  auto b = d.release(t0 + 2s, other);
  CHECK(b.wake == w);
  CHECK(w->slot.id == other);
  // A drained backend never gets new work.
  d.release(t0 + 3s, other).run();
  for (int i = 0; i < 3; ++i) {
    grant g;
    REQUIRE(d.try_acquire(g));
    CHECK(g.id == other);
    d.release(t0, g.id).run();
  }
  // Draining an idle backend returns the callback for the caller to run.
  auto again = d.drain(drained_id, [](bool) {});
  CHECK(static_cast<bool>(again));
}

TEST_CASE("drain timeout takes the callback back exactly once", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  grant g;
  REQUIRE(d.try_acquire(g));
  int calls = 0;
  CHECK_FALSE(d.drain(1, [&](bool) { ++calls; }));
  auto cb = d.take_drain_callback(1);
  REQUIRE(cb);
  cb(false);
  auto r = d.release(t0, 1);
  CHECK_FALSE(r.drained);  // already fired by the timeout
  CHECK(calls == 1);
}

TEST_CASE("connect failure marks suspect; suspect backends are used last", "[dispatcher]") {
  dispatcher d({4, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  grant g;
  REQUIRE(d.try_acquire(g));
  REQUIRE(g.id == 1);
  d.release(t0, 1, /*connect_failed=*/true).run();
  for (int i = 0; i < 4; ++i) {
    grant x;
    REQUIRE(d.try_acquire(x));
    CHECK(x.id == 2);
  }
  grant x;
  REQUIRE(d.try_acquire(x));  // backend 2 full: the suspect one is better than nothing
  CHECK(x.id == 1);
  CHECK(x.suspect);
  d.mark_healthy(1);
  CHECK_FALSE(d.view().backends[0].suspect);
}

TEST_CASE("a retry excludes backends already tried", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  auto w = std::make_shared<fake_waiter>();
  const backend_id tried1[] = {1};
  CHECK(d.enqueue(t0, w, true, tried1) == dispatcher::enqueue_result::granted);
  CHECK(w->slot.id == 2);
  auto w2 = std::make_shared<fake_waiter>();
  const backend_id tried2[] = {1, 2};
  CHECK(d.enqueue(t0, w2, true, tried2) == dispatcher::enqueue_result::exhausted);
}

TEST_CASE("a queued retry is never handed the backend it failed on", "[dispatcher]") {
  // A dead backend's slots free at once (its connects fail), so they are often
  // the only free ones: the retry waiting at the head must not get them back,
  // and must not hold up the requests behind it that may use them.
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "dead", 1, ep(1));
  d.add_backend(t0, 2, "live", 2, ep(2));
  grant g1, g2;
  REQUIRE(d.try_acquire(g1));
  REQUIRE(d.try_acquire(g2));
  REQUIRE(g1.id == 1);
  auto retry = std::make_shared<fake_waiter>();
  auto plain = std::make_shared<fake_waiter>();
  const backend_id tried[] = {1};
  CHECK(d.enqueue(t0, retry, true, tried) == dispatcher::enqueue_result::queued);
  CHECK(d.enqueue(t0, plain) == dispatcher::enqueue_result::queued);
  auto freed = d.release(t0, 1, /*connect_failed=*/true);
  CHECK(freed.wake == plain);
  CHECK(plain->slot.id == 1);
  CHECK(retry->state.load() == waiter::waiting);
  auto next = d.release(t0, 2);
  CHECK(next.wake == retry);
  CHECK(retry->slot.id == 2);
  CHECK(d.queue_length() == 0);
}

TEST_CASE("higher concurrency and close wake waiters", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  grant g;
  REQUIRE(d.try_acquire(g));
  auto w1 = std::make_shared<fake_waiter>();
  auto w2 = std::make_shared<fake_waiter>();
  d.enqueue(t0, w1);
  d.enqueue(t0, w2);
  auto woken = d.set_limits(t0, {2, 10});
  REQUIRE(woken.size() == 1);
  CHECK(woken[0] == w1);
  auto closed = d.close();
  REQUIRE(closed.size() == 1);
  CHECK(w2->state == waiter::closed);
  CHECK_FALSE(d.try_acquire(g));
}

TEST_CASE("removing a backend mid-request is safe", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "a", 1, ep(1));
  grant g;
  REQUIRE(d.try_acquire(g));
  std::function<void(bool)> pending;
  bool idle = true;
  REQUIRE(d.remove_backend(1, pending, idle));
  CHECK_FALSE(idle);
  CHECK_FALSE(d.remove_backend(1, pending, idle));
  auto r = d.release(t0, 1);  // the request finishing later finds nothing to free
  CHECK_FALSE(r.wake);
  CHECK(d.view().backends.empty());
}

// ---- function backends (stdio functions) ----------------------------------

TEST_CASE("max_in_flight caps requests over all backends; any release frees a slot",
          "[dispatcher]") {
  dispatcher d({4, 10, 3});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  grant g[3];
  for (auto& x : g) REQUIRE(d.try_acquire(x));
  grant extra;
  CHECK_FALSE(d.try_acquire(extra));  // 3 in flight, though both backends have free slots
  auto w = std::make_shared<fake_waiter>();
  CHECK(d.enqueue(t0, w) == dispatcher::enqueue_result::queued);
  auto a = d.release(t0 + 5ms, g[0].id);
  REQUIRE(a.wake == w);
  CHECK(w->state == waiter::granted);
  CHECK(d.view().in_flight == 3);
  // A draining backend's release frees capacity for the others too.
  d.drain(g[1].id, [](bool) {});
  const backend_id other = g[1].id == 1 ? 2 : 1;
  auto w2 = std::make_shared<fake_waiter>();
  CHECK(d.enqueue(t0, w2) == dispatcher::enqueue_result::queued);
  auto b = d.release(t0 + 6ms, g[1].id);
  REQUIRE(b.wake == w2);
  CHECK(w2->slot.id == other);
}

TEST_CASE("a backend's own slot count overrides the service concurrency", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "fn", 0, {}, backend_kind{nullptr, 3, false});
  grant g[3];
  for (auto& x : g) REQUIRE(d.try_acquire(x));
  grant extra;
  CHECK_FALSE(d.try_acquire(extra));
}

TEST_CASE("a one-shot backend takes one request, then is forgotten when released", "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "", 0, {}, backend_kind{nullptr, 1, true});
  d.add_backend(t0, 2, "", 0, {}, backend_kind{nullptr, 1, true});
  grant g1, g2, g3;
  REQUIRE(d.try_acquire(g1));
  REQUIRE(d.try_acquire(g2));
  CHECK(g1.id != g2.id);
  CHECK_FALSE(d.try_acquire(g3));  // both used: none comes back
  bool drained = false;
  CHECK(d.drain(g1.id, [&](bool idle) { drained = idle; }) == nullptr);
  d.release(t0, g1.id).run();
  CHECK(drained);
  auto v = d.view();
  REQUIRE(v.backends.size() == 1);
  CHECK(v.backends[0].id == g2.id);
  CHECK(v.backends[0].draining);
  d.release(t0, g2.id).run();
  CHECK(d.view().backends.empty());
  CHECK(d.view().in_flight == 0);
}

TEST_CASE("with one-shot backends a retry waits for a fresh one instead of giving up",
          "[dispatcher]") {
  dispatcher d({1, 10});
  d.add_backend(t0, 1, "", 0, {}, backend_kind{nullptr, 1, true});
  grant g;
  REQUIRE(d.try_acquire(g));
  d.release(t0, g.id, true).run();  // it was dead: nothing ran
  auto w = std::make_shared<fake_waiter>();
  const backend_id tried[] = {g.id};
  CHECK(d.enqueue(t0, w, true, tried) == dispatcher::enqueue_result::queued);
  auto woken = d.add_backend(t0 + 300ms, 2, "", 0, {}, backend_kind{nullptr, 1, true});
  REQUIRE(woken.size() == 1);
  CHECK(woken[0] == w);
  CHECK(w->slot.id == 2);
}

TEST_CASE("removing a backend with requests in flight gives their capacity back", "[dispatcher]") {
  dispatcher d({2, 10, 2});
  d.add_backend(t0, 1, "a", 1, ep(1));
  d.add_backend(t0, 2, "b", 2, ep(2));
  grant g1, g2;
  REQUIRE(d.try_acquire(g1));
  REQUIRE(d.try_acquire(g2));
  std::function<void(bool)> pending;
  bool idle = true;
  REQUIRE(d.remove_backend(g1.id, pending, idle));
  CHECK_FALSE(idle);
  grant g3;
  REQUIRE(d.try_acquire(g3));
  CHECK(g3.id == g2.id);
  d.release(t0, g1.id).run();  // the removed one's release changes nothing
  CHECK(d.view().in_flight == 2);
}

TEST_CASE("unavailable: queued and new requests are refused at once until a backend comes",
          "[dispatcher][errors]") {
  dispatcher d({1, 10});
  auto w1 = std::make_shared<fake_waiter>();
  auto w2 = std::make_shared<fake_waiter>();
  REQUIRE(d.enqueue(t0, w1) == dispatcher::enqueue_result::queued);
  REQUIRE(d.enqueue(t0, w2) == dispatcher::enqueue_result::queued);
  auto woken = d.set_unavailable("service s has no replica: No such image: x:1");
  REQUIRE(woken.size() == 2);
  for (auto& w : woken) {
    CHECK(w->state.load() == waiter::unavailable);
    w->notify();
  }
  CHECK(d.queue_length() == 0);
  CHECK(d.unavailable_reason() == "service s has no replica: No such image: x:1");
  auto w3 = std::make_shared<fake_waiter>();
  CHECK(d.enqueue(t0, w3) == dispatcher::enqueue_result::unavailable);
  CHECK(d.queue_length() == 0);
  // A backend joins: back to normal.
  d.add_backend(t0, 1, "a", 1, ep(1));
  CHECK(d.unavailable_reason().empty());
  w3->reset();
  CHECK(d.enqueue(t0, w3) == dispatcher::enqueue_result::granted);
  // While a backend is in rotation the mark is ignored (it can serve)...
  CHECK(d.set_unavailable("stale news").empty());
  CHECK(d.unavailable_reason().empty());
  // ...and an empty reason always clears.
  d.drain(1, nullptr);
  d.set_unavailable("again");
  CHECK(d.unavailable_reason() == "again");
  d.set_unavailable({});
  auto w4 = std::make_shared<fake_waiter>();
  CHECK(d.enqueue(t0, w4) == dispatcher::enqueue_result::queued);
}
