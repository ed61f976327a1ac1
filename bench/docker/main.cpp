// bench/docker: the dockerapi side of bench/docker/run. Each mode does one
// measured loop and prints "<seconds> <iterations>" so the script can put it
// side by side with curl and the docker CLI.
//   dockscaler-bench-docker prepare <tag> <echo-binary>   build the scratch echo image
//   dockscaler-bench-docker list <n>                       n x GET /containers/json?all=1
//   dockscaler-bench-docker lifecycle <n> <image>          n x create+start+wait+remove
//   dockscaler-bench-docker lifecycle-overlap <n> <image>  the same, removes overlapped
//   dockscaler-bench-docker remove-image <tag>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "dockerapi/client.hpp"
#include "dockerapi/tar_writer.hpp"

namespace api = dockscaler::dockerapi;
using clock_type = std::chrono::steady_clock;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: dockscaler-bench-docker prepare <tag> <echo-binary> | list <n> | "
               "lifecycle <n> <image> | lifecycle-overlap <n> <image> | remove-image <tag>\n");
  return 2;
}

// The value of the "dockscaler.bench" label on everything this run creates:
// the script's run id (BENCH_RUN_ID), so its clean-up finds what a failed run
// left behind and touches nothing of another run's.
std::string run_label() {
  const char* id = std::getenv("BENCH_RUN_ID");
  return id && *id ? id : "docker";
}

void report(clock_type::time_point start, int n) {
  double s = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("%.6f %d\n", s, n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string mode = argv[1];
  try {
    api::client docker;
    if (mode == "prepare" && argc == 4) {
      std::ifstream f(argv[3], std::ios::binary);
      if (!f) throw std::runtime_error(std::string("cannot read ") + argv[3]);
      std::stringstream bin;
      bin << f.rdbuf();
      api::tar_writer w;
      w.add_file("Dockerfile", "FROM scratch\nCOPY echo /echo\nENTRYPOINT [\"/echo\"]\n");
      w.add_file("echo", bin.str(), 0755);
      api::build_options b;
      b.tags = {argv[2]};
      b.labels = {{"dockscaler.bench", run_label()}};
      std::printf("%s\n", docker.build_image(w.finish(), b).c_str());
      return 0;
    }
    if (mode == "remove-image") {
      docker.remove_image(argv[2], true);
      return 0;
    }
    if (mode == "list" && argc == 3) {
      int n = std::atoi(argv[2]);
      api::list_containers_options lo;
      lo.all = true;
      docker.api_version();  // negotiation is part of every tool's first request; keep it out of
                             // the loop
      std::size_t seen = 0;
      auto start = clock_type::now();
      for (int i = 0; i < n; ++i) seen += docker.list_containers(lo).size();
      report(start, n);
      std::fprintf(stderr, "containers listed per call: %zu\n", n ? seen / n : 0);
      return 0;
    }
    if (mode == "lifecycle" && argc == 4) {
      int n = std::atoi(argv[2]);
      api::container_spec spec;
      spec.image = argv[3];
      spec.network = "none";
      spec.labels = {{"dockscaler.bench", run_label()}};
      auto start = clock_type::now();
      for (int i = 0; i < n; ++i) {
        auto c = docker.create_container(spec);
        docker.start_container(c.id);
        auto w = docker.wait_container(c.id);
        if (w.exit_code != 0)
          throw std::runtime_error("echo exited with " + std::to_string(w.exit_code));
        docker.remove_container(c.id);
      }
      report(start, n);
      return 0;
    }
    if (mode == "lifecycle-overlap" && argc == 4) {
      // Same work, but each remove runs on a second thread (and connection)
      // while the next container is created and started, as a scaler would.
      int n = std::atoi(argv[2]);
      api::container_spec spec;
      spec.image = argv[3];
      spec.network = "none";
      spec.labels = {{"dockscaler.bench", run_label()}};
      std::mutex mu;
      std::condition_variable cv;
      std::deque<std::string> to_remove;
      bool done = false;
      std::exception_ptr failed;
      auto start = clock_type::now();
      std::thread remover([&] {
        for (;;) {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return done || !to_remove.empty(); });
          if (to_remove.empty()) return;
          std::string id = std::move(to_remove.front());
          to_remove.pop_front();
          lk.unlock();
          try {
            docker.remove_container(id);
          } catch (...) {
            failed = std::current_exception();
          }
        }
      });
      for (int i = 0; i < n; ++i) {
        auto c = docker.create_container(spec);
        docker.start_container(c.id);
        auto w = docker.wait_container(c.id);
        if (w.exit_code != 0)
          throw std::runtime_error("echo exited with " + std::to_string(w.exit_code));
        std::lock_guard lk(mu);
        to_remove.push_back(c.id);
        cv.notify_one();
      }
      {
        std::lock_guard lk(mu);
        done = true;
      }
      cv.notify_one();
      remover.join();
      report(start, n);
      if (failed) std::rethrow_exception(failed);
      return 0;
    }
    return usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dockscaler-bench-docker: %s\n", e.what());
    return 1;
  }
}
