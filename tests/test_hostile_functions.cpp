// Hostile stdio functions on the real engine (tests/hostile_fn.cpp in a FROM
// scratch image, behind `dockscaler serve`): one that floods stdout or stderr
// past its timeout, one that writes more than max_output_bytes, and one that
// hunts for the init's token to forge a successful exit. Each runs cold and
// pre-warmed; the caller must get the true answer in time, and the container
// must be gone afterwards.
#include <catch2/catch.hpp>

#include "test_functions_support.hpp"

using namespace dockscaler::test;

namespace {

const std::string& hostile_image(api::client& docker) {
  static const std::string tag = "dockscaler-test-hostile-fn:" + run_id();
  build_image_once(docker, tag,
                   [] { return scratch_context(DOCKSCALER_HOSTILE_FN_BIN, "hostile"); });
  return tag;
}

const std::string pool1 = "    prewarm: true\n    replicas: { min: 1, max: 1, initial: 1 }\n";

// Calls service `s` ("warm..." once its pool container runs) and checks that
// the call's container goes afterwards (a pool refills with a new one).
response call_once(fn_fixture& f, const std::string& s, const std::string& body = "go") {
  const bool warm = s.rfind("warm", 0) == 0;
  if (warm) REQUIRE(eventually([&] { return f.containers(false, s).size() == 1; }, 30s));
  const auto before = f.containers(true, s);
  auto r = post_answer(f.port, f.url(s), body);
  CHECK(eventually(
      [&] {
        for (const auto& id : f.containers(true, s))
          if (!warm || std::count(before.begin(), before.end(), id)) return false;
        return true;
      },
      20s));
  return r;
}

}  // namespace

TEST_CASE("a function flooding its output gets 504 at its timeout, and its container goes",
          "[hostile][functions][docker]") {
  fn_fixture f("flood");
  // Under max_output_bytes until the timeout: the timeout is what ends these.
  const std::string out =
      "    timeout: 2s\n    max_output_bytes: 64m\n"
      "    env: { FLOOD: stdout, FLOOD_PAUSE_MS: \"40\" }\n";
  const std::string err = "    timeout: 2s\n    env: { FLOOD: stderr }\n";
  f.start({{"cold", out}, {"warm", out + pool1}, {"coldstderr", err}, {"warmstderr", err + pool1}},
          hostile_image(f.docker));
  for (const std::string s : {"cold", "warm", "coldstderr", "warmstderr"}) {
    INFO(s);
    const auto r = call_once(f, s);
    CHECK(r.status == 504);
    CHECK(r.took >= 2s);  // the 2 s timeout really waited; the log below says it answered
    CHECK(r.took <
          30s);  // a far deadline: it did not hang (how soon after 2 s is a figure, not asserted)
  }
  CHECK(f.daemon->log().find("timed out after 2s: answered 504") != std::string::npos);
}

TEST_CASE("a function writing more than max_output_bytes gets 502 and its container goes",
          "[hostile][functions][docker]") {
  fn_fixture f("big");
  const std::string big = "    max_output_bytes: 1m\n    env: { FLOOD: stdout }\n";
  f.start({{"cold", big}, {"warm", big + pool1}}, hostile_image(f.docker));
  for (const std::string s : {"cold", "warm"}) {
    INFO(s);
    const auto r = call_once(f, s);
    CHECK(r.status == 502);
    CHECK(r.body.find("wrote more output than allowed") != std::string::npos);
    CHECK(r.took < 30s);  // a far deadline; the status and the log say the limit answered
  }
  CHECK(
      f.daemon->log().find("more than max_output_bytes (1048576 bytes) to stdout: answered 502") !=
      std::string::npos);
}

TEST_CASE("a function cannot forge its exit: the token is nowhere it can read",
          "[hostile][functions][docker]") {
  fn_fixture f("forge");
  const std::string forge = "    env: { FORGE: \"1\" }\n";
  f.start({{"cold", forge}, {"warm", forge + pool1}}, hostile_image(f.docker));
  for (const std::string s : {"cold", "warm"}) {
    INFO(s);
    const auto r = call_once(f, s, "let me out");
    INFO(r.body);
    CHECK(r.status == 502);  // its real exit, never a forged 200
    CHECK(r.body.find("exited with code 3") != std::string::npos);
  }
  // It looked everywhere and found nothing to forge with: argv and the
  // environment hold no token, the init's memory and stdin are closed to it.
  CHECK(eventually(
      [&] {
        const auto log = f.daemon->log();
        std::size_t n = 0;
        for (auto at = log.find("hostile: 0 token candidates"); at != std::string::npos;
             at = log.find("hostile: 0 token candidates", at + 1))
          ++n;
        return n == 2;
      },
      10s));
  const auto log = f.daemon->log();
  INFO(log);
  CHECK(log.find("/proc/1/mem: read") == std::string::npos);
  CHECK(log.find("/proc/1/environ: read") == std::string::npos);
  CHECK(log.find("/proc/1/fd/0: read") == std::string::npos);
}
