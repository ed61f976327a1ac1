// Function containers with the init program (see container.hpp).
#include "functions/container.hpp"

#include <spdlog/spdlog.h>

#include "detail/call_env.hpp"
#include "dockerapi/tar_writer.hpp"
#include "scaler/container_spec.hpp"
#include "scaler/docker_runtime.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::functions {

namespace {

const std::string& init_archive() {
  static const std::string tar = [] {
    dockerapi::tar_writer w;
    w.add_file(std::string(init_path).substr(1), init_program(), 0755);
    return w.finish();
  }();
  return tar;
}

}  // namespace

dockerapi::container_spec function_container_spec(const config::service_config& svc,
                                                  const std::string& network,
                                                  const std::string& hash,
                                                  const std::string& name) {
  auto spec = scaler::base_container_spec(svc, network, hash, name);
  // Blocked on stdin until a call attaches; stdin closes when that call's
  // does. A hot container's stays open across attaches: call after call,
  // and a restarted daemon attaches again.
  spec.open_stdin = true;
  spec.stdin_once = !svc.hot();
  spec.attach_stdin = spec.attach_stdout = spec.attach_stderr = true;
  spec.env["APP_NAME"] = svc.app;
  spec.env["ROUTE"] = function_route(svc);
  return spec;
}

created_container create_function_container(dockerapi::client& docker,
                                            const config::service_config& svc,
                                            const std::string& network, const std::string& hash,
                                            const std::string& name,
                                            const std::map<std::string, std::string>* env,
                                            bool per_call) {
  auto spec = function_container_spec(svc, network, hash, name);
  if (env) spec.env = *env;
  if (per_call) spec.labels[scaler::label_role] = "call";
  created_container out;
  // A hot function never exits between calls: no exit to report, no init.
  if (!svc.security.read_only && !svc.hot()) {
    // The image's own command, behind the init.
    const auto image = docker.inspect_image(svc.image);
    std::vector<std::string> command = image.entrypoint.value_or(std::vector<std::string>{});
    if (image.cmd) command.insert(command.end(), image.cmd->begin(), image.cmd->end());
    if (!command.empty()) {
      out.init = true;
      spec.entrypoint = std::vector<std::string>{init_path};
      std::vector<std::string> args{"--"};
      args.insert(args.end(), command.begin(), command.end());
      spec.cmd = std::move(args);
      spec.labels[label_init] = label_init_stdin_token;
    }
  }
  out.id = docker.create_container(spec).id;
  if (out.init)
    scaler::or_remove(docker, out.id, [&] { docker.put_archive(out.id, "/", init_archive()); });
  return out;
}

void remove_function_container(dockerapi::client& docker, const std::string& id,
                               const std::function<void()>& on_docker_error) {
  try {
    docker.remove_container(id, true);  // kills it if running
  } catch (const dockerapi::error& e) {
    // Gone already, or a removal already in progress: either way it goes.
    if (e.code() != dockerapi::errc::not_found && e.code() != dockerapi::errc::conflict) {
      if (on_docker_error) on_docker_error();
      spdlog::warn("cannot remove function container {}: {}", id.substr(0, 12), e.what());
    }
  }
}

std::string function_runtime::start(const config::service_config& svc, const std::string& hash,
                                    const std::string& name) {
  if (svc.mode != config::service_mode::stdio) return inner_.start(svc, hash, name);
  const auto made =
      create_function_container(docker_, svc, inner_.network(), hash, name, nullptr, false);
  scaler::or_remove(docker_, made.id, [&] { docker_.start_container(made.id); });
  return made.id;
}

}  // namespace dockscaler::functions
