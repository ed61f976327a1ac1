// dockerapi/client.hpp: the Docker Engine API client. One object per daemon,
// safe to share between threads; calls block the calling thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "dockerapi/error.hpp"
#include "dockerapi/swarm_types.hpp"
#include "dockerapi/types.hpp"

namespace dockscaler::dockerapi {

namespace detail {
class transport;
class attach_connection;
}  // namespace detail

struct tls_options {
  std::string ca_file, cert_file, key_file;  // PEM files; ca_file empty = system CAs
  bool verify = true;                        // verify the daemon's certificate
};

struct client_options {
  // "unix:///path" or "tcp://host:port" (as in DOCKER_HOST).
  std::string host = "unix:///var/run/docker.sock";
  std::optional<tls_options> tls;  // tcp:// only
  // Pinned API version ("1.41"); empty = negotiate once, lazily, with /_ping.
  std::string api_version;
  std::chrono::milliseconds connect_timeout{5'000};
  // A call fails with errc::timeout when no byte moved for this long (reads
  // and streams; not the calls where the daemon works before answering:
  // create/start/stop/kill/remove/wait and network changes) ...
  std::chrono::milliseconds idle_timeout{30'000};
  // ... or when it took longer than this in total (all calls but streams and
  // wait; stop_container adds its own `t` to it).
  std::chrono::milliseconds request_timeout{120'000};
  // How many idle connections (curl handles) the client keeps for reuse.
  std::size_t max_idle_connections = 16;

  // DOCKER_HOST (default unix:///var/run/docker.sock), DOCKER_TLS_VERIFY /
  // DOCKER_TLS, DOCKER_CERT_PATH (default ~/.docker: ca.pem, cert.pem, key.pem)
  // and DOCKER_API_VERSION, with the docker CLI's meanings. Throws error(invalid_argument) for a
  // malformed DOCKER_HOST.
  static client_options from_env();
};

// The highest API version this client speaks and the lowest it accepts.
inline constexpr std::string_view max_api_version = "1.45";
inline constexpr std::string_view min_api_version = "1.40";

// A hijacked attach connection (POST /containers/{id}/attach, Upgrade: tcp).
// Move-only; closes the connection when destroyed. Not for concurrent use,
// except that a reader and a writer may run on two threads.
class attach_stream {
 public:
  attach_stream(attach_stream&&) noexcept;
  attach_stream& operator=(attach_stream&&) noexcept;
  ~attach_stream();

  // Sends bytes to the container's stdin. Throws error(protocol/timeout).
  void write_stdin(std::string_view data);
  // Half-closes the connection (shutdown SHUT_WR): the container sees EOF on
  // stdin (with stdin_once) while its output can still be read.
  void close_stdin();
  // Next piece of output, demultiplexed; std::nullopt at end of stream.
  // Throws error(timeout) when nothing arrived within `timeout` (0 = wait forever).
  std::optional<output_chunk> read(std::chrono::milliseconds timeout = std::chrono::milliseconds{
                                       0});
  // Shuts the connection down both ways, from any thread: a read or write in
  // progress on another thread fails at once, and the daemon stops writing
  // into a stream nobody reads (before a kill or removal that would otherwise
  // wait on it). The stream is unusable afterwards; destroy it.
  void abort() noexcept;
  // Reads to the end of the stream and returns everything.
  logs_result read_all(std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

 private:
  friend class client;
  explicit attach_stream(std::unique_ptr<detail::attach_connection> c);
  std::unique_ptr<detail::attach_connection> conn_;
};

struct event_options {
  dockerapi::filters filters;  // e.g. {{"type", {"container"}}, {"label", {"k=v"}}}
  // Where to start: events at or after this time (unix nanoseconds); unset = now.
  std::optional<std::int64_t> since_nano;
  // A silent connection is treated as dropped after this long (0 = never).
  std::chrono::milliseconds idle_timeout{0};
  // Delay before reconnect attempt `attempt` (1, 2, ...; reset after a successful
  // connection). Default: 100 ms doubling up to 5 s.
  std::function<std::chrono::milliseconds(int attempt)> backoff;
  // Told when the stream connects (nullptr) or drops (the error). Optional.
  std::function<void(const error* dropped)> on_state;
};

// Every call blocks its thread and throws dockerapi::error on failure. The
// client must outlive the calls (and attach_streams) in progress on it.
class client {
 public:
  // Throws error(invalid_argument) for a malformed host. Connects lazily.
  explicit client(client_options options = client_options::from_env());
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  const client_options& options() const noexcept;

  // ---- system ----
  // GET /_ping (unversioned). Throws unreachable/timeout/server_error.
  void ping();
  // The API version in use (negotiated on first use). Throws unsupported_version
  // when the daemon is older than min_api_version.
  std::string api_version();
  version_info version();
  system_info info();

  // ---- containers ---- (not_found for an unknown id, conflict as the daemon says)
  std::vector<container_summary> list_containers(const list_containers_options& opts = {});
  create_result create_container(const container_spec& spec);
  // Throws not_modified when already running.
  void start_container(const std::string& id);
  // Sends SIGTERM, then SIGKILL after timeout_s (daemon default when unset).
  // The call's deadline is timeout_s + request_timeout. not_modified when stopped.
  void stop_container(const std::string& id, std::optional<int> timeout_s = {});
  void kill_container(const std::string& id, const std::string& signal = "SIGKILL");
  void remove_container(const std::string& id, bool force = false, bool volumes = false);
  container_info inspect_container(const std::string& id);
  // Blocks until the condition holds. timeout 0 = no deadline.
  wait_result wait_container(const std::string& id,
                             wait_condition condition = wait_condition::not_running,
                             std::chrono::milliseconds timeout = std::chrono::milliseconds{0});
  // Logs so far (opts.follow is ignored), split into stdout and stderr.
  logs_result logs(const std::string& id, logs_options opts = {});
  // Streams logs to on_output until the end (or, with follow, until the
  // container stops or `stop` is requested). An error frame in the stream
  // throws error(server_error) with its text.
  void logs(const std::string& id, logs_options opts,
            const std::function<void(stream_kind, std::string_view)>& on_output,
            const std::stop_token& stop = {});
  attach_stream attach(const std::string& id, attach_options opts = {});
  // PUT /containers/{id}/archive: extracts a tar archive into the container's
  // filesystem at `path` (a directory that exists); works before the start.
  void put_archive(const std::string& id, const std::string& path, std::string_view tar);

  // ---- images ----
  image_info inspect_image(const std::string& ref);
  std::vector<image_summary> list_images(const list_images_options& opts = {});
  // POST /images/create. An error inside the progress stream throws
  // error(server_error) with the daemon's text.
  void pull_image(const std::string& image, const std::string& tag = "latest",
                  const std::function<void(const progress_message&)>& on_progress = {});
  // POST /build with a tar build context; returns the image id ("sha256:...").
  std::string build_image(std::string_view context_tar, const build_options& opts = {},
                          const std::function<void(const progress_message&)>& on_progress = {});
  void remove_image(const std::string& ref, bool force = false);

  // ---- networks ----
  // Returns the network id.
  std::string create_network(const network_spec& spec);
  network_info inspect_network(const std::string& id_or_name);
  std::vector<network_info> list_networks(const list_networks_options& opts = {});
  void remove_network(const std::string& id_or_name);
  void connect_network(const std::string& network, const std::string& container,
                       const std::vector<std::string>& aliases = {});
  void disconnect_network(const std::string& network, const std::string& container,
                          bool force = false);

  // ---- swarm ---- (every call but swarm_info needs a manager's engine:
  // not_swarm_manager on a worker, not_in_swarm outside any swarm)
  // GET /info's Swarm part; works on any engine.
  swarm_state swarm_info();
  std::vector<node_info> list_nodes(const filters& f = {});  // e.g. role, label, node.label
  node_info inspect_node(const std::string& id_or_name);
  // POST /services/create; returns the service id. conflict when the name is taken.
  std::string create_service(const service_spec& spec);
  // The spec and its Version.Index (not_found for an unknown service).
  service_info inspect_service(const std::string& id_or_name);
  std::vector<service_info> list_services(const filters& f = {});  // e.g. label, name, id
  // POST /services/{id}/update?version=N with the whole spec; returns the
  // daemon's warnings. A stale version throws out_of_sequence: prefer
  // update_service_with, which re-reads and retries.
  std::vector<std::string> update_service(const std::string& id, std::uint64_t version,
                                          const service_spec& spec);
  // Reads the service, applies `change` to its spec and updates it; when
  // another writer got in between (out_of_sequence) it reads it again and
  // re-applies `change` after retry.backoff, up to retry.max_attempts times
  // (then the out_of_sequence error is thrown). `change` may run several times.
  std::vector<std::string> update_service_with(const std::string& id,
                                               const std::function<void(service_spec&)>& change,
                                               const update_retry& retry = {});
  // DELETE /services/{id}. Returns false when it was already gone (404).
  bool remove_service(const std::string& id_or_name);
  // GET /tasks; filters: service, label, desired-state, node, name, id.
  std::vector<task_info> list_tasks(const filters& f = {});
  // Service logs, as the container logs calls (multiplexed unless opts.tty).
  logs_result service_logs(const std::string& id_or_name, logs_options opts = {});
  void service_logs(const std::string& id_or_name, const logs_options& opts,
                    const std::function<void(stream_kind, std::string_view)>& on_output,
                    const std::stop_token& stop = {});

  // ---- events ----
  // Streams events to on_event until `stop` is requested (from any thread).
  // A dropped connection is reconnected after opts.backoff, resuming with
  // since = the last timeNano seen; the boundary events are not repeated.
  // Returns normally when stopped; exceptions thrown by on_event propagate.
  void events(const event_options& opts, const std::function<void(const event&)>& on_event,
              const std::stop_token& stop);

 private:
  std::unique_ptr<detail::transport> t_;
};

}  // namespace dockscaler::dockerapi
