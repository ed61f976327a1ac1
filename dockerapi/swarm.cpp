// dockerapi/swarm.cpp: the client's Swarm calls (nodes, services, tasks,
// service logs), each one HTTP call through detail::transport mapped with
// detail/swarm_mapping, plus the re-read-and-retry loop for updates.
#include <thread>

#include "detail/encoding.hpp"
#include "detail/log_stream.hpp"
#include "detail/swarm_mapping.hpp"
#include "detail/transport.hpp"
#include "dockerapi/client.hpp"

namespace dockscaler::dockerapi {

using detail::transport;
using std::chrono::milliseconds;
using params = std::vector<std::pair<std::string, std::string>>;

namespace {

// A GET of `path` with optional filters.
transport::request listing(const char* what, const char* path, const filters& f) {
  params p;
  detail::add_filters(p, f);
  transport::request r;
  r.what = what;
  r.target = path + detail::query_string(p);
  return r;
}

milliseconds update_backoff(const update_retry& retry, int attempt) {
  if (retry.backoff) return retry.backoff(attempt);
  return milliseconds(std::min<long long>(50LL << std::min(attempt - 2, 5), 1000));
}

}  // namespace

swarm_state client::swarm_info() {
  transport::request r;
  r.what = "info";
  r.target = "/info";
  return detail::parse_swarm_state(t_->perform(r).body);
}

std::vector<node_info> client::list_nodes(const filters& f) {
  auto r = listing("list nodes", "/nodes", f);
  return detail::parse_node_list(t_->perform(r).body);
}

node_info client::inspect_node(const std::string& id) {
  transport::request r;
  r.what = "inspect node";
  r.target = "/nodes/" + detail::path_arg(id, "node id");
  return detail::parse_node(t_->perform(r).body);
}

std::string client::create_service(const service_spec& spec) {
  if (spec.image.empty())
    throw error(errc::invalid_argument, "dockerapi: create service: no image");
  std::string body = detail::service_spec_body(spec);
  transport::request r;
  r.what = "create service";
  r.method = "POST";
  r.target = "/services/create";
  r.body = body;
  return detail::parse_service_create(t_->perform(r).body);
}

service_info client::inspect_service(const std::string& id) {
  transport::request r;
  r.what = "inspect service";
  r.target = "/services/" + detail::path_arg(id, "service id");
  return detail::parse_service(t_->perform(r).body);
}

std::vector<service_info> client::list_services(const filters& f) {
  auto r = listing("list services", "/services", f);
  return detail::parse_service_list(t_->perform(r).body);
}

std::vector<std::string> client::update_service(const std::string& id, std::uint64_t version,
                                                const service_spec& spec) {
  if (spec.image.empty())
    throw error(errc::invalid_argument, "dockerapi: update service: no image");
  std::string body = detail::service_spec_body(spec);
  transport::request r;
  r.what = "update service";
  r.method = "POST";
  r.target = "/services/" + detail::path_arg(id, "service id") + "/update" +
             detail::query_string({{"version", std::to_string(version)}});
  r.body = body;
  return detail::parse_warnings(t_->perform(r).body);
}

std::vector<std::string> client::update_service_with(
    const std::string& id, const std::function<void(service_spec&)>& change,
    const update_retry& retry) {
  for (int attempt = 1;; ++attempt) {
    if (attempt > 1) std::this_thread::sleep_for(update_backoff(retry, attempt));
    service_info s = inspect_service(id);
    change(s.spec);
    try {
      return update_service(s.id, s.version, s.spec);
    } catch (const error& e) {
      // Another writer (or Swarm itself, updating the service's state) moved
      // the version on since our read; anything else is the caller's to see.
      if (e.code() != errc::out_of_sequence || attempt >= retry.max_attempts) throw;
    }
  }
}

bool client::remove_service(const std::string& id) {
  transport::request r;
  r.what = "remove service";
  r.method = "DELETE";
  r.target = "/services/" + detail::path_arg(id, "service id");
  try {
    t_->perform(r);
    return true;
  } catch (const error& e) {
    // Removal is how a caller converges on "gone": already gone is success.
    if (e.code() == errc::not_found) return false;
    throw;
  }
}

std::vector<task_info> client::list_tasks(const filters& f) {
  auto r = listing("list tasks", "/tasks", f);
  return detail::parse_task_list(t_->perform(r).body);
}

void client::service_logs(const std::string& id, const logs_options& o,
                          const std::function<void(stream_kind, std::string_view)>& on_output,
                          const std::stop_token& stop) {
  transport::request r;
  r.what = "service logs";
  r.target = "/services/" + detail::path_arg(id, "service id") + "/logs";
  r.stop = stop;
  // dockscaler's services never ask for a TTY, so unset means multiplexed.
  detail::stream_logs(*t_, r, o, o.tty.value_or(false), on_output);
}

logs_result client::service_logs(const std::string& id, logs_options o) {
  o.follow = false;
  logs_result out;
  service_logs(id, o, detail::collect_into(out));
  return out;
}

}  // namespace dockscaler::dockerapi
