// dockerapi/json_mapping.cpp: see detail/json_mapping.hpp. Missing or null
// fields read as empty/zero (the daemon omits many); a reply that is not JSON
// of the expected shape is a protocol error.
#include "detail/json_mapping.hpp"

#include <string>

#include "detail/json_util.hpp"
#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi::detail {

using namespace json_util;

namespace {

network_endpoint parse_endpoint(const value& v) {
  network_endpoint e;
  e.network_id = str(v, "NetworkID");
  e.endpoint_id = str(v, "EndpointID");
  e.ip_address = str(v, "IPAddress");
  e.ip_prefix_len = inum(v, "IPPrefixLen");
  e.gateway = str(v, "Gateway");
  e.mac_address = str(v, "MacAddress");
  e.aliases = strings(member(v, "Aliases"));
  return e;
}

std::map<std::string, network_endpoint> parse_networks(const value* v) {
  std::map<std::string, network_endpoint> out;
  if (v && v->IsObject())
    for (auto& m : v->GetObject())
      out.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                  parse_endpoint(m.value));
  return out;
}

network_info parse_network(const value& v) {
  network_info n;
  n.id = str(v, "Id");
  n.name = str(v, "Name");
  n.driver = str(v, "Driver");
  n.scope = str(v, "Scope");
  n.created = str(v, "Created");
  n.internal = boolean(v, "Internal");
  n.attachable = boolean(v, "Attachable");
  n.labels = string_map(member(v, "Labels"));
  if (auto* ipam = member(v, "IPAM"))
    if (auto* cfg = member(*ipam, "Config"); cfg && cfg->IsArray())
      for (auto& c : cfg->GetArray()) {
        if (auto s = str(c, "Subnet"); !s.empty()) n.subnets.push_back(s);
        if (auto g = str(c, "Gateway"); !g.empty()) n.gateways.push_back(g);
      }
  if (auto* cs = member(v, "Containers"); cs && cs->IsObject())
    for (auto& m : cs->GetObject()) {
      network_container c;
      c.name = str(m.value, "Name");
      c.endpoint_id = str(m.value, "EndpointID");
      c.mac_address = str(m.value, "MacAddress");
      c.ipv4_address = str(m.value, "IPv4Address");
      c.ipv6_address = str(m.value, "IPv6Address");
      n.containers.emplace(m.name.GetString(), std::move(c));
    }
  return n;
}

void write_ports_exposed(writer& w, const container_spec& s) {
  if (s.exposed_ports.empty() && s.published_ports.empty()) return;
  key(w, "ExposedPorts");
  w.StartObject();
  for (auto p : s.exposed_ports) empty_object(w, std::to_string(p) + "/tcp");
  for (auto& p : s.published_ports)
    empty_object(w, std::to_string(p.container_port) + "/" + p.protocol);
  w.EndObject();
}

void write_healthcheck(writer& w, const container_spec& s) {
  if (!s.healthcheck) return;
  const auto& h = *s.healthcheck;
  key(w, "Healthcheck");
  w.StartObject();
  string_array(w, "Test", h.test);
  // The API counts these in nanoseconds; zero means "inherit from the image".
  for (auto [k, d] : {std::pair{"Interval", h.interval},
                      {"Timeout", h.timeout},
                      {"StartPeriod", h.start_period}}) {
    if (!d.count()) continue;
    key(w, k);
    w.Int64(static_cast<std::int64_t>(d.count()) * 1'000'000);
  }
  if (h.retries) {
    key(w, "Retries");
    w.Int(h.retries);
  }
  w.EndObject();
}

// The top-level Config half of the body: what runs, and how it is attached.
void write_config_fields(writer& w, const container_spec& s) {
  key(w, "Image");
  string(w, s.image);
  if (s.cmd) string_array(w, "Cmd", *s.cmd);
  if (s.entrypoint) string_array(w, "Entrypoint", *s.entrypoint);
  if (!s.env.empty()) {
    std::vector<std::string> env;
    for (auto& [k, v] : s.env) env.push_back(k + "=" + v);
    string_array(w, "Env", env);
  }
  if (!s.labels.empty()) string_object(w, "Labels", s.labels);
  write_ports_exposed(w, s);
  opt_string(w, "WorkingDir", s.working_dir);
  opt_string(w, "User", s.user);
  opt_string(w, "Hostname", s.hostname);
  opt_string(w, "StopSignal", s.stop_signal);
  if (s.stop_timeout_s) {
    key(w, "StopTimeout");
    w.Int(*s.stop_timeout_s);
  }
  write_healthcheck(w, s);
  flag(w, "Tty", s.tty);
  flag(w, "OpenStdin", s.open_stdin);
  flag(w, "StdinOnce", s.stdin_once);
  flag(w, "AttachStdin", s.attach_stdin);
  flag(w, "AttachStdout", s.attach_stdout);
  flag(w, "AttachStderr", s.attach_stderr);
}

void write_port_bindings(writer& w, const container_spec& s) {
  if (s.published_ports.empty()) return;
  key(w, "PortBindings");
  w.StartObject();
  for (auto& p : s.published_ports) {
    key(w, std::to_string(p.container_port) + "/" + p.protocol);
    w.StartArray();
    w.StartObject();
    key(w, "HostIp");
    string(w, p.host_ip);
    key(w, "HostPort");
    string(w, p.host_port ? std::to_string(p.host_port) : std::string());
    w.EndObject();
    w.EndArray();
  }
  w.EndObject();
}

// Limits, isolation and security of the container.
void write_host_limits(writer& w, const container_spec& s) {
  opt_int64(w, "Memory", s.memory_bytes);
  opt_int64(w, "NanoCpus", s.nano_cpus);
  opt_int64(w, "PidsLimit", s.pids_limit);
  opt_string(w, "NetworkMode", s.network);
  if (!s.restart.name.empty()) {
    key(w, "RestartPolicy");
    w.StartObject();
    key(w, "Name");
    string(w, s.restart.name);
    key(w, "MaximumRetryCount");
    w.Int(s.restart.maximum_retry_count);
    w.EndObject();
  }
  flag(w, "AutoRemove", s.auto_remove);
  if (s.init) flag(w, "Init", true);
  std::vector<std::string> secopt = s.security_opt;
  if (s.no_new_privileges) secopt.insert(secopt.begin(), "no-new-privileges");
  if (!secopt.empty()) string_array(w, "SecurityOpt", secopt);
  if (!s.cap_add.empty()) string_array(w, "CapAdd", s.cap_add);
  if (!s.cap_drop.empty()) string_array(w, "CapDrop", s.cap_drop);
  if (s.read_only_rootfs) flag(w, "ReadonlyRootfs", true);
  if (!s.tmpfs.empty()) string_object(w, "Tmpfs", s.tmpfs);
  if (!s.binds.empty()) string_array(w, "Binds", s.binds);
}

void write_host_config(writer& w, const container_spec& s) {
  key(w, "HostConfig");
  w.StartObject();
  write_host_limits(w, s);
  if (s.logging) {
    key(w, "LogConfig");
    w.StartObject();
    key(w, "Type");
    string(w, s.logging->type);
    string_object(w, "Config", s.logging->options);
    w.EndObject();
  }
  write_port_bindings(w, s);
  w.EndObject();
}

void write_networking(writer& w, const container_spec& s) {
  if (!s.network || s.network_aliases.empty()) return;
  key(w, "NetworkingConfig");
  w.StartObject();
  key(w, "EndpointsConfig");
  w.StartObject();
  key(w, *s.network);
  w.StartObject();
  string_array(w, "Aliases", s.network_aliases);
  w.EndObject();
  w.EndObject();
  w.EndObject();
}

}  // namespace

version_info parse_version(std::string_view json) {
  auto d = parse(json, "version");
  auto& o = object(d, "version");
  version_info v;
  v.version = str(o, "Version");
  v.api_version = str(o, "ApiVersion");
  v.min_api_version = str(o, "MinAPIVersion");
  v.os = str(o, "Os");
  v.arch = str(o, "Arch");
  v.kernel_version = str(o, "KernelVersion");
  v.git_commit = str(o, "GitCommit");
  v.go_version = str(o, "GoVersion");
  return v;
}

system_info parse_info(std::string_view json) {
  auto d = parse(json, "info");
  auto& o = object(d, "info");
  system_info i;
  i.id = str(o, "ID");
  i.name = str(o, "Name");
  i.server_version = str(o, "ServerVersion");
  i.operating_system = str(o, "OperatingSystem");
  i.kernel_version = str(o, "KernelVersion");
  i.storage_driver = str(o, "Driver");
  i.cgroup_driver = str(o, "CgroupDriver");
  i.cgroup_version = str(o, "CgroupVersion");
  i.containers = inum(o, "Containers");
  i.containers_running = inum(o, "ContainersRunning");
  i.containers_paused = inum(o, "ContainersPaused");
  i.containers_stopped = inum(o, "ContainersStopped");
  i.images = inum(o, "Images");
  i.ncpu = inum(o, "NCPU");
  i.mem_total = num(o, "MemTotal");
  return i;
}

std::vector<container_summary> parse_container_list(std::string_view json) {
  auto d = parse(json, "container list");
  std::vector<container_summary> out;
  for (auto& c : array(d, "container list").GetArray()) {
    if (!c.IsObject()) wrong_shape("container list", "an array of objects");
    container_summary s;
    s.id = str(c, "Id");
    s.names = strings(member(c, "Names"));
    s.image = str(c, "Image");
    s.image_id = str(c, "ImageID");
    s.command = str(c, "Command");
    s.created = num(c, "Created");
    s.state = str(c, "State");
    s.status = str(c, "Status");
    s.labels = string_map(member(c, "Labels"));
    if (auto* ns = member(c, "NetworkSettings"))
      s.networks = parse_networks(member(*ns, "Networks"));
    out.push_back(std::move(s));
  }
  return out;
}

container_info parse_container_inspect(std::string_view json) {
  auto d = parse(json, "container inspect");
  auto& o = object(d, "container inspect");
  container_info c;
  c.id = str(o, "Id");
  c.name = str(o, "Name");
  c.image = str(o, "Image");
  c.created = str(o, "Created");
  c.restart_count = inum(o, "RestartCount");
  if (auto* s = member(o, "State")) {
    auto& st = c.state;
    st.status = str(*s, "Status");
    st.running = boolean(*s, "Running");
    st.paused = boolean(*s, "Paused");
    st.restarting = boolean(*s, "Restarting");
    st.oom_killed = boolean(*s, "OOMKilled");
    st.dead = boolean(*s, "Dead");
    st.pid = inum(*s, "Pid");
    st.exit_code = inum(*s, "ExitCode");
    st.error = str(*s, "Error");
    st.started_at = str(*s, "StartedAt");
    st.finished_at = str(*s, "FinishedAt");
    if (auto* h = member(*s, "Health"))
      st.health = health_state{str(*h, "Status"), inum(*h, "FailingStreak")};
  }
  if (auto* cfg = member(o, "Config")) {
    c.image_name = str(*cfg, "Image");
    c.tty = boolean(*cfg, "Tty");
    c.open_stdin = boolean(*cfg, "OpenStdin");
    c.labels = string_map(member(*cfg, "Labels"));
    c.env = strings(member(*cfg, "Env"));
  }
  if (auto* ns = member(o, "NetworkSettings")) c.networks = parse_networks(member(*ns, "Networks"));
  if (auto* host = member(o, "HostConfig"))
    if (auto* lc = member(*host, "LogConfig"))
      c.logging = {str(*lc, "Type"), string_map(member(*lc, "Config"))};
  return c;
}

create_result parse_create_result(std::string_view json) {
  auto d = parse(json, "container create");
  auto& o = object(d, "container create");
  create_result r{str(o, "Id"), strings(member(o, "Warnings"))};
  if (r.id.empty()) wrong_shape("container create", "an Id");
  return r;
}

wait_result parse_wait_result(std::string_view json) {
  auto d = parse(json, "container wait");
  auto& o = object(d, "container wait");
  if (!member(o, "StatusCode")) wrong_shape("container wait", "a StatusCode");
  wait_result r;
  r.exit_code = inum(o, "StatusCode");
  if (auto* e = member(o, "Error")) r.error = str(*e, "Message");
  return r;
}

image_info parse_image_inspect(std::string_view json) {
  auto d = parse(json, "image inspect");
  auto& o = object(d, "image inspect");
  image_info i;
  i.id = str(o, "Id");
  i.created = str(o, "Created");
  i.architecture = str(o, "Architecture");
  i.os = str(o, "Os");
  i.author = str(o, "Author");
  i.repo_tags = strings(member(o, "RepoTags"));
  i.repo_digests = strings(member(o, "RepoDigests"));
  i.size = num(o, "Size");
  if (auto* cfg = member(o, "Config")) {
    i.labels = string_map(member(*cfg, "Labels"));
    i.cmd = opt_strings(member(*cfg, "Cmd"));
    i.entrypoint = opt_strings(member(*cfg, "Entrypoint"));
  }
  return i;
}

std::vector<image_summary> parse_image_list(std::string_view json) {
  auto d = parse(json, "image list");
  std::vector<image_summary> out;
  for (auto& v : array(d, "image list").GetArray()) {
    if (!v.IsObject()) wrong_shape("image list", "an array of objects");
    image_summary s;
    s.id = str(v, "Id");
    s.repo_tags = strings(member(v, "RepoTags"));
    s.size = num(v, "Size");
    s.created = num(v, "Created");
    s.labels = string_map(member(v, "Labels"));
    out.push_back(std::move(s));
  }
  return out;
}

network_info parse_network_inspect(std::string_view json) {
  auto d = parse(json, "network inspect");
  return parse_network(object(d, "network inspect"));
}

std::vector<network_info> parse_network_list(std::string_view json) {
  auto d = parse(json, "network list");
  std::vector<network_info> out;
  for (auto& v : array(d, "network list").GetArray()) {
    if (!v.IsObject()) wrong_shape("network list", "an array of objects");
    out.push_back(parse_network(v));
  }
  return out;
}

std::string parse_id(std::string_view json) {
  auto d = parse(json, "create");
  auto id = str(object(d, "create"), "Id");
  if (id.empty()) wrong_shape("create", "an Id");
  return id;
}

event parse_event(std::string_view line) {
  auto d = parse(line, "event");
  auto& o = object(d, "event");
  event e;
  e.type = str(o, "Type");
  e.action = str(o, "Action");
  if (auto* a = member(o, "Actor")) {
    e.actor_id = str(*a, "ID");
    e.attributes = string_map(member(*a, "Attributes"));
  }
  e.scope = str(o, "scope");
  e.time_nano = num(o, "timeNano");
  if (e.time_nano == 0) e.time_nano = num(o, "time") * 1'000'000'000;
  return e;
}

progress_message parse_progress(std::string_view line, std::string* aux_id) {
  auto d = parse(line, "progress");
  auto& o = object(d, "progress");
  std::string err;
  if (auto* ed = member(o, "errorDetail")) err = str(*ed, "message");
  if (err.empty()) err = str(o, "error");
  if (!err.empty() || member(o, "error"))
    throw error(errc::server_error, "dockerapi: daemon reported: " + err, 200, err);
  progress_message p;
  p.id = str(o, "id");
  p.status = str(o, "status");
  p.progress = str(o, "progress");
  p.stream = str(o, "stream");
  if (aux_id)
    if (auto* aux = member(o, "aux"))
      if (auto id = str(*aux, "ID"); !id.empty()) *aux_id = id;
  return p;
}

std::string daemon_message(std::string_view body) {
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  if (!d.HasParseError() && d.IsObject()) {
    if (auto m = str(d, "message"); !m.empty()) return m;
  }
  auto b = body.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = body.find_last_not_of(" \t\r\n");
  std::string s(body.substr(b, e - b + 1));
  if (s.size() > 1024) s.resize(1024);
  return s;
}

std::string container_create_body(const container_spec& s) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  write_config_fields(w, s);
  write_host_config(w, s);
  write_networking(w, s);
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string network_create_body(const network_spec& s) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  key(w, "Name");
  string(w, s.name);
  key(w, "Driver");
  string(w, s.driver);
  key(w, "CheckDuplicate");
  w.Bool(s.check_duplicate);
  key(w, "Internal");
  w.Bool(s.internal);
  key(w, "Attachable");
  w.Bool(s.attachable);
  if (!s.labels.empty()) string_object(w, "Labels", s.labels);
  if (s.subnet || s.gateway) {
    key(w, "IPAM");
    w.StartObject();
    key(w, "Config");
    w.StartArray();
    w.StartObject();
    if (s.subnet) {
      key(w, "Subnet");
      string(w, *s.subnet);
    }
    if (s.gateway) {
      key(w, "Gateway");
      string(w, *s.gateway);
    }
    w.EndObject();
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string network_connect_body(const std::string& container,
                                 const std::vector<std::string>& aliases) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  key(w, "Container");
  string(w, container);
  if (!aliases.empty()) {
    key(w, "EndpointConfig");
    w.StartObject();
    string_array(w, "Aliases", aliases);
    w.EndObject();
  }
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string network_disconnect_body(const std::string& container, bool force) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  key(w, "Container");
  string(w, container);
  key(w, "Force");
  w.Bool(force);
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

}  // namespace dockscaler::dockerapi::detail
