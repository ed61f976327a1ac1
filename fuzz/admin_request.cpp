// Fuzz harness: the admin API's request handling, from the bytes on the
// admin socket to the response. The input is one raw HTTP request: it goes
// through the admin server's request rules (admin::detail::parse_request, on
// Beast's parser, with a 1 MiB body limit), and a request they accept through
// admin::handle against a fake daemon with one service. handle() must never
// throw and must answer a known status.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "admin/api.hpp"
#include "admin/detail/request_parse.hpp"

namespace {

using namespace dockscaler;

// The daemon behind the API: one service "hello" (1..5 replicas); reload
// refuses every other call, so both outcomes are reached.
class fake_daemon final : public admin::control {
 public:
  admin::daemon_info info() override { return {"0.0.0-fuzz", "1.43", "unix:///fuzz.sock", {}, {}}; }
  std::vector<scaler::service_status> status() override {
    scaler::service_status s;
    s.name = "hello";
    s.desired = s.ready = 1;
    s.min = 1;
    s.max = 5;
    s.replicas.resize(1);
    s.replicas[0].id = "0123456789ab";
    return {s};
  }
  void set_replicas(const std::string& service, unsigned n, std::chrono::milliseconds) override {
    known(service);
    if (n > 5) throw std::invalid_argument("at most 5 replicas");
  }
  void set_autoscale(const std::string& service, bool) override { known(service); }
  std::string reload() override {
    if (++reloads_ % 2 == 0) throw admin::rejected("fuzz.yaml:1:1: bad");
    return "reloaded";
  }
  std::string metrics_text() override { return "# fuzz\n"; }
  const admin::history& scale_history() override { return history_; }

 private:
  static void known(const std::string& service) {
    if (service != "hello") throw std::out_of_range("no service " + service);
  }
  unsigned reloads_ = 0;
  admin::history history_;  // empty: GET /v1/events answers [] (and a follow, no body)
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fake_daemon daemon;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  admin::http_request req;
  bool keep_alive = false;
  if (admin::detail::parse_request(in, 1024 * 1024, req, keep_alive) != 0) return 0;
  for (bool metrics_only : {false, true}) {
    const auto res = admin::handle(req, daemon, metrics_only);
    if (res.status < 200 || res.status > 599) std::abort();
  }
  return 0;
}
