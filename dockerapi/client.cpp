// dockerapi/client.cpp: the typed operations, each one HTTP call (or stream)
// through detail::transport, mapped with detail/json_mapping.
#include "dockerapi/client.hpp"

#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <unordered_set>

#include "detail/attach_connection.hpp"
#include "detail/encoding.hpp"
#include "detail/json_mapping.hpp"
#include "detail/line_splitter.hpp"
#include "detail/log_stream.hpp"
#include "detail/transport.hpp"

namespace dockscaler::dockerapi {

using detail::add_filters;
using detail::path_arg;
using detail::transport;
using std::chrono::milliseconds;
using params = std::vector<std::pair<std::string, std::string>>;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

const char* bool_arg(bool b) { return b ? "1" : "0"; }

// Calls where the daemon works (mounts, runc, iptables) before it answers are
// silent by nature: they get the total deadline only, not the idle one.
constexpr milliseconds busy_daemon{0};

}  // namespace

client_options client_options::from_env() {
  client_options o;
  if (auto h = env("DOCKER_HOST"); !h.empty()) o.host = h;
  // As the docker CLI: DOCKER_TLS_VERIFY (any value) = TLS and verify the
  // daemon; DOCKER_TLS alone = TLS without verification, client cert if present.
  bool verify = !env("DOCKER_TLS_VERIFY").empty();
  if (verify || !env("DOCKER_TLS").empty()) {
    std::string dir = env("DOCKER_CERT_PATH");
    if (dir.empty()) dir = env("HOME") + "/.docker";
    tls_options t{dir + "/ca.pem", dir + "/cert.pem", dir + "/key.pem", verify};
    if (!verify) {
      t.ca_file.clear();
      if (::access(t.cert_file.c_str(), R_OK) != 0 || ::access(t.key_file.c_str(), R_OK) != 0)
        t.cert_file.clear(), t.key_file.clear();
    }
    o.tls = t;
  }
  o.api_version = env("DOCKER_API_VERSION");
  // Validate now, so a bad DOCKER_HOST is reported where the options are made.
  detail::parse_docker_host(o.host, o.tls.has_value());
  if (!o.api_version.empty()) detail::parse_api_version(o.api_version);
  return o;
}

// ---- attach_stream ----------------------------------------------------------

attach_stream::attach_stream(std::unique_ptr<detail::attach_connection> c) : conn_(std::move(c)) {}
attach_stream::attach_stream(attach_stream&&) noexcept = default;
attach_stream& attach_stream::operator=(attach_stream&&) noexcept = default;
attach_stream::~attach_stream() = default;

void attach_stream::write_stdin(std::string_view data) { conn_->write(data); }
void attach_stream::close_stdin() { conn_->close_write(); }
void attach_stream::abort() noexcept {
  if (conn_) conn_->abort();
}
std::optional<output_chunk> attach_stream::read(milliseconds timeout) {
  return conn_->read(timeout);
}

logs_result attach_stream::read_all(milliseconds timeout) {
  logs_result r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    milliseconds left{0};
    if (timeout.count() > 0) {
      left = std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        throw error(errc::timeout, "dockerapi: attach: output did not end before the deadline");
    }
    auto c = conn_->read(left);
    if (!c) return r;
    (c->stream == stream_kind::stderr_ ? r.err : r.out) += c->data;
  }
}

// ---- client -------------------------------------------------------------------

client::client(client_options options) : t_(std::make_unique<transport>(std::move(options))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

const client_options& client::options() const noexcept { return t_->options(); }

void client::ping() {
  transport::request r;
  r.what = "ping";
  r.target = "/_ping";
  r.versioned = false;
  t_->perform(r);
}

std::string client::api_version() { return t_->api_version(); }

version_info client::version() {
  transport::request r;
  r.what = "version";
  r.target = "/version";
  return detail::parse_version(t_->perform(r).body);
}

system_info client::info() {
  transport::request r;
  r.what = "info";
  r.target = "/info";
  return detail::parse_info(t_->perform(r).body);
}

std::vector<container_summary> client::list_containers(const list_containers_options& o) {
  params p;
  if (o.all) p.emplace_back("all", "1");
  if (o.limit) p.emplace_back("limit", std::to_string(*o.limit));
  add_filters(p, o.filters);
  transport::request r;
  r.what = "list containers";
  r.target = "/containers/json" + detail::query_string(p);
  return detail::parse_container_list(t_->perform(r).body);
}

create_result client::create_container(const container_spec& spec) {
  if (spec.image.empty())
    throw error(errc::invalid_argument, "dockerapi: create container: no image");
  params p;
  if (spec.name) p.emplace_back("name", *spec.name);
  std::string body = detail::container_create_body(spec);
  transport::request r;
  r.what = "create container";
  r.idle = busy_daemon;
  r.method = "POST";
  r.target = "/containers/create" + detail::query_string(p);
  r.body = body;
  return detail::parse_create_result(t_->perform(r).body);
}

void client::start_container(const std::string& id) {
  transport::request r;
  r.what = "start container";
  r.idle = busy_daemon;
  r.method = "POST";
  r.target = "/containers/" + path_arg(id, "container id") + "/start";
  t_->perform(r);
}

void client::put_archive(const std::string& id, const std::string& path, std::string_view tar) {
  params p;
  p.emplace_back("path", path);
  transport::request r;
  r.what = "put archive";
  r.idle = busy_daemon;
  r.method = "PUT";
  r.target = "/containers/" + path_arg(id, "container id") + "/archive" + detail::query_string(p);
  r.body = tar;
  r.content_type = "application/x-tar";
  t_->perform(r);
}

void client::stop_container(const std::string& id, std::optional<int> timeout_s) {
  params p;
  if (timeout_s) p.emplace_back("t", std::to_string(*timeout_s));
  transport::request r;
  r.what = "stop container";
  r.method = "POST";
  r.target = "/containers/" + path_arg(id, "container id") + "/stop" + detail::query_string(p);
  // The daemon waits up to t seconds before SIGKILL; our deadline must not
  // fire first. Unset t means the container's StopTimeout (default 10 s).
  r.total = options().request_timeout + std::chrono::seconds(timeout_s.value_or(10));
  r.idle = milliseconds{0};  // the daemon sends nothing while it waits
  t_->perform(r);
}

void client::kill_container(const std::string& id, const std::string& signal) {
  transport::request r;
  r.what = "kill container";
  r.idle = busy_daemon;
  r.method = "POST";
  r.target = "/containers/" + path_arg(id, "container id") + "/kill" +
             detail::query_string({{"signal", signal}});
  t_->perform(r);
}

void client::remove_container(const std::string& id, bool force, bool volumes) {
  transport::request r;
  r.what = "remove container";
  r.idle = busy_daemon;
  r.method = "DELETE";
  r.target = "/containers/" + path_arg(id, "container id") +
             detail::query_string({{"force", bool_arg(force)}, {"v", bool_arg(volumes)}});
  t_->perform(r);
}

container_info client::inspect_container(const std::string& id) {
  transport::request r;
  r.what = "inspect container";
  r.target = "/containers/" + path_arg(id, "container id") + "/json";
  return detail::parse_container_inspect(t_->perform(r).body);
}

wait_result client::wait_container(const std::string& id, wait_condition condition,
                                   milliseconds timeout) {
  const char* c = condition == wait_condition::next_exit ? "next-exit"
                  : condition == wait_condition::removed ? "removed"
                                                         : "not-running";
  transport::request r;
  r.what = "wait container";
  r.method = "POST";
  r.target = "/containers/" + path_arg(id, "container id") + "/wait" +
             detail::query_string({{"condition", c}});
  r.total = timeout;
  r.idle = milliseconds{0};
  return detail::parse_wait_result(t_->perform(r).body);
}

void client::logs(const std::string& id, logs_options o,
                  const std::function<void(stream_kind, std::string_view)>& on_output,
                  const std::stop_token& stop) {
  bool tty = o.tty ? *o.tty : inspect_container(id).tty;
  transport::request r;
  r.what = "container logs";
  r.target = "/containers/" + path_arg(id, "container id") + "/logs";
  r.stop = stop;
  detail::stream_logs(*t_, r, o, tty, on_output);
}

logs_result client::logs(const std::string& id, logs_options o) {
  o.follow = false;
  logs_result out;
  logs(id, o, detail::collect_into(out));
  return out;
}

attach_stream client::attach(const std::string& id, attach_options o) {
  bool tty = o.tty ? *o.tty : inspect_container(id).tty;
  params p{{"stream", "1"},
           {"stdin", bool_arg(o.stdin_)},
           {"stdout", bool_arg(o.stdout_)},
           {"stderr", bool_arg(o.stderr_)},
           {"logs", bool_arg(o.logs)}};
  std::string target =
      "/containers/" + path_arg(id, "container id") + "/attach" + detail::query_string(p);
  return attach_stream(t_->hijack(target, tty, "attach container"));
}

// ---- images -------------------------------------------------------------------

image_info client::inspect_image(const std::string& ref) {
  transport::request r;
  r.what = "inspect image";
  r.target = "/images/" + path_arg(ref, "image reference") + "/json";
  return detail::parse_image_inspect(t_->perform(r).body);
}

std::vector<image_summary> client::list_images(const list_images_options& o) {
  params p;
  if (o.all) p.emplace_back("all", "1");
  add_filters(p, o.filters);
  transport::request r;
  r.what = "list images";
  r.target = "/images/json" + detail::query_string(p);
  return detail::parse_image_list(t_->perform(r).body);
}

namespace {
// Feeds a JSON-lines progress stream (pull, build) through parse_progress.
std::function<void(std::string_view)> progress_sink(
    detail::line_splitter& lines, const std::function<void(const progress_message&)>& cb,
    std::string* aux_id) {
  return [&lines, &cb, aux_id](std::string_view data) {
    lines.feed(data, [&](std::string_view line) {
      auto m = detail::parse_progress(line, aux_id);
      if (cb) cb(m);
    });
  };
}
}  // namespace

void client::pull_image(const std::string& image, const std::string& tag,
                        const std::function<void(const progress_message&)>& on_progress) {
  if (image.empty()) throw error(errc::invalid_argument, "dockerapi: pull image: empty name");
  detail::line_splitter lines;
  transport::request r;
  r.what = "pull image";
  r.method = "POST";
  r.target = "/images/create" + detail::query_string({{"fromImage", image}, {"tag", tag}});
  r.total = milliseconds{0};  // a pull takes as long as it takes, while bytes move
  r.on_data = progress_sink(lines, on_progress, nullptr);
  t_->perform(r);
  if (!lines.pending().empty()) detail::parse_progress(lines.pending());
}

std::string client::build_image(std::string_view context_tar, const build_options& o,
                                const std::function<void(const progress_message&)>& on_progress) {
  params p;
  for (auto& t : o.tags) p.emplace_back("t", t);
  p.emplace_back("dockerfile", o.dockerfile);
  p.emplace_back("nocache", bool_arg(o.no_cache));
  p.emplace_back("rm", bool_arg(o.remove_intermediate));
  if (!o.labels.empty()) p.emplace_back("labels", detail::labels_json(o.labels));
  if (!o.build_args.empty()) p.emplace_back("buildargs", detail::labels_json(o.build_args));
  detail::line_splitter lines;
  std::string aux_id;
  transport::request r;
  r.what = "build image";
  r.method = "POST";
  r.target = "/build" + detail::query_string(p);
  r.body = context_tar;
  r.content_type = "application/x-tar";
  r.total = milliseconds{0};
  r.on_data = progress_sink(lines, on_progress, &aux_id);
  t_->perform(r);
  if (!lines.pending().empty()) detail::parse_progress(lines.pending(), &aux_id);
  if (aux_id.empty())
    throw error(errc::protocol, "dockerapi: build image: the daemon did not report the image id");
  return aux_id;
}

void client::remove_image(const std::string& ref, bool force) {
  transport::request r;
  r.what = "remove image";
  r.idle = busy_daemon;
  r.method = "DELETE";
  r.target = "/images/" + path_arg(ref, "image reference") +
             detail::query_string({{"force", bool_arg(force)}});
  t_->perform(r);
}

// ---- networks -----------------------------------------------------------------

std::string client::create_network(const network_spec& spec) {
  if (spec.name.empty()) throw error(errc::invalid_argument, "dockerapi: create network: no name");
  std::string body = detail::network_create_body(spec);
  transport::request r;
  r.what = "create network";
  r.idle = busy_daemon;
  r.method = "POST";
  r.target = "/networks/create";
  r.body = body;
  return detail::parse_id(t_->perform(r).body);
}

network_info client::inspect_network(const std::string& id) {
  transport::request r;
  r.what = "inspect network";
  r.target = "/networks/" + path_arg(id, "network id");
  return detail::parse_network_inspect(t_->perform(r).body);
}

std::vector<network_info> client::list_networks(const list_networks_options& o) {
  params p;
  add_filters(p, o.filters);
  transport::request r;
  r.what = "list networks";
  r.target = "/networks" + detail::query_string(p);
  return detail::parse_network_list(t_->perform(r).body);
}

void client::remove_network(const std::string& id) {
  transport::request r;
  r.what = "remove network";
  r.idle = busy_daemon;
  r.method = "DELETE";
  r.target = "/networks/" + path_arg(id, "network id");
  t_->perform(r);
}

void client::connect_network(const std::string& network, const std::string& container,
                             const std::vector<std::string>& aliases) {
  std::string body = detail::network_connect_body(container, aliases);
  transport::request r;
  r.what = "connect network";
  r.idle = busy_daemon;
  r.method = "POST";
  r.target = "/networks/" + path_arg(network, "network id") + "/connect";
  r.body = body;
  t_->perform(r);
}

void client::disconnect_network(const std::string& network, const std::string& container,
                                bool force) {
  std::string body = detail::network_disconnect_body(container, force);
  transport::request r;
  r.what = "disconnect network";
  r.idle = busy_daemon;
  r.method = "POST";
  r.target = "/networks/" + path_arg(network, "network id") + "/disconnect";
  r.body = body;
  t_->perform(r);
}

// ---- events -------------------------------------------------------------------

namespace {

// Docker's `since`: seconds with a nine-digit fraction.
std::string since_param(std::int64_t nano) {
  std::string n = std::to_string(nano % 1'000'000'000);
  return std::to_string(nano / 1'000'000'000) + "." + std::string(9 - n.size(), '0') + n;
}

// Recently delivered events (by type/action/actor/timeNano/name): the replay
// after a reconnect starts at the last timeNano inclusive, so the boundary
// events come again and are dropped here.
class recent_events {
 public:
  bool first_time(const event& e) {
    auto name = e.attributes.find("name");
    std::string key = e.type + '\x1f' + e.action + '\x1f' + e.actor_id + '\x1f' +
                      std::to_string(e.time_nano) + '\x1f' +
                      (name == e.attributes.end() ? std::string() : name->second);
    if (!seen_.insert(key).second) return false;
    order_.push_back(std::move(key));
    if (order_.size() > 4096) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }

 private:
  std::unordered_set<std::string> seen_;
  std::deque<std::string> order_;
};

// Whether reconnecting may help (not for bad filters or an unsupported version).
bool reconnectable(const error& e) {
  switch (e.code()) {
    case errc::unreachable:
    case errc::timeout:
    case errc::protocol:
    case errc::server_error:
      return true;
    default:
      return false;
  }
}

milliseconds reconnect_delay(const event_options& o, int attempt) {
  if (o.backoff) return o.backoff(attempt);
  return milliseconds(std::min<long long>(100LL << std::min(attempt - 1, 6), 5000));
}

}  // namespace

void client::events(const event_options& o, const std::function<void(const event&)>& on_event,
                    const std::stop_token& stop) {
  recent_events recent;
  std::optional<std::int64_t> since = o.since_nano;
  std::int64_t last_nano = 0;
  int attempt = 0;
  std::mutex mu;
  std::condition_variable_any cv;

  while (!stop.stop_requested()) {
    // Before the first event, a reconnect resumes from the first connect time.
    std::int64_t connect_time = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    params p;
    if (last_nano > 0) since = last_nano;
    if (since) p.emplace_back("since", since_param(*since));
    add_filters(p, o.filters);
    detail::line_splitter lines;
    bool user_threw = false;
    transport::request r;
    r.what = "events";
    r.target = "/events" + detail::query_string(p);
    r.total = milliseconds{0};
    r.idle = o.idle_timeout;
    r.stop = stop;
    r.on_connected = [&] {
      attempt = 0;
      if (!since) since = connect_time;
      if (o.on_state) o.on_state(nullptr);
    };
    r.on_data = [&](std::string_view data) {
      lines.feed(data, [&](std::string_view line) {
        event e = detail::parse_event(line);
        if (!recent.first_time(e)) return;
        if (e.time_nano > last_nano) last_nano = e.time_nano;
        user_threw = true;
        on_event(e);
        user_threw = false;
      });
    };
    std::optional<error> dropped;
    try {
      auto resp = t_->perform(r);
      if (resp.stopped) return;
      dropped.emplace(errc::protocol, "dockerapi: events: the daemon ended the stream");
    } catch (const error& e) {
      if (user_threw) throw;
      if (stop.stop_requested()) return;
      if (!reconnectable(e)) throw;
      dropped.emplace(e);
    }
    if (o.on_state) o.on_state(&*dropped);
    ++attempt;
    std::unique_lock lk(mu);
    cv.wait_for(lk, stop, reconnect_delay(o, attempt), [] { return false; });
  }
}

}  // namespace dockscaler::dockerapi
