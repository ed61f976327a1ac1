// Function containers with the init program (see container.hpp).
#include "functions/container.hpp"

#include "dockerapi/detail/tar_writer.hpp"
#include "scaler/container_spec.hpp"
#include "scaler/docker_runtime.hpp"
#include "scaler/runtime.hpp"

namespace dockscaler::functions {

namespace {

constexpr std::string_view trailer_mark =
    "\x1e"
    "dockscaler-exit:";

const std::string& init_archive() {
  static const std::string tar = [] {
    dockerapi::detail::tar_writer w;
    w.add_file(std::string(init_path).substr(1), init_program(), 0755);
    return w.finish();
  }();
  return tar;
}

}  // namespace

created_container create_function_container(dockerapi::client& docker,
                                            const config::service_config& svc,
                                            const std::string& network, const std::string& hash,
                                            const std::string& name,
                                            const std::map<std::string, std::string>* env,
                                            bool per_call) {
  auto spec = scaler::make_container_spec(svc, network, hash, name);
  if (env) spec.env = *env;
  if (per_call) spec.labels[scaler::label_role] = "call";
  created_container out;
  if (!svc.security.read_only) {
    // The image's own command, behind the init.
    const auto image = docker.inspect_image(svc.image);
    std::vector<std::string> command = image.entrypoint.value_or(std::vector<std::string>{});
    if (image.cmd) command.insert(command.end(), image.cmd->begin(), image.cmd->end());
    if (!command.empty()) {
      out.token = scaler::random_hex(32);
      spec.entrypoint = std::vector<std::string>{init_path};
      std::vector<std::string> args{out.token, "--"};
      args.insert(args.end(), command.begin(), command.end());
      spec.cmd = std::move(args);
      spec.labels[label_exit_token] = out.token;
    }
  }
  out.id = docker.create_container(spec).id;
  if (!out.token.empty())
    scaler::or_remove(docker, out.id, [&] { docker.put_archive(out.id, "/", init_archive()); });
  return out;
}

std::string function_runtime::start(const config::service_config& svc, const std::string& network,
                                    const std::string& hash, const std::string& name) {
  if (svc.mode != config::service_mode::stdio) return inner_.start(svc, network, hash, name);
  const auto made = create_function_container(docker_, svc, network, hash, name, nullptr, false);
  scaler::or_remove(docker_, made.id, [&] { docker_.start_container(made.id); });
  return made.id;
}

std::optional<int> take_exit_trailer(std::string& out, std::string_view token) {
  if (token.empty() || out.empty() || out.back() != '\n') return std::nullopt;
  // mark + token + ':' + up to 3 digits + '\n'
  const std::size_t max_len = trailer_mark.size() + token.size() + 1 + 3 + 1;
  const std::size_t from = out.size() > max_len ? out.size() - max_len : 0;
  const auto at = out.rfind(trailer_mark, out.size() - 1);
  if (at == std::string::npos || at < from) return std::nullopt;
  std::string_view rest(out);
  rest = rest.substr(at + trailer_mark.size());
  if (rest.substr(0, token.size()) != token || rest.size() < token.size() + 3 ||
      rest[token.size()] != ':')
    return std::nullopt;
  rest = rest.substr(token.size() + 1);
  rest.remove_suffix(1);  // '\n'
  if (rest.empty() || rest.size() > 3) return std::nullopt;
  int code = 0;
  for (char c : rest) {
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + (c - '0');
  }
  out.resize(at);
  return code;
}

}  // namespace dockscaler::functions
