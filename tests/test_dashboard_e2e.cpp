// The dashboard end to end: a real daemon (hello-http on the real engine)
// with its dashboard on a free port, a token and invoke on, under load from
// client threads; the token checked over plain HTTP, then headless Chromium
// (DevTools protocol over pipes, test_browser_support.hpp) logs in with
// ?token=, and the test reads the RENDERED DOM: the service listed, its
// charts drawn with points, an invoke sent from the form and answered.
#include <catch2/catch.hpp>

#include "test_browser_support.hpp"
#include "test_daemon_support.hpp"

using namespace dockscaler::test;

namespace {

// `expression` (JavaScript) evaluated in the tab until it gives `want`.
bool page_shows(browser& b, const std::string& expression, const std::string& want,
                std::string& last, std::chrono::seconds limit = 60s) {
  return eventually([&] { return (last = b.eval(expression)) == want; }, limit);
}

}  // namespace

TEST_CASE("the dashboard under load: token, services, charts with points, an invoke answered",
          "[e2e][docker][dashboard]") {
  {
    INFO("Chromium is needed (scripts/test installs Debian's chromium: scripts/setup chromium)");
    REQUIRE_FALSE(chromium_binary().empty());
  }

  service_fixture f("dash");
  const std::uint16_t dash_port = free_port();
  daemon_process d("dash", "");
  const std::string token_file = d.dir() + "/dash.token";
  std::ofstream(token_file) << "# the dashboard's\ndash-" + run_id() + "\n";
  const std::string token = "dash-" + run_id();
  d.write_config(f.config("    concurrency: 2\n    replicas: { min: 1, max: 3 }\n",
                          "dashboard: { listen: 127.0.0.1:" + std::to_string(dash_port) +
                              ", invoke: true, token_file: dash.token }\n"));
  d.start();
  REQUIRE(f.proxy_up());
  REQUIRE(eventually([&] { return http_get(f.port, "/fn/").status == 200; }));
  load l(f.port, "/fn/work?delay=20", 2);

  // Without the token: 401, page and API; with it: 200.
  auto status_with = [&](const std::string& t, response* out = nullptr) {
    auto r =
        http_request(dash_port, "GET", "/api/status", {}, "Authorization: Bearer " + t + "\r\n");
    if (out) *out = r;
    return r.status;
  };
  CHECK(http_get(dash_port, "/").status == 401);
  CHECK(http_get(dash_port, "/api/status").status == 401);
  CHECK(status_with("wrong") == 401);
  response ok;
  CHECK(status_with(token, &ok) == 200);
  CHECK(ok.body.find("\"" + f.name + "\"") != std::string::npos);

  browser b(d.dir());
  b.open("http://127.0.0.1:" + std::to_string(dash_port) + "/?token=" + token);
  const std::string section = "document.querySelector('section[data-service=\"" + f.name + "\"]')";
  std::string last;
  CHECK(page_shows(b, section + " !== null", "true", last));
  // Every chart drawn (a uPlot canvas each) with at least 3 seconds of points.
  CHECK(page_shows(b,
                   "[..." + section +
                       ".querySelectorAll('.chart')].filter(c => c.querySelector('canvas') && "
                       "+c.dataset.points >= 3).length",
                   "4", last));
  INFO("charts with points: " << last);
  // The request rate the load makes reached the page.
  CHECK(page_shows(b,
                   "(t => /requests: [0-9.]+\\/s/.test(t) && !t.includes('requests: 0.00/s'))(" +
                       section + ".querySelector('.figures').textContent)",
                   "true", last));
  CHECK(page_shows(b, section + ".querySelectorAll('tbody tr').length >= 1", "true", last));

  // The invoke form: a POST with a body, answered by the service through the proxy.
  const std::string form = section + ".querySelector('form.invoke')";
  REQUIRE(b.eval("(() => { const f = " + form +
                 "; const set = (n, v) => { f.querySelector('[name=' + n + ']').value = v; }; "
                 "set('method', 'POST'); set('path', '/echo-me'); set('body', 'hi'); "
                 "f.querySelector('button').click(); return true; })()") == "true");
  const std::string answer = section + ".querySelector('pre.answer')";
  CHECK(page_shows(b, answer + ".dataset.status", "\"200\"", last));
  INFO("answer: " << b.eval(answer + ".textContent"));
  CHECK(b.eval(answer + ".textContent.includes(' ms')") == "true");
  CHECK(b.eval(answer + ".textContent.includes('from')") == "true");  // hello-http's greeting
  l.stop();

  // A reload (SIGHUP) reads the token file again: the new token opens it, the old one no more.
  const std::string renewed = "renewed-" + run_id();
  std::ofstream(token_file) << renewed << "\n";
  d.kill(SIGHUP);
  CHECK(eventually([&] { return status_with(renewed) == 200; }));
  CHECK(status_with(token) == 401);
  INFO("daemon log:\n" << d.log());
  CHECK(d.log().find("dashboard on http://127.0.0.1:" + std::to_string(dash_port)) !=
        std::string::npos);
}
