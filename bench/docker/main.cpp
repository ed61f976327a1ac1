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

// One container's whole life: create, start, wait for its exit, and (unless
// the caller removes it elsewhere) remove.
std::string run_once(api::client& docker, const api::container_spec& spec, bool remove) {
  auto c = docker.create_container(spec);
  docker.start_container(c.id);
  auto w = docker.wait_container(c.id);
  if (w.exit_code != 0) throw std::runtime_error("echo exited with " + std::to_string(w.exit_code));
  if (remove) docker.remove_container(c.id);
  return c.id;
}

api::container_spec echo_spec(const char* image) {
  api::container_spec spec;
  spec.image = image;
  spec.network = "none";
  spec.labels = {{"dockscaler.bench", run_label()}};
  return spec;
}

int prepare(api::client& docker, const char* tag, const char* binary) {
  std::ifstream f(binary, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("cannot read ") + binary);
  std::stringstream bin;
  bin << f.rdbuf();
  api::tar_writer w;
  w.add_file("Dockerfile", "FROM scratch\nCOPY echo /echo\nENTRYPOINT [\"/echo\"]\n");
  w.add_file("echo", bin.str(), 0755);
  api::build_options b;
  b.tags = {tag};
  b.labels = {{"dockscaler.bench", run_label()}};
  std::printf("%s\n", docker.build_image(w.finish(), b).c_str());
  return 0;
}

int list(api::client& docker, int n) {
  api::list_containers_options lo;
  lo.all = true;
  // Negotiation is part of every tool's first request; keep it out of the loop.
  docker.api_version();
  std::size_t seen = 0;
  auto start = clock_type::now();
  for (int i = 0; i < n; ++i) seen += docker.list_containers(lo).size();
  report(start, n);
  std::fprintf(stderr, "containers listed per call: %zu\n", n ? seen / n : 0);
  return 0;
}

int lifecycle(api::client& docker, int n, const char* image) {
  const auto spec = echo_spec(image);
  auto start = clock_type::now();
  for (int i = 0; i < n; ++i) run_once(docker, spec, true);
  report(start, n);
  return 0;
}

// Same work, but each remove runs on a second thread (and connection) while
// the next container is created and started, as a scaler would.
int lifecycle_overlap(api::client& docker, int n, const char* image) {
  const auto spec = echo_spec(image);
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
    auto id = run_once(docker, spec, false);
    std::lock_guard lk(mu);
    to_remove.push_back(std::move(id));
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string mode = argv[1];
  try {
    api::client docker;
    if (mode == "prepare" && argc == 4) return prepare(docker, argv[2], argv[3]);
    if (mode == "remove-image") {
      docker.remove_image(argv[2], true);
      return 0;
    }
    if (mode == "list" && argc == 3) return list(docker, std::atoi(argv[2]));
    if (mode == "lifecycle" && argc == 4) return lifecycle(docker, std::atoi(argv[2]), argv[3]);
    if (mode == "lifecycle-overlap" && argc == 4)
      return lifecycle_overlap(docker, std::atoi(argv[2]), argv[3]);
    return usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dockscaler-bench-docker: %s\n", e.what());
    return 1;
  }
}
