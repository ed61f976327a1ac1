// Benchmark driver for the lb proxy: one service at path prefix "/" over the
// given backends, run until SIGINT/SIGTERM. Used by bench/proxy/run.
//   dockscaler-bench-proxy --listen 127.0.0.1:PORT --threads N --concurrency C
//                          --queue-max N [--tls CERT,KEY] [--tokens FILE] [--rate RPS]
//                          [--access-log FILE] --backend HOST:PORT [--backend ...]
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pthread.h>

#include "admin/access_log.hpp"
#include "config/credential_files.hpp"
#include "lb/proxy.hpp"

namespace {

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "dockscaler-bench-proxy: %s\n"
               "usage: dockscaler-bench-proxy --listen HOST:PORT [--threads N] [--concurrency C]\n"
               "                              [--queue-max N] [--tls CERT,KEY] [--tokens FILE]\n"
               "                              [--rate RPS] [--access-log FILE]\n"
               "                              --backend HOST:PORT [--backend ...]\n",
               msg);
  std::exit(2);
}

unsigned long number(const char* flag, const char* v) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(v, &end, 10);
  if (!*v || *end) usage((std::string("bad number for ") + flag).c_str());
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  dockscaler::lb::proxy_options opts;
  dockscaler::lb::service_options svc;
  svc.name = "bench";
  svc.route.path_prefix = "/";
  std::vector<std::pair<std::string, std::uint16_t>> backends;
  std::optional<dockscaler::lb::tls_certificate> tls;
  std::string access_log_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    const char* v = argv[++i];
    if (a == "--listen") {
      opts.listen = {v};
    } else if (a == "--threads") {
      opts.threads = static_cast<unsigned>(number("--threads", v));
    } else if (a == "--concurrency") {
      svc.concurrency = static_cast<std::uint32_t>(number("--concurrency", v));
    } else if (a == "--queue-max") {
      svc.queue.max_length = number("--queue-max", v);
    } else if (a == "--tokens") {  // FILE: bearer tokens, one per line (auth on)
      std::ifstream in(v);
      if (!in) usage("--tokens: cannot read the file");
      const std::string text{std::istreambuf_iterator<char>(in), {}};
      std::vector<dockscaler::config::file_problem> problems;
      dockscaler::lb::auth_options auth;
      auth.tokens = dockscaler::config::parse_token_file(text, problems);  // as the daemon reads it
      if (!problems.empty()) usage(("--tokens: " + problems.front().message).c_str());
      svc.auth = auth;
    } else if (a == "--rate") {  // RPS: a rate limit per client address (burst = RPS)
      const auto rps = number("--rate", v);
      svc.rate_limit = dockscaler::lb::rate_limit_options{static_cast<double>(rps),
                                                          static_cast<std::uint32_t>(rps)};
    } else if (a == "--access-log") {  // FILE: the JSON access log on
      access_log_path = v;
    } else if (a == "--tls") {  // CERT.pem,KEY.pem: the listener speaks TLS
      const std::string t = v;
      const auto c = t.find(',');
      if (c == std::string::npos) usage("--tls wants CERT,KEY");
      tls = {t.substr(0, c), t.substr(c + 1)};
    } else if (a == "--backend") {
      const std::string b = v;
      const auto c = b.rfind(':');
      if (c == std::string::npos) usage("--backend wants HOST:PORT");
      backends.emplace_back(b.substr(0, c),
                            static_cast<std::uint16_t>(number("--backend", b.c_str() + c + 1)));
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (backends.empty()) usage("at least one --backend is needed");

  // Block the stop signals before any thread starts; main waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  try {
    std::unique_ptr<dockscaler::admin::access_log> access_log;
    if (!access_log_path.empty()) {
      dockscaler::admin::access_log_options lo;
      lo.path = access_log_path;
      access_log = std::make_unique<dockscaler::admin::access_log>(lo);
      opts.detailed_outcomes = true;
      opts.on_request = [log = access_log.get()](const dockscaler::lb::request_outcome& r) {
        log->record(r);
      };
    }
    if (tls) {
      opts.tls = dockscaler::lb::tls_store::load({*tls});
      for (auto& l : opts.listen) l = "https://" + l;
    }
    dockscaler::lb::proxy p(opts);
    p.add_service(svc);
    for (const auto& [host, port] : backends) p.add_backend("bench", host, port);
    p.start();
    std::printf("listening on %s\n", p.endpoints().front().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    p.stop(std::chrono::seconds(1));
    const auto s = p.snapshot("bench");
    std::fprintf(stderr,
                 "bench proxy: %llu requests, wait p50 %.6fs p99 %.6fs max %.6fs (last %.0fs), "
                 "503 full %llu timeout %llu\n",
                 static_cast<unsigned long long>(s.requests), s.wait.p50, s.wait.p99, s.wait.max,
                 std::chrono::duration<double>(svc.wait_window).count(),
                 static_cast<unsigned long long>(s.rejected_full),
                 static_cast<unsigned long long>(s.rejected_timeout));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dockscaler-bench-proxy: %s\n", e.what());
    return 1;
  }
  return 0;
}
