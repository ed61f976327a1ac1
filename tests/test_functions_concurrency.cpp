// The runner's concurrency pieces on their own, without Docker:
// functions::task_pool (threads up to its limit and no more, work beyond it
// waiting in order, shutdown running what is queued and joining) and
// functions::deadline_queue (functions run in deadline order on its one
// thread, cancelled ones never, pending ones dropped at stop). Tasks block on
// latches the test opens, so nothing depends on timing.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "functions/deadline_queue.hpp"
#include "functions/task_pool.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::functions;
using lbtest::eventually;
using namespace std::chrono_literals;

namespace {

// A gate tasks wait at until the test opens it.
class gate {
 public:
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Tasks that count themselves running, the most at once, and their order.
struct tracker {
  std::mutex mu;
  int running = 0, most = 0;
  std::vector<int> order;
  std::function<void()> task(int n, gate& g) {
    return [this, n, &g] {
      {
        std::lock_guard lock(mu);
        order.push_back(n);
        most = std::max(most, ++running);
      }
      g.wait();
      std::lock_guard lock(mu);
      --running;
    };
  }
  int now() {
    std::lock_guard lock(mu);
    return running;
  }
};

// Opens the gates when a test ends, even one cut short by a failed REQUIRE,
// so the pool's shutdown does not wait forever for tasks held at them.
struct open_at_exit {
  std::vector<gate*> gates;
  ~open_at_exit() {
    for (auto* g : gates) g->open();
  }
};

}  // namespace

TEST_CASE("a task pool runs up to its limit at once; the rest wait their turn in order",
          "[functions][pool]") {
  gate g;
  tracker t;
  task_pool pool(3);
  open_at_exit opener{{&g}};  // destroyed before the pool, whose shutdown waits for the tasks
  for (int i = 0; i < 5; ++i) REQUIRE(pool.submit(t.task(i, g)));
  REQUIRE(eventually([&] { return t.now() == 3; }));
  CHECK(pool.threads() == 3);
  g.open();
  pool.shutdown();  // the two queued ones run before it returns
  CHECK(t.most == 3);
  CHECK(t.order.size() == 5);
  CHECK(std::vector<int>(t.order.begin() + 3, t.order.end()) == std::vector<int>{3, 4});
  CHECK_FALSE(pool.submit([] {}));  // after shutdown: refused
}

TEST_CASE("a raised limit lets waiting work start; idle threads are reused, not added",
          "[functions][pool]") {
  gate first, second;
  tracker t;
  task_pool pool(1);
  open_at_exit opener{{&first, &second}};
  REQUIRE(pool.submit(t.task(0, first)));
  REQUIRE(pool.submit(t.task(1, second)));
  REQUIRE(eventually([&] { return t.now() == 1; }));
  pool.set_limit(4);
  REQUIRE(eventually([&] { return t.now() == 2; }));  // the one waiting starts
  REQUIRE(pool.submit(t.task(2, second)));
  REQUIRE(eventually([&] { return t.now() == 3; }));
  first.open();
  second.open();
  REQUIRE(eventually([&] { return t.now() == 0; }));
  const auto threads = pool.threads();
  CHECK(threads == 3);
  for (int i = 0; i < 3; ++i) REQUIRE(pool.submit([] {}));  // one at a time: idle ones take them
  pool.shutdown();
  CHECK(pool.threads() == threads);
}

TEST_CASE("a deadline queue runs what is due in deadline order and never what was cancelled",
          "[functions][timer]") {
  gate hold;
  deadline_queue q;
  open_at_exit opener{{&hold}};
  std::mutex mu;
  std::vector<int> ran;
  auto record = [&](int n) {
    return [&, n] {
      std::lock_guard lock(mu);
      ran.push_back(n);
    };
  };
  const auto now = deadline_queue::clock::now();
  std::atomic<bool> holding{false};
  q.at(now - 10s, [&] {  // keeps the thread busy while the rest are queued
    holding = true;
    hold.wait();
  });
  REQUIRE(eventually([&] { return holding.load(); }));
  q.at(now - 1s, record(3));
  q.at(now - 3s, record(1));
  const auto cancelled = q.at(now - 2s, record(99));
  q.at(now - 2s, record(2));
  q.at(now + 1h, record(100));  // not due
  q.cancel(cancelled);
  hold.open();
  REQUIRE(eventually([&] { return q.pending() == 1; }));
  {
    std::lock_guard lock(mu);
    CHECK(ran == std::vector<int>{1, 2, 3});
  }
  q.stop();  // drops the one not due
  CHECK(q.pending() == 0);
  std::lock_guard lock(mu);
  CHECK(ran == std::vector<int>{1, 2, 3});
}
