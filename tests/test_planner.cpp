// The planner over scripted timelines: a service's state is stepped through
// plan() and the event functions (started, joined, gone, not_ready) with a
// time point the test moves by hand. No threads, no Docker, no sleep: start,
// readiness timeout, crash back-off, hold expiry and rolling replacement.
#include "scaler/planner.hpp"

#include <catch2/catch.hpp>

#include <rapidjson/document.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "scaler/event_log.hpp"

using namespace dockscaler;
using namespace dockscaler::scaler;
using namespace std::chrono_literals;

namespace {

// One service and its clock; `executed` plays the executor for start
// actions (names reserved like the autoscaler does).
struct timeline {
  service_state s;
  clock::time_point now = clock::time_point{} + 1h;
  unsigned named = 0;

  timeline(unsigned min, unsigned max, unsigned desired) {
    s.cfg.name = "svc";
    s.cfg.image = "img:1";
    s.cfg.replicas = {min, max, desired};
    s.cfg.readiness.timeout = 2s;
    s.cfg.drain_timeout = 5s;
    s.hash = "h1";
    s.desired = desired;
  }

  actions step(const std::optional<pool_figures>& f = std::nullopt) {
    return plan(s, f, plan_context{now, true, false, 1s});
  }
  // Reserves a name per start asked for and returns them.
  std::vector<std::string> reserve(const actions& acts) {
    std::vector<std::string> names;
    for (const auto& a : acts)
      for (unsigned i = 0; a.what == action::kind::start && i < a.count; ++i) {
        names.push_back("c" + std::to_string(++named));
        s.pending.insert(names.back());
      }
    return names;
  }
  // A replica started (id = name) and joined the pool as backend `b`.
  void ready(const std::string& name, std::uint64_t b, const std::string& hash = "h1") {
    started(s, name, name, hash, now);
    joined(s, name, "10.0.0.1", b, now);
  }
  unsigned in_phase(replica_phase p) const {
    return static_cast<unsigned>(
        std::count_if(s.replicas.begin(), s.replicas.end(),
                      [&](const auto& kv) { return kv.second.phase == p; }));
  }
};

unsigned count(const actions& acts, action::kind k) {
  unsigned n = 0;
  for (const auto& a : acts) n += a.what == k ? (k == action::kind::start ? a.count : 1) : 0;
  return n;
}

const action* find(const actions& acts, action::kind k) {
  auto it = std::find_if(acts.begin(), acts.end(), [&](const action& a) { return a.what == k; });
  return it == acts.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("start: desired replicas are started once, and counted while they start", "[planner]") {
  timeline t(1, 5, 2);
  auto names = t.reserve(t.step());
  REQUIRE(names.size() == 2);
  CHECK(count(t.step(), action::kind::start) == 0);  // pending ones count
  started(t.s, names[0], "id0", "h1", t.now);
  CHECK(count(t.step(), action::kind::start) == 0);  // a starting one counts
  t.now += 1s;
  const auto acts = joined(t.s, "id0", "10.0.0.1", 7, t.now);
  CHECK(acts.empty());  // not a cold start
  CHECK(t.s.replicas.at("id0").phase == replica_phase::ready);
  CHECK(t.s.replicas.at("id0").in_pool);
  CHECK(count(t.step(), action::kind::start) == 0);
  CHECK(t.s.failures == 0);
}

TEST_CASE("readiness timeout: a replica not ready by its deadline is given up and stopped",
          "[planner][errors]") {
  timeline t(1, 5, 1);
  auto names = t.reserve(t.step());
  REQUIRE(names.size() == 1);
  started(t.s, names[0], "id0", "h1", t.now);
  t.now += 1999ms;
  auto acts = t.step();
  CHECK(find(acts, action::kind::stop) == nullptr);
  CHECK(t.s.replicas.count("id0") == 1);

  t.now += 1ms;  // readiness.timeout (2 s) after it started
  acts = t.step();
  const action* stop = find(acts, action::kind::stop);
  REQUIRE(stop != nullptr);
  CHECK(stop->replica == "id0");
  CHECK(t.s.replicas.empty());
  CHECK(t.s.retiring.count("id0") == 1);  // not to be adopted while it is being stopped
  CHECK(t.s.failures == 1);
  CHECK(t.s.last_error.find("not ready within 2s") != std::string::npos);
  CHECK(count(acts, action::kind::start) == 0);  // the back-off comes first
  t.now += 500ms;
  CHECK(count(t.step(), action::kind::start) == 1);
}

TEST_CASE("readiness timeout: a replica joining the pool is not given up", "[planner]") {
  timeline t(1, 5, 1);
  auto names = t.reserve(t.step());
  started(t.s, names.at(0), "id0", "h1", t.now);
  t.s.replicas.at("id0").joining = true;
  t.now += 10s;
  CHECK(find(t.step(), action::kind::stop) == nullptr);
  CHECK(t.s.replicas.count("id0") == 1);
}

TEST_CASE("crash back-off: each early death doubles the wait before the next start",
          "[planner][errors]") {
  timeline t(1, 5, 1);
  t.ready("c0", 1);
  clock::duration expected = 500ms;
  for (unsigned death = 1; death <= 4; ++death) {
    t.now += 1s;  // dies soon after it became ready: a failed start
    const std::string id = t.s.replicas.begin()->first;
    auto acts = gone(t.s, id, t.now);
    CHECK(count(acts, action::kind::unpool) == 1);
    CHECK(count(acts, action::kind::stop) == 1);
    CHECK(t.s.failures == death);
    acts = t.step();
    CHECK(count(acts, action::kind::start) == 0);
    // Two failures in a row: requests are answered 503 until one is ready.
    if (death == 2) {
      const action* u = find(acts, action::kind::set_unavailable);
      REQUIRE(u != nullptr);
      CHECK(u->text.find("exited") != std::string::npos);
    }
    t.now += expected - 1ms;
    CHECK(count(t.step(), action::kind::start) == 0);
    t.now += 1ms;
    const auto names = t.reserve(t.step());
    REQUIRE(names.size() == 1);
    t.ready(names[0], death + 1);
    expected *= 2;
  }
  // The proxy was told to queue again once a replica was ready.
  const auto acts = t.step();
  const action* u = find(acts, action::kind::set_unavailable);
  REQUIRE(u != nullptr);
  CHECK(u->text.empty());
}

TEST_CASE(
    "crash back-off: a death after early_death starts a replacement at once, and a "
    "replica that stays up forgives the run",
    "[planner][errors]") {
  timeline t(1, 5, 1);
  t.ready("c0", 1);
  t.now += 1s;
  gone(t.s, "c0", t.now);
  REQUIRE(t.s.failures == 1);
  t.now += 500ms;
  t.ready(t.reserve(t.step()).at(0), 2);
  t.now += early_death + 1s;
  t.step();
  CHECK(t.s.failures == 0);  // forgiven
  CHECK(t.s.last_error.empty());
  const std::string id = t.s.replicas.begin()->first;
  gone(t.s, id, t.now);
  CHECK(t.s.failures == 0);
  CHECK(count(t.step(), action::kind::start) == 1);
}

TEST_CASE("hold expiry: a manual count holds against the policy until the hold ends", "[planner]") {
  timeline t(1, 5, 1);
  t.ready("c0", 1);
  // An operator scales to 0 for 10 s although replicas.min is 1.
  auto acts = apply_decision(t.s, decision{0, direction::down, {}}, true, t.now);
  REQUIRE(find(acts, action::kind::scaled) != nullptr);
  CHECK(find(acts, action::kind::scaled)->event.manual);
  t.s.hold_until = t.now + 10s;
  acts = t.step(pool_figures{});
  CHECK(count(acts, action::kind::drain) == 1);
  CHECK(t.s.desired == 0);
  t.now += 9999ms;
  acts = t.step(pool_figures{});
  CHECK(t.s.desired == 0);  // the policy would say below_min: held
  CHECK(count(acts, action::kind::start) == 0);
  t.now += 1ms;
  acts = t.step(pool_figures{});
  CHECK_FALSE(t.s.hold_until);
  CHECK(t.s.desired == 1);
  CHECK(t.s.last.why.kind == reason_kind::below_min);
  REQUIRE(find(acts, action::kind::scaled) != nullptr);
  CHECK_FALSE(find(acts, action::kind::scaled)->event.manual);
  CHECK(count(acts, action::kind::start) == 1);
}

TEST_CASE("a manual scale without a hold stays scale_down.for, counted from the scale",
          "[planner]") {
  timeline t(0, 5, 1);
  t.s.cfg.scale_down.hold = 60s;
  t.s.cfg.scale_down.cooldown = 6500ms;
  t.ready("c0", 1);
  for (int i = 0; i < 30; ++i, t.now += 1s) t.step(pool_figures{});  // 30 s idle, under `for`
  CHECK(t.s.desired == 1);
  apply_decision(t.s, decision{3, direction::up, {}}, true, t.now);  // `scale svc=3`
  const auto scaled_at = t.now;
  while (t.now < scaled_at + 60s) {
    t.step(pool_figures{});
    REQUIRE(t.s.desired == 3);  // not after the 6.5 s cooldown, nor 30 s (60 s idle in all)
    t.now += 500ms;
  }
  t.step(pool_figures{});
  CHECK(t.s.desired == 0);
  CHECK(t.s.last.why.kind == reason_kind::idle);
}

TEST_CASE("rolling replace: an outdated replica leaves only when a current one is ready",
          "[planner]") {
  timeline t(1, 5, 2);
  t.ready("old1", 1, "h0");
  t.ready("old2", 2, "h0");
  REQUIRE(t.s.replicas.at("old1").outdated);
  pool_figures f;
  f.in_flight_by_backend = {{1, 3}, {2, 0}};
  t.s.figures = f;
  auto acts = t.step();
  auto names = t.reserve(acts);
  CHECK(names.size() == 2);  // current ones start beside the outdated
  CHECK(count(acts, action::kind::drain) == 0);
  started(t.s, names[0], names[0], "h1", t.now);
  CHECK(count(t.step(), action::kind::drain) == 0);  // started, not ready
  joined(t.s, names[0], "10.0.0.2", 3, t.now);
  acts = t.step();
  REQUIRE(count(acts, action::kind::drain) == 1);
  CHECK(find(acts, action::kind::drain)->replica == "old2");  // the least busy
  CHECK(find(acts, action::kind::drain)->timeout == 5s);
  CHECK(t.s.replicas.at("old2").phase == replica_phase::draining);
  CHECK(count(t.step(), action::kind::drain) == 0);  // one at a time
  t.ready(names[1], 4);
  acts = t.step();
  REQUIRE(count(acts, action::kind::drain) == 1);
  CHECK(find(acts, action::kind::drain)->replica == "old1");
  CHECK(t.in_phase(replica_phase::ready) == 2);
  CHECK(count(t.step(), action::kind::start) == 0);
}

TEST_CASE("a taken pre-warmed replica is refilled at once; a draining one's death is ignored",
          "[planner]") {
  timeline t(1, 5, 1);
  t.ready("c0", 1);
  t.s.failures = 1;
  CHECK(taken(t.s, "c0"));
  CHECK_FALSE(taken(t.s, "c0"));
  CHECK(t.s.failures == 0);
  CHECK(t.s.wake);
  CHECK(count(t.step(), action::kind::start) == 1);

  timeline d(0, 5, 1);
  d.ready("c0", 1);
  d.s.desired = 0;
  REQUIRE(count(d.step(), action::kind::drain) == 1);
  CHECK(gone(d.s, "c0", d.now).empty());
  CHECK(d.s.failures == 0);
}

namespace {

// Captures what the planner logs, one message per line, for the scope's life;
// structured events as asked, off again after.
struct captured_log {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  explicit captured_log(bool structured) {
    auto logger = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
    logger->set_pattern("%v");
    spdlog::set_default_logger(logger);
    set_structured_events(structured);
  }
  ~captured_log() {
    set_structured_events(false);
    spdlog::set_default_logger(previous);
  }
};

// A structured line as the JSON formatter writes it: the members after the marker.
rapidjson::Document members_of(const std::string& line) {
  REQUIRE_FALSE(line.empty());
  REQUIRE(line.front() == structured_marker);
  const std::string object = "{" + line.substr(1) + "}";
  rapidjson::Document d;
  d.Parse(object.c_str(), object.size());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

}  // namespace

TEST_CASE("scale and container events: the sentence in text, fields of their own in JSON",
          "[planner][log]") {
  timeline t(1, 5, 1);
  t.ready("c0", 1);
  decision up{3, direction::up, {}};
  up.why.kind = reason_kind::wait_time_above;
  up.why.wait_time = 0.12;
  up.why.threshold = 0.1;
  up.why.held = 5s;
  {
    captured_log text(false);
    apply_decision(t.s, up, false, t.now);
    CHECK(text.out.str() == "svc: scale up 1 -> 3: " + up.why.to_string() + "\n");
  }
  captured_log json(true);
  apply_decision(t.s, decision{1, direction::down, {}}, true, t.now);
  std::string line = json.out.str();
  line.pop_back();  // the newline
  auto d = members_of(line);
  CHECK(std::string(d["msg"].GetString()) == "scale down");
  CHECK(std::string(d["service"].GetString()) == "svc");
  CHECK(d["from"].GetUint() == 3);
  CHECK(d["to"].GetUint() == 1);
  CHECK(std::string(d["reason"].GetString()) == "set by an operator");
  CHECK(std::string(d["reason_kind"].GetString()) == "manual");
  CHECK(d["manual"].GetBool());
  // The surplus replica leaves: a container event with its name as a field.
  json.out.str("");
  t.ready("c1", 2);
  t.step(pool_figures{});
  line = json.out.str();
  REQUIRE(line.find('\n') != std::string::npos);
  d = members_of(line.substr(0, line.find('\n')));
  CHECK(std::string(d["msg"].GetString()) == "container draining");
  CHECK(std::string(d["service"].GetString()) == "svc");
  CHECK(d["container"].IsString());
}
