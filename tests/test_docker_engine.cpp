// dockerapi against the real Docker engine (DOCKER_HOST or the default socket):
// a FROM scratch image built from examples/echo through the build API, then a
// container's whole life (create, start, inspect address, logs, attach with
// stdin, wait, remove) with its events; typed 404/409/304 errors; stop
// deadlines; networks; images; concurrency. Everything carries the label
// dockscaler.test=<run id> and is removed at the end.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "dockerapi/client.hpp"
#include "dockerapi/detail/encoding.hpp"
#include "test_docker_support.hpp"
#include "test_expect_error.hpp"

namespace api = dockscaler::dockerapi;
using dockscaler::test::eventually;
using dockscaler::test::expect_error;
using dockscaler::test::run_id;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// Built once per process, torn down at exit (also after failures).
struct engine {
  api::client docker{api::client_options::from_env()};
  std::string image = "dockscaler-test-echo:" + run_id();
  std::string network = "dockscaler-test-" + run_id();
  api::labels labels{{"dockscaler.test", run_id()}};

  engine() {
    api::build_options b;
    b.tags = {image};
    b.labels = labels;
    docker.build_image(dockscaler::test::echo_context(), b);
    api::network_spec n;
    n.name = network;
    n.labels = labels;
    docker.create_network(n);
  }
  ~engine() {
    try {
      api::list_containers_options lo;
      lo.all = true;
      lo.filters = {{"label", {dockscaler::test::label_filter()}}};
      for (auto& c : docker.list_containers(lo)) docker.remove_container(c.id, true);
      api::list_networks_options no;
      no.filters = lo.filters;
      for (auto& n : docker.list_networks(no)) docker.remove_network(n.id);
      docker.remove_image(image, true);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cleanup failed: %s\n", e.what());
    }
  }

  // An echo container on the test network; stdin open (so it runs until stdin
  // closes or it is stopped), exiting with `code`.
  api::container_spec spec(int code = 0) const {
    api::container_spec s;
    s.image = image;
    s.cmd = std::vector<std::string>{std::to_string(code)};
    s.labels = labels;
    s.network = network;
    s.open_stdin = s.stdin_once = true;
    s.attach_stdin = s.attach_stdout = s.attach_stderr = true;
    s.memory_bytes = 64 << 20;
    s.pids_limit = 16;
    s.no_new_privileges = true;
    s.cap_drop = {"ALL"};
    s.read_only_rootfs = true;
    s.tmpfs = {{"/tmp", "size=1m"}};
    s.user = "1000";
    return s;
  }
};

engine& env() {
  static engine e;
  return e;
}

// echo says "ready" after installing its SIGTERM handler; a signal sent
// earlier would be ignored (PID 1), so signal tests wait for it.
bool ready(const std::string& id) {
  return eventually(
      [&] { return env().docker.logs(id).err.find("echo: ready") != std::string::npos; });
}

}  // namespace

TEST_CASE("system calls against the engine", "[docker]") {
  auto& d = env().docker;
  d.ping();
  auto v = d.version();
  CHECK_FALSE(v.version.empty());
  CHECK(d.api_version() ==
        (api::detail::compare_api_versions(v.api_version, api::max_api_version) < 0
             ? v.api_version
             : std::string(api::max_api_version)));
  auto i = d.info();
  CHECK(i.ncpu >= 1);
  CHECK(i.server_version == v.version);
}

TEST_CASE("container lifecycle: create, start, inspect, logs, attach, wait, remove, events",
          "[docker]") {
  auto& e = env();
  auto& d = e.docker;

  // Events for our label, on a stream that drops every ~1.5 s of silence so the
  // reconnect/dedupe path runs too: each event must still arrive exactly once.
  std::mutex mu;
  std::vector<api::event> events;
  std::atomic<int> connects{0};
  api::event_options eo;
  eo.filters = {{"type", {"container"}}, {"label", {dockscaler::test::label_filter()}}};
  eo.idle_timeout = 1500ms;
  eo.backoff = [](int) { return 20ms; };
  eo.on_state = [&](const api::error* err) {
    if (!err) ++connects;
  };
  std::stop_source stop_events;
  api::client events_client(d.options());
  std::thread watcher([&] {
    events_client.events(
        eo,
        [&](const api::event& ev) {
          std::lock_guard lk(mu);
          events.push_back(ev);
        },
        stop_events.get_token());
  });
  REQUIRE(eventually([&] { return connects > 0; }));

  auto spec = e.spec(7);
  spec.name = "dockscaler-test-life-" + run_id();
  spec.logging = api::log_config{"json-file", {{"max-size", "1048576"}, {"max-file", "2"}}};
  auto created = d.create_container(spec);
  REQUIRE(created.id.size() == 64);

  // Attach before start so no output is missed.
  auto stream = d.attach(created.id);
  d.start_container(created.id);

  auto info = d.inspect_container(created.id);
  CHECK(info.name == "/" + *spec.name);
  CHECK(info.state.running);
  CHECK(info.open_stdin);
  CHECK(info.image_name == e.image);
  CHECK(info.labels.at("dockscaler.test") == run_id());
  CHECK(info.logging.type == "json-file");  // rotated, and `logs` below still reads it
  CHECK(info.logging.options ==
        std::map<std::string, std::string>{{"max-size", "1048576"}, {"max-file", "2"}});
  REQUIRE(info.networks.count(e.network) == 1);
  const std::string ip = info.networks.at(e.network).ip_address;
  CHECK(ip.find('.') != std::string::npos);
  auto net = d.inspect_network(e.network);
  REQUIRE(net.containers.count(created.id) == 1);
  CHECK(net.containers.at(created.id).ipv4_address.rfind(ip + "/", 0) == 0);

  // The program says "ready" on stderr as soon as it runs.
  CHECK(eventually(
      [&] { return d.logs(created.id).err.find("echo: ready\n") != std::string::npos; }));

  // stdin round trip through the hijacked connection, then EOF via half-close.
  stream.write_stdin("hello dockscaler\n");
  stream.write_stdin("second line\n");
  stream.close_stdin();
  auto out = stream.read_all(60s);
  CHECK(out.out == "hello dockscaler\nsecond line\n");
  CHECK(out.err.find("echo: ready\n") != std::string::npos);
  CHECK(out.err.find("echo: done\n") != std::string::npos);

  auto w = d.wait_container(created.id, api::wait_condition::not_running, 60s);
  CHECK(w.exit_code == 7);
  CHECK(w.error.empty());
  auto after = d.inspect_container(created.id);
  CHECK_FALSE(after.state.running);
  CHECK(after.state.status == "exited");
  CHECK(after.state.exit_code == 7);

  auto logs = d.logs(created.id);
  CHECK(logs.out == "hello dockscaler\nsecond line\n");
  CHECK(logs.err == "echo: ready\necho: done\n");
  // tail=1: one line, the last one logged (stdout and stderr are copied by
  // separate goroutines, so either of the last two can be last).
  api::logs_options tail;
  tail.tail = "1";
  auto last = d.logs(created.id, tail);
  CHECK(((last.out.empty() && last.err == "echo: done\n") ||
         (last.out == "second line\n" && last.err.empty())));

  d.remove_container(created.id);
  CHECK(expect_error([&] { d.inspect_container(created.id); }).code() == api::errc::not_found);

  auto actions_seen = [&] {
    std::lock_guard lk(mu);
    std::vector<std::string> a;
    for (auto& ev : events)
      if (ev.actor_id == created.id) a.push_back(ev.action);
    return a;
  };
  CHECK(eventually([&] {
    auto a = actions_seen();
    return std::find(a.begin(), a.end(), "destroy") != a.end();
  }));
  stop_events.request_stop();
  watcher.join();
  auto a = actions_seen();
  // Each lifecycle event once, in order (attach/die/... may sit in between).
  std::vector<std::string> want{"create", "attach", "start", "die", "destroy"};
  std::vector<std::string> core;
  for (auto& x : a)
    if (std::find(want.begin(), want.end(), x) != want.end()) core.push_back(x);
  CHECK(core == want);
  CHECK(connects >= 1);
}

TEST_CASE("404, 409 and 304 come back as typed errors with the daemon's message",
          "[docker][errors]") {
  auto& e = env();
  auto& d = e.docker;
  auto missing = "dockscaler-test-missing-" + run_id();
  auto nf = expect_error([&] { d.inspect_container(missing); });
  CHECK(nf.code() == api::errc::not_found);
  CHECK(nf.http_status() == 404);
  CHECK(nf.daemon_message().find(missing) != std::string::npos);
  CHECK(expect_error([&] { d.start_container(missing); }).code() == api::errc::not_found);
  api::attach_options ao;
  ao.tty = false;  // skip the inspect: the 404 must come through the hijack handshake
  auto ae = expect_error([&] { d.attach(missing, ao); });
  CHECK(ae.code() == api::errc::not_found);
  CHECK(ae.daemon_message().find(missing) != std::string::npos);
  api::logs_options lo;
  lo.tty = false;
  CHECK(expect_error([&] { d.logs(missing, lo); }).code() == api::errc::not_found);
  CHECK(expect_error([&] { d.inspect_image("dockscaler-test-no-image:" + run_id()); }).code() ==
        api::errc::not_found);
  CHECK(expect_error([&] { d.inspect_network(missing); }).code() == api::errc::not_found);
  auto bad_image = e.spec();
  bad_image.image = "dockscaler-test-no-image:" + run_id();
  CHECK(expect_error([&] { d.create_container(bad_image); }).code() == api::errc::not_found);

  auto spec = e.spec();
  spec.name = "dockscaler-test-dup-" + run_id();
  auto c = d.create_container(spec);
  auto dup = expect_error([&] { d.create_container(spec); });
  CHECK(dup.code() == api::errc::conflict);
  CHECK(dup.daemon_message().find("already in use") != std::string::npos);
  CHECK(expect_error([&] { d.kill_container(c.id); }).code() ==
        api::errc::conflict);  // not running

  d.start_container(c.id);
  REQUIRE(ready(c.id));
  CHECK(expect_error([&] { d.start_container(c.id); }).code() == api::errc::not_modified);
  CHECK(expect_error([&] { d.remove_container(c.id); }).code() == api::errc::conflict);  // running
  // A network in use: 20.10 answers 403 ("has active endpoints"), a refusal.
  auto in_use = expect_error([&] { d.remove_network(e.network); });
  CHECK(in_use.code() == api::errc::bad_request);
  CHECK(in_use.http_status() == 403);
  CHECK(in_use.daemon_message().find("active endpoints") != std::string::npos);
  d.stop_container(c.id, 10);
  CHECK(d.inspect_container(c.id).state.exit_code == 143);  // SIGTERM handled, not SIGKILLed
  CHECK(expect_error([&] { d.stop_container(c.id, 1); }).code() == api::errc::not_modified);
  d.remove_container(c.id);
}

TEST_CASE("stop's deadline covers its t; kill and force remove", "[docker]") {
  auto& e = env();
  auto& d = e.docker;
  api::client_options o = d.options();
  o.request_timeout = 1s;  // shorter than the stop below
  api::client impatient(o);
  auto spec = e.spec();
  spec.stop_signal =
      "SIGUSR1";  // ignored by PID 1 without a handler: stop must wait t, then SIGKILL
  auto c = d.create_container(spec);
  d.start_container(c.id);
  auto t0 = clock_type::now();
  impatient.stop_container(c.id, 3);
  auto took = clock_type::now() - t0;
  CHECK(took >= 2500ms);
  CHECK(d.inspect_container(c.id).state.exit_code == 137);

  auto k = d.create_container(e.spec());
  d.start_container(k.id);
  REQUIRE(ready(k.id));
  d.kill_container(k.id, "SIGTERM");
  CHECK(d.wait_container(k.id, api::wait_condition::not_running, 30s).exit_code == 143);

  auto r = d.create_container(e.spec());
  d.start_container(r.id);
  d.remove_container(r.id, true);
  CHECK(expect_error([&] { d.inspect_container(r.id); }).code() == api::errc::not_found);
  d.remove_container(c.id);
  d.remove_container(k.id);
}

TEST_CASE("wait times out on its own deadline; follow logs stop from another thread", "[docker]") {
  auto& e = env();
  auto& d = e.docker;
  auto c = d.create_container(e.spec());
  d.start_container(c.id);
  auto we = expect_error([&] { d.wait_container(c.id, api::wait_condition::not_running, 700ms); });
  CHECK(we.code() == api::errc::timeout);

  std::stop_source stop;
  std::atomic<bool> ready{false};
  std::thread t([&] {
    api::logs_options lo;
    lo.follow = true;
    d.logs(
        c.id, lo,
        [&](api::stream_kind k, std::string_view s) {
          if (k == api::stream_kind::stderr_ && s.find("ready") != std::string_view::npos)
            ready = true;
        },
        stop.get_token());
  });
  CHECK(eventually([&] { return ready.load(); }));
  auto at = clock_type::now();
  stop.request_stop();
  t.join();
  CHECK(clock_type::now() - at < 3s);
  d.remove_container(c.id, true);
}

TEST_CASE("list filters by label and status", "[docker][filters]") {
  auto& e = env();
  auto& d = e.docker;
  auto spec = e.spec();
  spec.labels["dockscaler.role"] = "listed";
  auto a = d.create_container(spec);
  auto b = d.create_container(spec);
  d.start_container(b.id);
  api::list_containers_options lo;
  lo.all = true;
  lo.filters = {{"label", {dockscaler::test::label_filter(), "dockscaler.role=listed"}}};
  auto all = d.list_containers(lo);
  CHECK(all.size() == 2);
  lo.filters["status"] = {"running"};
  auto running = d.list_containers(lo);
  REQUIRE(running.size() == 1);
  CHECK(running[0].id == b.id);
  CHECK(running[0].labels.at("dockscaler.role") == "listed");
  CHECK(running[0].networks.count(e.network) == 1);
  lo.filters["status"] = {"created"};
  auto created = d.list_containers(lo);
  REQUIRE(created.size() == 1);
  CHECK(created[0].id == a.id);
  d.remove_container(a.id, true);
  d.remove_container(b.id, true);
}

TEST_CASE("networks: create, inspect, list, connect, disconnect, remove", "[docker][networks]") {
  auto& e = env();
  auto& d = e.docker;
  api::network_spec ns;
  ns.name = "dockscaler-test-extra-" + run_id();
  ns.labels = e.labels;
  ns.internal = true;
  auto id = d.create_network(ns);
  auto n = d.inspect_network(ns.name);
  CHECK(n.id == id);
  CHECK(n.internal);
  CHECK(n.driver == "bridge");
  CHECK_FALSE(n.subnets.empty());
  CHECK(expect_error([&] { d.create_network(ns); }).code() == api::errc::conflict);
  api::list_networks_options lo;
  lo.filters = {{"label", {dockscaler::test::label_filter()}}};
  auto list = d.list_networks(lo);
  CHECK(list.size() == 2);  // the suite's network and this one

  auto c = d.create_container(e.spec());
  d.connect_network(ns.name, c.id, {"echo-alias"});
  d.start_container(c.id);
  auto info = d.inspect_container(c.id);
  REQUIRE(info.networks.count(ns.name) == 1);
  REQUIRE(info.networks.count(e.network) == 1);
  CHECK_FALSE(info.networks.at(ns.name).ip_address.empty());
  CHECK(info.networks.at(ns.name).ip_address != info.networks.at(e.network).ip_address);
  auto& aliases = info.networks.at(ns.name).aliases;
  CHECK(std::find(aliases.begin(), aliases.end(), "echo-alias") != aliases.end());
  d.disconnect_network(ns.name, c.id);
  CHECK(d.inspect_container(c.id).networks.count(ns.name) == 0);
  d.remove_container(c.id, true);
  d.remove_network(id);
  CHECK(expect_error([&] { d.inspect_network(id); }).code() == api::errc::not_found);
}

TEST_CASE("images: inspect, list, build errors, pull errors", "[docker][images]") {
  auto& e = env();
  auto& d = e.docker;
  auto img = d.inspect_image(e.image);
  CHECK(img.id.rfind("sha256:", 0) == 0);
  CHECK(img.entrypoint == std::optional<std::vector<std::string>>{{"/echo"}});
  CHECK(img.labels.at("dockscaler.test") == run_id());
  api::list_images_options lo;
  lo.filters = {{"reference", {e.image}}};
  auto list = d.list_images(lo);
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == img.id);

  // A Dockerfile error arrives inside the 200 build stream.
  dockscaler::dockerapi::tar_writer w;
  w.add_file("Dockerfile", "FROM scratch\nCOPY missing-file /x\n");
  auto be = expect_error([&] { d.build_image(w.finish()); });
  CHECK(be.code() == api::errc::server_error);
  CHECK(be.daemon_message().find("missing-file") != std::string::npos);

  // No registry answers here: the pull fails with a typed error and the
  // daemon's message (as an HTTP error or inside the stream).
  auto pe = expect_error([&] { d.pull_image("127.0.0.1:1/dockscaler/none", "latest"); });
  CHECK((pe.code() == api::errc::server_error || pe.code() == api::errc::not_found));
  CHECK_FALSE(pe.daemon_message().empty());
}

TEST_CASE("one client shared by threads", "[docker][pool]") {
  auto& d = env().docker;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  api::list_containers_options lo;
  lo.all = true;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        d.list_containers(lo);
        d.ping();
        ++ok;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(ok == 200);
}

TEST_CASE("a TTY container's logs are not multiplexed", "[docker][logs]") {
  auto& e = env();
  auto& d = e.docker;
  auto spec = e.spec();
  spec.tty = true;
  auto c = d.create_container(spec);
  d.start_container(c.id);
  std::string out;
  CHECK(eventually([&] {
    out = d.logs(c.id).out;  // the client inspects the container to learn it has a TTY
    return out.find("echo: ready") != std::string::npos;
  }));
  CHECK(out.rfind("echo: ready", 0) == 0);  // no frame header in front
  d.remove_container(c.id, true);
}

TEST_CASE("a healthcheck's state shows in inspect", "[docker]") {
  auto& e = env();
  auto& d = e.docker;
  auto spec = e.spec();
  // The echo binary with empty stdin exits 0 at once: a passing check.
  spec.healthcheck = api::healthcheck{{"CMD", "/echo", "0"}, 300ms, 5s, {}, 2};
  auto c = d.create_container(spec);
  CHECK_FALSE(d.inspect_container(c.id).state.health.has_value());  // not started: no state yet
  d.start_container(c.id);
  std::string status;
  CHECK(eventually(
      [&] {
        auto h = d.inspect_container(c.id).state.health;
        status = h ? h->status : "none";
        return status == "healthy";
      },
      60s));
  INFO("last health status: " << status);
  d.remove_container(c.id, true);
}

TEST_CASE("put_archive puts files into a created container; a read-only root filesystem refuses",
          "[docker]") {
  auto& e = env();
  auto& d = e.docker;
  auto spec = e.spec(0);
  spec.read_only_rootfs = false;
  spec.entrypoint = std::vector<std::string>{"/copied/echo"};  // exists only once the archive is in
  auto created = d.create_container(spec);
  const std::string echo_bin = dockscaler::test::read_file(DOCKSCALER_ECHO_BIN);
  REQUIRE(!echo_bin.empty());
  dockscaler::dockerapi::tar_writer w;
  w.add_directory("copied");
  w.add_file("copied/echo", echo_bin, 0755);
  const std::string tar = w.finish();
  d.put_archive(created.id, "/", tar);
  auto stream = d.attach(created.id);
  d.start_container(created.id);
  stream.write_stdin("through the copy");
  stream.close_stdin();
  const auto out = stream.read_all(20s);
  CHECK(out.out == "through the copy");
  CHECK(d.wait_container(created.id).exit_code == 0);

  auto ro = d.create_container(e.spec(0));  // read_only_rootfs
  const auto err = expect_error([&] { d.put_archive(ro.id, "/", tar); });
  CHECK(std::string(err.what()).find("read-only") != std::string::npos);
  expect_error([&] { d.put_archive("no-such-container-" + run_id(), "/", tar); });
}
