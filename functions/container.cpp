// Function containers with the init program (see container.hpp).
#include "functions/container.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <system_error>

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

// The image's own command (entrypoint and cmd); empty when it has none.
std::vector<std::string> image_command(dockerapi::client& docker, const std::string& image) {
  const auto info = docker.inspect_image(image);
  std::vector<std::string> command = info.entrypoint.value_or(std::vector<std::string>{});
  if (info.cmd) command.insert(command.end(), info.cmd->begin(), info.cmd->end());
  return command;
}

// A hot container's socket directory, `hot_dir`/`name`, made for it; empty
// when it cannot be (the container is then served over Docker's attach).
// `hot_dir` and its parents are the daemon's alone (0700): no other host
// user reaches the socket. The container's own directory is open to any uid
// (0777) because the function's user is the image's and may not be ours;
// the daemon checks who listens before it writes a call (hot_socket.cpp).
std::string make_hot_dir(const std::string& hot_dir, const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::path(hot_dir) / name;
  fs::create_directories(hot_dir, ec);
  if (!ec) fs::permissions(hot_dir, fs::perms::owner_all, ec);
  if (!ec) fs::permissions(fs::path(hot_dir).parent_path(), fs::perms::owner_all, ec);
  if (!ec) fs::create_directory(dir, ec);
  if (!ec) fs::permissions(dir, fs::perms::all, ec);
  if (ec) {
    spdlog::warn(
        "cannot make {} for a hot container's socket ({}): its calls go over "
        "Docker's attach",
        dir.string(), ec.message());
    return {};
  }
  return dir.string();
}

// Creates the container of `spec`; with `init`, copies the init program in.
created_container finish_create(dockerapi::client& docker, const dockerapi::container_spec& spec,
                                created_container out, bool init = false) {
  try {
    out.id = docker.create_container(spec).id;
  } catch (...) {
    if (const auto it = spec.labels.find(label_hot_socket); it != spec.labels.end())
      remove_hot_dir(it->second);
    throw;
  }
  if (init)
    scaler::or_remove(docker, out.id, [&] { docker.put_archive(out.id, "/", init_archive()); });
  return out;
}

}  // namespace

void remove_hot_dir(const std::string& socket_path) {
  const std::filesystem::path p(socket_path);
  if (p.filename() != hot_socket_name) return;  // not one of ours: left alone
  std::error_code ec;
  std::filesystem::remove_all(p.parent_path(), ec);  // symlinks inside are removed, not followed
}

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
                                            bool per_call, const std::string& hot_dir) {
  auto spec = function_container_spec(svc, network, hash, name);
  if (env) spec.env = *env;
  if (per_call) spec.labels[scaler::label_role] = "call";
  created_container out;
  if (svc.security.read_only) return finish_create(docker, spec, out);  // no init copied in
  // The image's own command, behind the init.
  std::vector<std::string> command = image_command(docker, svc.image);
  if (command.empty()) return finish_create(docker, spec, out);
  std::vector<std::string> args{"--"};
  if (svc.hot()) {
    // No exit to report: the init is there for the socket, when it can have one.
    const std::string dir = hot_dir.empty() ? std::string() : make_hot_dir(hot_dir, name);
    if (dir.empty()) return finish_create(docker, spec, out);
    spec.binds.push_back(dir + ":" + hot_mount);
    spec.labels[label_hot_socket] = dir + "/" + hot_socket_name;
    args = {"--hot", std::string(hot_mount) + "/" + hot_socket_name, "--"};
  } else {
    spec.labels[label_init] = label_init_stdin_token;
  }
  out.init = !svc.hot();
  spec.entrypoint = std::vector<std::string>{init_path};
  args.insert(args.end(), command.begin(), command.end());
  spec.cmd = std::move(args);
  return finish_create(docker, spec, out, true);
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
  const auto made = create_function_container(docker_, svc, inner_.network(), hash, name, nullptr,
                                              false, hot_dir_);
  scaler::or_remove(docker_, made.id, [&] { docker_.start_container(made.id); });
  return made.id;
}

void function_runtime::prepare() {
  inner_.prepare();
  if (hot_dir_.empty()) return;
  try {
    std::set<std::string> names;
    for (const auto& r : inner_.list()) names.insert(r.name);
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(hot_dir_, ec))
      if (!names.count(e.path().filename().string())) std::filesystem::remove_all(e.path(), ec);
  } catch (const std::exception& e) {
    spdlog::warn("cannot clean up {}: {}", hot_dir_, e.what());  // left for the next start
  }
}

void function_runtime::stop_and_remove(const std::string& id, std::chrono::seconds grace) {
  std::string socket;  // a hot container's directory goes with it
  std::error_code ec;  // no hot container here at all: no inspect to find out
  if (!hot_dir_.empty() && !std::filesystem::is_empty(hot_dir_, ec) && !ec) {
    try {
      const auto info = docker_.inspect_container(id);
      if (const auto it = info.labels.find(label_hot_socket); it != info.labels.end())
        socket = it->second;
    } catch (const dockerapi::error&) {
      // Gone already: the removal below says so.
    }
  }
  inner_.stop_and_remove(id, grace);
  if (!socket.empty()) remove_hot_dir(socket);
}

}  // namespace dockscaler::functions
