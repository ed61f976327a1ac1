// How a stdio function's container is made: the scaler's spec (stdin open
// once, hardened, labelled) plus the init program (functions/init) as PID 1
// in front of the image's own entrypoint and command. The init relays the
// function's stdin and stdout and ends the output with a trailer carrying the
// exit code and the call's secret token (which the runner sends first on
// stdin: functions/init/protocol.hpp), so a call is answered as soon as the
// function is done rather than when Docker has torn the container down.
// Without the init (a read-only root filesystem, where it cannot be copied
// in, or a container from elsewhere) the runner falls back to the end of the
// attach stream and Docker's exit code. A hot function's container (format:
// http, json) runs the init in its hot mode instead: no token, no trailer,
// the function's stdin and stdout pipes lent to the daemon over a Unix socket
// in a host directory of its own (label_hot_socket), so calls bypass
// Docker's attach.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "config/config.hpp"
#include "dockerapi/client.hpp"
#include "scaler/docker_runtime.hpp"

namespace dockscaler::functions {

// Marks a container whose init takes its call's token from stdin.
inline constexpr const char* label_init = "dockscaler.fn-init";
inline constexpr const char* label_init_stdin_token = "stdin-token";
// Containers made by older daemons carried their (readable) token here; one
// still in a pre-warmed pool is served as before, once.
inline constexpr const char* label_exit_token = "dockscaler.exit-token";
inline constexpr const char* init_path = "/.dockscaler-fn-init";
// A hot container's init (--hot) listens on a Unix socket in a directory of
// the host's, one per container (function_runtime's hot_dir / its name),
// mounted at hot_mount; the daemon connects to it there instead of going
// through Docker's attach. The label holds the socket's host path.
inline constexpr const char* label_hot_socket = "dockscaler.hot-socket";
inline constexpr const char* hot_mount = "/.dockscaler-hot";
inline constexpr const char* hot_socket_name = "fn.sock";

// The init program, embedded in the daemon at build time.
std::string_view init_program();

// The create request of a stdio function's container: the scaler's base spec
// (scaler/container_spec.hpp) with stdin open (once) and attached, APP_NAME
// and ROUTE set, no port — a container that waits for its one call.
dockerapi::container_spec function_container_spec(const config::service_config& svc,
                                                  const std::string& network,
                                                  const std::string& hash, const std::string& name);

struct created_container {
  std::string id;
  bool init = false;  // runs the init: the call's token goes first on stdin
};

// Creates (does not start) a container for `svc` named `name`. `env`, when
// given, replaces the configured environment (a cold call's); `per_call`
// labels it dockscaler.role=call. A hot one gets its socket directory under
// `hot_dir` (none when empty: its calls then go over Docker's attach). Throws dockerapi::error; a
// container that was created but could not be prepared is removed.
created_container create_function_container(dockerapi::client& docker,
                                            const config::service_config& svc,
                                            const std::string& network, const std::string& hash,
                                            const std::string& name,
                                            const std::map<std::string, std::string>* env,
                                            bool per_call, const std::string& hot_dir = {});

// Removes a hot container's socket directory (the parent of `socket_path`,
// the value of its label_hot_socket).
void remove_hot_dir(const std::string& socket_path);

// Removes (killing it if running) a function's container; gone already or a
// removal in progress is not an error, any other failure is logged and counted.
void remove_function_container(dockerapi::client& docker, const std::string& id,
                               const std::function<void()>& on_docker_error);

// The scaler's container runtime with stdio functions' containers made as
// above (pre-warmed ones) on the local engine, on the network `inner` puts
// replicas on; everything else is passed on to `inner`.
class function_runtime final : public scaler::container_runtime {
 public:
  // `hot_dir`: where hot containers' socket directories go (see
  // label_hot_socket); empty: none, their calls go over Docker's attach.
  function_runtime(scaler::docker_runtime& inner, dockerapi::client& docker,
                   std::string hot_dir = {})
      : inner_(inner), docker_(docker), hot_dir_(std::move(hot_dir)) {}
  // Also removes the socket directories of hot containers that are gone
  // (removed while no daemon of this instance ran, or by hand).
  void prepare() override;
  void reconfigure(const config::docker_config& docker) override { inner_.reconfigure(docker); }
  std::string spec_hash(const config::service_config& svc) override {
    return inner_.spec_hash(svc);
  }
  std::string replica_name(const std::string& service) override {
    return inner_.replica_name(service);
  }
  std::vector<scaler::replica_info> list() override { return inner_.list(); }
  std::string start(const config::service_config& svc, const std::string& hash,
                    const std::string& name) override;
  std::optional<scaler::endpoint> address(const std::string& id, std::uint16_t port) override {
    return inner_.address(id, port);
  }
  void stop_and_remove(const std::string& id, std::chrono::seconds grace) override;
  void watch(const std::function<void(const std::string& id)>& on_gone,
             std::stop_token stop) override {
    inner_.watch(on_gone, stop);
  }

 private:
  scaler::docker_runtime& inner_;
  dockerapi::client& docker_;
  const std::string hot_dir_;
};

}  // namespace dockscaler::functions
