// Container spec and spec hash of a service (see container_spec.hpp).
#include "scaler/container_spec.hpp"

#include <cstdint>
#include <cstdio>
#include <random>

#include "scaler/runtime.hpp"

namespace dockscaler::scaler {

namespace {

// FNV-1a, 64 bit: stable across builds and machines, which std::hash is not.
struct fnv1a {
  std::uint64_t h = 1469598103934665603ull;
  void add(const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;  // field separator, so ("ab","c") != ("a","bc")
    h *= 1099511628211ull;
  }
};

}  // namespace

std::string spec_hash(const config::service_config& svc, const std::string& network) {
  fnv1a f;
  f.add("v1");
  f.add(svc.image);
  f.add(config::to_string(svc.mode));
  f.add(std::to_string(svc.port));
  f.add(network);
  for (const auto& [k, v] : svc.env) {
    f.add(k);
    f.add(v);
  }
  f.add(std::to_string(svc.resources.memory_bytes));
  f.add(std::to_string(svc.resources.cpus));
  f.add(std::to_string(svc.resources.pids));
  for (const auto& c : svc.security.cap_drop) f.add(c);
  f.add(svc.security.read_only ? "ro" : "rw");
  f.add(svc.security.user);
  // Docker cannot change a container's log driver: new rotation settings
  // reach running containers only by replacing them.
  f.add(std::to_string(svc.logs.max_size_bytes) + "/" + std::to_string(svc.logs.max_files));
  if (svc.route_shapes_container()) {
    // Its environment names its app and route.
    f.add(svc.app);
    f.add(svc.route.path_prefix);
  }
  // Only for variants, so every other service's hash stays what it was.
  if (const auto variant = svc.container_variant(); !variant.empty()) f.add(variant);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

std::string digest(const std::vector<std::string>& parts) {
  fnv1a f;
  for (const auto& p : parts) f.add(p);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

std::string random_hex(std::size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n);
  for (std::size_t i = 0; i < n; ++i) s += digits[rng() % 16];
  return s;
}

std::string container_name(const std::string& service, const std::string& kind) {
  return "dockscaler-" + service + "-" + (kind.empty() ? "" : kind + "-") + random_hex(8);
}

dockerapi::container_spec base_container_spec(const config::service_config& svc,
                                              const std::string& network, const std::string& hash,
                                              const std::string& name) {
  dockerapi::container_spec spec;
  spec.image = svc.image;
  spec.name = name;
  spec.env = svc.env;
  spec.labels = {{label_managed, "true"},
                 {label_service, svc.name},
                 {label_spec, hash},
                 {label_network, network},
                 {label_instance, svc.instance}};
  spec.network = network;
  spec.network_aliases = {svc.name};
  if (svc.resources.memory_bytes)
    spec.memory_bytes = static_cast<std::int64_t>(svc.resources.memory_bytes);
  if (svc.resources.cpus > 0) spec.nano_cpus = static_cast<std::int64_t>(svc.resources.cpus * 1e9);
  spec.pids_limit = svc.resources.pids;
  spec.no_new_privileges = true;
  spec.cap_drop = svc.security.cap_drop;
  spec.read_only_rootfs = svc.security.read_only;
  if (!svc.security.user.empty()) spec.user = svc.security.user;
  spec.logging = dockerapi::log_config{"json-file",
                                       {{"max-size", std::to_string(svc.logs.max_size_bytes)},
                                        {"max-file", std::to_string(svc.logs.max_files)}}};
  // Docker must not restart it behind our back: a dead container is ours to replace.
  spec.restart.name = "no";
  return spec;
}

dockerapi::container_spec make_container_spec(const config::service_config& svc,
                                              const std::string& network, const std::string& hash,
                                              const std::string& name) {
  auto spec = base_container_spec(svc, network, hash, name);
  spec.env["PORT"] = std::to_string(svc.port);
  spec.exposed_ports = {svc.port};
  return spec;
}

}  // namespace dockscaler::scaler
