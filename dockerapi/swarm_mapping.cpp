// dockerapi/swarm_mapping.cpp: see detail/swarm_mapping.hpp. The spec writer
// and reader mirror each other field by field, so that what
// inspect_service returns can be changed and sent back whole by an update.
#include "detail/swarm_mapping.hpp"

#include "detail/json_util.hpp"

namespace dockscaler::dockerapi::detail {

using namespace json_util;

namespace {

std::uint64_t unum(const value& o, const char* name) {
  return static_cast<std::uint64_t>(num(o, name));
}

std::optional<std::int64_t> opt_num(const value* o, const char* name) {
  if (!o || !member(*o, name)) return std::nullopt;
  return num(*o, name);
}

std::optional<std::string> opt_str(const value& o, const char* name) {
  if (!member(o, name)) return std::nullopt;
  return str(o, name);
}

// "10.0.1.7/24" -> "10.0.1.7": callers connect to the address, not the subnet.
std::string strip_prefix(std::string a) {
  if (auto slash = a.find('/'); slash != std::string::npos) a.resize(slash);
  return a;
}

std::vector<service_port> parse_ports(const value* v) {
  std::vector<service_port> out;
  if (v && v->IsArray())
    for (auto& p : v->GetArray()) {
      service_port s;
      s.target_port = static_cast<std::uint16_t>(num(p, "TargetPort"));
      s.published_port = static_cast<std::uint16_t>(num(p, "PublishedPort"));
      if (auto proto = str(p, "Protocol"); !proto.empty()) s.protocol = proto;
      if (auto mode = str(p, "PublishMode"); !mode.empty()) s.publish_mode = mode;
      out.push_back(std::move(s));
    }
  return out;
}

void read_container_spec(const value& c, service_spec& s) {
  s.image = str(c, "Image");
  s.command = opt_strings(member(c, "Command"));
  s.args = opt_strings(member(c, "Args"));
  for (auto& e : strings(member(c, "Env"))) {
    auto eq = e.find('=');
    s.env[e.substr(0, eq)] = eq == std::string::npos ? std::string() : e.substr(eq + 1);
  }
  s.container_labels = string_map(member(c, "Labels"));
  s.hostname = opt_str(c, "Hostname");
  s.user = opt_str(c, "User");
  s.working_dir = opt_str(c, "Dir");
  s.stop_signal = opt_str(c, "StopSignal");
  if (auto ns = opt_num(&c, "StopGracePeriod"))
    s.stop_grace_period =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(*ns));
  s.init = boolean(c, "Init");
  s.read_only = boolean(c, "ReadOnly");
  s.cap_add = strings(member(c, "CapabilityAdd"));
  s.cap_drop = strings(member(c, "CapabilityDrop"));
}

void read_task_template(const value& t, service_spec& s) {
  if (auto* c = member(t, "ContainerSpec")) read_container_spec(*c, s);
  if (auto* r = member(t, "Resources")) {
    auto* l = member(*r, "Limits");
    s.memory_bytes = opt_num(l, "MemoryBytes");
    s.nano_cpus = opt_num(l, "NanoCPUs");
    s.pids_limit = opt_num(l, "Pids");
  }
  if (auto* r = member(t, "RestartPolicy")) {
    s.restart_condition = str(*r, "Condition");
    if (auto n = opt_num(r, "MaxAttempts"); n && *n) s.restart_max_attempts = *n;
  }
  if (auto* p = member(t, "Placement")) {
    s.constraints = strings(member(*p, "Constraints"));
    if (auto* prefs = member(*p, "Preferences"); prefs && prefs->IsArray())
      for (auto& pref : prefs->GetArray())
        if (auto* spread = member(pref, "Spread"))
          s.spread_preferences.push_back(str(*spread, "SpreadDescriptor"));
    if (auto n = opt_num(p, "MaxReplicas"); n && *n) s.max_replicas_per_node = *n;
  }
  if (auto* ns = member(t, "Networks"); ns && ns->IsArray())
    for (auto& n : ns->GetArray())
      s.networks.push_back({str(n, "Target"), strings(member(n, "Aliases"))});
  if (auto* l = member(t, "LogDriver"))
    s.logging = log_config{str(*l, "Name"), string_map(member(*l, "Options"))};
  s.force_update = unum(t, "ForceUpdate");
}

service_spec read_spec(const value& v) {
  service_spec s;
  s.name = str(v, "Name");
  s.labels = string_map(member(v, "Labels"));
  if (auto* t = member(v, "TaskTemplate")) read_task_template(*t, s);
  if (auto* m = member(v, "Mode")) {
    s.global = member(*m, "Global") != nullptr;
    if (auto* r = member(*m, "Replicated")) s.replicas = unum(*r, "Replicas");
  }
  if (auto* e = member(v, "EndpointSpec")) {
    s.endpoint_mode = str(*e, "Mode");
    s.ports = parse_ports(member(*e, "Ports"));
  }
  return s;
}

service_info read_service(const value& v) {
  service_info i;
  i.id = str(v, "ID");
  if (auto* ver = member(v, "Version")) i.version = unum(*ver, "Index");
  i.created_at = str(v, "CreatedAt");
  i.updated_at = str(v, "UpdatedAt");
  if (auto* spec = member(v, "Spec")) i.spec = read_spec(*spec);
  if (auto* e = member(v, "Endpoint")) {
    i.endpoint_ports = parse_ports(member(*e, "Ports"));
    if (auto* vips = member(*e, "VirtualIPs"); vips && vips->IsArray())
      for (auto& vip : vips->GetArray()) i.virtual_ips.push_back(strip_prefix(str(vip, "Addr")));
  }
  return i;
}

node_info read_node(const value& v) {
  node_info n;
  n.id = str(v, "ID");
  if (auto* ver = member(v, "Version")) n.version = unum(*ver, "Index");
  if (auto* spec = member(v, "Spec")) {
    n.role = str(*spec, "Role");
    n.availability = str(*spec, "Availability");
    n.labels = string_map(member(*spec, "Labels"));
  }
  if (auto* d = member(v, "Description")) {
    n.hostname = str(*d, "Hostname");
    if (auto* r = member(*d, "Resources")) {
      n.nano_cpus = num(*r, "NanoCPUs");
      n.memory_bytes = num(*r, "MemoryBytes");
    }
    if (auto* e = member(*d, "Engine")) n.engine_labels = string_map(member(*e, "Labels"));
  }
  if (auto* st = member(v, "Status")) {
    n.state = str(*st, "State");
    n.message = str(*st, "Message");
    n.addr = str(*st, "Addr");
  }
  if (auto* m = member(v, "ManagerStatus")) {
    n.leader = boolean(*m, "Leader");
    n.manager_addr = str(*m, "Addr");
  }
  return n;
}

void read_task_status(const value& st, task_info& t) {
  t.state = str(st, "State");
  t.message = str(st, "Message");
  t.err = str(st, "Err");
  t.status_timestamp = str(st, "Timestamp");
  if (auto* c = member(st, "ContainerStatus")) {
    t.container_id = str(*c, "ContainerID");
    t.exit_code = inum(*c, "ExitCode");
  }
  if (auto* p = member(st, "PortStatus")) t.ports = parse_ports(member(*p, "Ports"));
}

task_info read_task(const value& v) {
  task_info t;
  t.id = str(v, "ID");
  t.service_id = str(v, "ServiceID");
  t.node_id = str(v, "NodeID");
  t.slot = inum(v, "Slot");
  t.desired_state = str(v, "DesiredState");
  t.labels = string_map(member(v, "Labels"));
  t.created_at = str(v, "CreatedAt");
  t.updated_at = str(v, "UpdatedAt");
  if (auto* spec = member(v, "Spec"))
    if (auto* c = member(*spec, "ContainerSpec"))
      t.container_labels = string_map(member(*c, "Labels"));
  if (auto* st = member(v, "Status")) read_task_status(*st, t);
  if (auto* atts = member(v, "NetworksAttachments"); atts && atts->IsArray())
    for (auto& a : atts->GetArray()) {
      task_address base;
      if (auto* n = member(a, "Network")) {
        base.network_id = str(*n, "ID");
        if (auto* ns = member(*n, "Spec")) base.network_name = str(*ns, "Name");
      }
      for (auto& addr : strings(member(a, "Addresses"))) {
        task_address ta = base;
        ta.address = strip_prefix(addr);
        t.addresses.push_back(std::move(ta));
      }
    }
  return t;
}

template <class T, class Read>
std::vector<T> read_list(std::string_view json, const char* what, Read read) {
  auto d = parse(json, what);
  std::vector<T> out;
  for (auto& v : array(d, what).GetArray()) {
    if (!v.IsObject()) wrong_shape(what, "an array of objects");
    out.push_back(read(v));
  }
  return out;
}

// ---- the spec writer --------------------------------------------------------

template <class Int>
void integer(writer& w, std::string_view k, Int v) {
  key(w, k);
  w.Int64(static_cast<std::int64_t>(v));
}

void write_container_spec(writer& w, const service_spec& s) {
  key(w, "ContainerSpec");
  w.StartObject();
  key(w, "Image");
  string(w, s.image);
  if (!s.container_labels.empty()) string_object(w, "Labels", s.container_labels);
  if (s.command) string_array(w, "Command", *s.command);
  if (s.args) string_array(w, "Args", *s.args);
  if (!s.env.empty()) {
    std::vector<std::string> env;
    for (auto& [k, v] : s.env) env.push_back(k + "=" + v);
    string_array(w, "Env", env);
  }
  opt_string(w, "Hostname", s.hostname);
  opt_string(w, "User", s.user);
  opt_string(w, "Dir", s.working_dir);
  opt_string(w, "StopSignal", s.stop_signal);
  if (s.stop_grace_period)
    integer(w, "StopGracePeriod",
            std::chrono::duration_cast<std::chrono::nanoseconds>(*s.stop_grace_period).count());
  if (s.init) flag(w, "Init", true);
  if (s.read_only) flag(w, "ReadOnly", true);
  if (!s.cap_add.empty()) string_array(w, "CapabilityAdd", s.cap_add);
  if (!s.cap_drop.empty()) string_array(w, "CapabilityDrop", s.cap_drop);
  w.EndObject();
}

void write_resources_and_restart(writer& w, const service_spec& s) {
  if (s.memory_bytes || s.nano_cpus || s.pids_limit) {
    key(w, "Resources");
    w.StartObject();
    key(w, "Limits");
    w.StartObject();
    opt_int64(w, "NanoCPUs", s.nano_cpus);
    opt_int64(w, "MemoryBytes", s.memory_bytes);
    opt_int64(w, "Pids", s.pids_limit);
    w.EndObject();
    w.EndObject();
  }
  if (!s.restart_condition.empty() || s.restart_max_attempts) {
    key(w, "RestartPolicy");
    w.StartObject();
    if (!s.restart_condition.empty()) {
      key(w, "Condition");
      string(w, s.restart_condition);
    }
    opt_int64(w, "MaxAttempts", s.restart_max_attempts);
    w.EndObject();
  }
}

void write_placement(writer& w, const service_spec& s) {
  if (s.constraints.empty() && s.spread_preferences.empty() && !s.max_replicas_per_node) return;
  key(w, "Placement");
  w.StartObject();
  if (!s.constraints.empty()) string_array(w, "Constraints", s.constraints);
  if (!s.spread_preferences.empty()) {
    key(w, "Preferences");
    w.StartArray();
    for (auto& d : s.spread_preferences) {
      w.StartObject();
      key(w, "Spread");
      w.StartObject();
      key(w, "SpreadDescriptor");
      string(w, d);
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
  }
  opt_int64(w, "MaxReplicas", s.max_replicas_per_node);
  w.EndObject();
}

void write_networks_and_logging(writer& w, const service_spec& s) {
  if (!s.networks.empty()) {
    key(w, "Networks");
    w.StartArray();
    for (auto& n : s.networks) {
      w.StartObject();
      key(w, "Target");
      string(w, n.target);
      if (!n.aliases.empty()) string_array(w, "Aliases", n.aliases);
      w.EndObject();
    }
    w.EndArray();
  }
  if (s.logging) {
    key(w, "LogDriver");
    w.StartObject();
    key(w, "Name");
    string(w, s.logging->type);
    if (!s.logging->options.empty()) string_object(w, "Options", s.logging->options);
    w.EndObject();
  }
}

void write_mode_and_endpoint(writer& w, const service_spec& s) {
  key(w, "Mode");
  w.StartObject();
  if (s.global) {
    empty_object(w, "Global");
  } else {
    key(w, "Replicated");
    w.StartObject();
    integer(w, "Replicas", s.replicas);
    w.EndObject();
  }
  w.EndObject();
  if (s.endpoint_mode.empty() && s.ports.empty()) return;
  key(w, "EndpointSpec");
  w.StartObject();
  if (!s.endpoint_mode.empty()) {
    key(w, "Mode");
    string(w, s.endpoint_mode);
  }
  key(w, "Ports");
  w.StartArray();
  for (auto& p : s.ports) {
    w.StartObject();
    key(w, "Protocol");
    string(w, p.protocol);
    integer(w, "TargetPort", p.target_port);
    if (p.published_port) integer(w, "PublishedPort", p.published_port);
    key(w, "PublishMode");
    string(w, p.publish_mode);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace

swarm_state parse_swarm_state(std::string_view json) {
  auto d = parse(json, "info");
  auto& o = object(d, "info");
  swarm_state s;
  auto* sw = member(o, "Swarm");
  if (!sw) return s;  // an engine without Swarm support reads as inactive
  s.local_node_state = str(*sw, "LocalNodeState");
  s.control_available = boolean(*sw, "ControlAvailable");
  s.node_id = str(*sw, "NodeID");
  s.node_addr = str(*sw, "NodeAddr");
  s.error = str(*sw, "Error");
  s.nodes = inum(*sw, "Nodes");
  s.managers = inum(*sw, "Managers");
  if (auto* c = member(*sw, "Cluster")) s.cluster_id = str(*c, "ID");
  return s;
}

node_info parse_node(std::string_view json) {
  auto d = parse(json, "node inspect");
  return read_node(object(d, "node inspect"));
}

std::vector<node_info> parse_node_list(std::string_view json) {
  return read_list<node_info>(json, "node list", read_node);
}

service_info parse_service(std::string_view json) {
  auto d = parse(json, "service inspect");
  return read_service(object(d, "service inspect"));
}

std::vector<service_info> parse_service_list(std::string_view json) {
  return read_list<service_info>(json, "service list", read_service);
}

std::vector<task_info> parse_task_list(std::string_view json) {
  return read_list<task_info>(json, "task list", read_task);
}

std::string parse_service_create(std::string_view json) {
  auto d = parse(json, "service create");
  auto id = str(object(d, "service create"), "ID");
  if (id.empty()) wrong_shape("service create", "an ID");
  return id;
}

std::vector<std::string> parse_warnings(std::string_view json) {
  auto d = parse(json, "service update");
  return strings(member(object(d, "service update"), "Warnings"));
}

std::string service_spec_body(const service_spec& s) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  key(w, "Name");
  string(w, s.name);
  if (!s.labels.empty()) string_object(w, "Labels", s.labels);
  key(w, "TaskTemplate");
  w.StartObject();
  write_container_spec(w, s);
  write_resources_and_restart(w, s);
  write_placement(w, s);
  write_networks_and_logging(w, s);
  integer(w, "ForceUpdate", s.force_update);
  w.EndObject();
  write_mode_and_endpoint(w, s);
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

}  // namespace dockscaler::dockerapi::detail
