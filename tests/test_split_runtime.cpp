// scaler::split_runtime over two recording fakes: stdio functions go to the
// local runtime, HTTP services to the other; calls about a replica go to the
// runtime that made or listed it; list merges both; watch hears both.
#include "scaler/split_runtime.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

using namespace dockscaler;
using namespace dockscaler::scaler;
using namespace std::chrono_literals;

namespace {

// Records the calls made to it; its replicas' ids start with its tag.
struct fake_runtime : container_runtime {
  explicit fake_runtime(std::string tag) : tag(std::move(tag)) {}
  std::string tag;
  std::mutex mu;
  std::vector<std::string> calls;
  std::vector<replica_info> listed;
  std::atomic<int> watching{0};

  void note(const std::string& c) {
    std::lock_guard l(mu);
    calls.push_back(c);
  }
  void prepare() override { note("prepare"); }
  void reconfigure(const config::docker_config&) override { note("reconfigure"); }
  std::string spec_hash(const config::service_config& s) override { return tag + ":" + s.name; }
  std::string replica_name(const std::string& s) override { return tag + "-" + s; }
  std::vector<replica_info> list() override { return listed; }
  std::string start(const config::service_config& s, const std::string&,
                    const std::string&) override {
    note("start " + s.name);
    return tag + "-id-" + s.name;
  }
  std::optional<endpoint> address(const std::string& id, std::uint16_t port) override {
    note("address " + id);
    return endpoint{tag, port, {}};
  }
  void stop_and_remove(const std::string& id, std::chrono::seconds) override { note("stop " + id); }
  void watch(const std::function<void(const std::string&)>& on_gone,
             std::stop_token stop) override {
    ++watching;
    on_gone(tag + "-dead");
    while (!stop.stop_requested()) std::this_thread::sleep_for(1ms);
  }
};

config::service_config service(const std::string& name, config::service_mode mode) {
  config::service_config s;
  s.name = name;
  s.mode = mode;
  return s;
}

}  // namespace

TEST_CASE("split_runtime sends stdio functions to the local runtime and the rest to Swarm",
          "[split_runtime]") {
  fake_runtime swarm("swarm"), local("local");
  split_runtime rt(swarm, local);
  rt.prepare();
  CHECK(swarm.calls == std::vector<std::string>{"prepare"});
  CHECK(local.calls == std::vector<std::string>{"prepare"});

  const auto web = service("web", config::service_mode::http);
  const auto fn = service("fn", config::service_mode::stdio);
  CHECK(rt.spec_hash(web) == "swarm:web");
  CHECK(rt.spec_hash(fn) == "local:fn");
  CHECK(rt.start(web, "h", "n") == "swarm-id-web");
  CHECK(rt.start(fn, "h", "n") == "local-id-fn");
  CHECK(rt.address("local-id-fn", 1)->host == "local");
  CHECK(rt.address("swarm-id-web", 1)->host == "swarm");
  rt.stop_and_remove("local-id-fn", 1s);
  CHECK(local.calls.back() == "stop local-id-fn");

  // Adopted after a restart: known as local by being listed there.
  replica_info adopted;
  adopted.id = "local-old";
  local.listed = {adopted};
  replica_info task;
  task.id = "swarm-old";
  swarm.listed = {task};
  const auto all = rt.list();
  REQUIRE(all.size() == 2);
  rt.stop_and_remove("local-old", 1s);
  CHECK(local.calls.back() == "stop local-old");
  rt.stop_and_remove("swarm-old", 1s);
  CHECK(swarm.calls.back() == "stop swarm-old");
}

TEST_CASE("split_runtime watches both runtimes until stopped", "[split_runtime]") {
  fake_runtime swarm("swarm"), local("local");
  split_runtime rt(swarm, local);
  std::mutex mu;
  std::set<std::string> gone;
  std::stop_source stop;
  std::thread w([&] {
    rt.watch(
        [&](const std::string& id) {
          std::lock_guard l(mu);
          gone.insert(id);
        },
        stop.get_token());
  });
  const auto end = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    {
      std::lock_guard l(mu);
      if (gone.size() == 2 || std::chrono::steady_clock::now() > end) break;
    }
    std::this_thread::sleep_for(1ms);
  }
  stop.request_stop();
  w.join();  // returns once stopped, the local watcher's thread joined
  CHECK(gone == std::set<std::string>{"swarm-dead", "local-dead"});
  CHECK(swarm.watching == 1);
  CHECK(local.watching == 1);
}
