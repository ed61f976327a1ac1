// Admin API routing and JSON (see api.hpp). RapidJSON stays in this file.
#include "admin/api.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "json/parse.hpp"

namespace dockscaler::admin {

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

void str(writer& w, const char* key, const std::string& v) {
  w.Key(key);
  w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}

void write_replica(writer& w, const scaler::replica_status& r) {
  w.StartObject();
  str(w, "id", r.id);
  str(w, "name", r.name);
  str(w, "address", r.address);
  if (!r.node.empty()) str(w, "node", r.node);
  str(w, "state", scaler::to_string(r.phase));
  w.Key("outdated");
  w.Bool(r.outdated);
  w.Key("in_flight");
  w.Uint(r.in_flight);
  w.Key("age_seconds");
  w.Int64(r.age.count());
  w.EndObject();
}

void write_route(writer& w, const service_route& r) {
  w.Key("route");
  w.StartObject();
  str(w, "host", r.host);
  str(w, "path_prefix", r.path_prefix);
  w.Key("strip_prefix");
  w.Bool(r.strip_prefix);
  w.EndObject();
}

void write_service(writer& w, const scaler::service_status& s, const service_route* route) {
  w.StartObject();
  str(w, "name", s.name);
  w.Key("desired");
  w.Uint(s.desired);
  w.Key("ready");
  w.Uint(s.ready);
  w.Key("starting");
  w.Uint(s.starting);
  w.Key("draining");
  w.Uint(s.draining);
  w.Key("min");
  w.Uint(s.min);
  w.Key("max");
  w.Uint(s.max);
  w.Key("autoscale");
  w.Bool(s.autoscale);
  w.Key("hold_left_seconds");
  if (s.hold_left)
    w.Int64(s.hold_left->count());
  else
    w.Null();
  w.Key("queue_length");
  w.Uint64(s.figures.queue_length);
  w.Key("in_flight");
  w.Uint64(s.figures.in_flight);
  w.Key("requests");
  w.Uint64(s.figures.requests);
  w.Key("wait_time");
  w.StartObject();
  const std::pair<const char*, double> stats[] = {
      {"mean", s.figures.wait_mean}, {"p50", s.figures.wait_p50}, {"p90", s.figures.wait_p90},
      {"p95", s.figures.wait_p95},   {"p99", s.figures.wait_p99}, {"max", s.figures.wait_max}};
  for (const auto& [k, v] : stats) {
    w.Key(k);
    w.Double(v);
  }
  w.EndObject();
  w.Key("last_decision");
  w.StartObject();
  w.Key("desired");
  w.Uint(s.last_decision.desired);
  str(w, "direction", scaler::to_string(s.last_decision.dir));
  // The policy never moves with reason "steady": such a change was set by
  // an operator (set_replicas), which has no reason of its own.
  const bool manual = s.last_decision.dir != scaler::direction::none &&
                      s.last_decision.why.kind == scaler::reason_kind::steady;
  str(w, "reason", manual ? "manual" : scaler::to_string(s.last_decision.why.kind));
  str(w, "text", manual ? "set by an operator" : s.last_decision.why.to_string());
  w.EndObject();
  w.Key("consecutive_failures");
  w.Uint(s.consecutive_failures);
  str(w, "last_error", s.last_error);
  w.Key("reconcile_passes");
  w.Uint64(s.reconcile_passes);
  w.Key("containers");
  w.StartArray();
  for (const auto& r : s.replicas) write_replica(w, r);
  w.EndArray();
  if (route) write_route(w, *route);
  w.EndObject();
}

void count(writer& w, const char* key, std::uint64_t v) {
  w.Key(key);
  w.Uint64(v);
}

void write_event(writer& w, const history_event& e) {
  w.StartObject();
  count(w, "seq", e.seq);
  str(w, "time", rfc3339_ms(e.time_ms));
  str(w, "service", e.service);
  count(w, "from", e.from);
  count(w, "to", e.to);
  str(w, "direction", e.direction);
  str(w, "reason", e.reason);
  str(w, "detail", e.detail);
  w.Key("wait_time_seconds");
  w.Double(e.wait_time);
  count(w, "queue_length", e.queue_length);
  count(w, "in_flight", e.in_flight);
  w.EndObject();
}

std::string json_message(const std::string& message) {
  rapidjson::StringBuffer b;
  writer w(b);
  w.StartObject();
  str(w, "message", message);
  w.EndObject();
  return b.GetString();
}

http_response error(unsigned status, const std::string& message) {
  return {status, "application/json", json_message(message)};
}

http_response ok_json(std::string body) { return {200, "application/json", std::move(body)}; }

// Parses a JSON object body; returns an error message, empty on success.
std::string parse_object(const std::string& body, rapidjson::Document& doc) {
  if (auto e = json::parse_untrusted(doc, body, json::admin_body_depth); !e.empty())
    return "the body is not valid JSON: " + e;
  if (!doc.IsObject()) return "the body must be a JSON object";
  return {};
}

const scaler::service_status* find(const std::vector<scaler::service_status>& all,
                                   const std::string& name) {
  for (const auto& s : all)
    if (s.name == name) return &s;
  return nullptr;
}

const service_route* route_of(const daemon_info& info, const std::string& name) {
  auto r = info.routes.find(name);
  return r == info.routes.end() ? nullptr : &r->second;
}

http_response service_reply(control& c, const std::string& name) {
  const auto all = c.status();
  const auto* s = find(all, name);
  if (!s) return error(404, "no such service: " + name);
  const daemon_info info = c.info();
  return ok_json(service_json(*s, route_of(info, name)));
}

// The first member of `doc` not named in `allowed`, as an error; empty when none.
std::string unknown_field(const rapidjson::Document& doc,
                          std::initializer_list<std::string_view> allowed) {
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    const std::string k(m->name.GetString(), m->name.GetStringLength());
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      return "unknown field \"" + k + "\"";
  }
  return {};
}

http_response scale(control& c, const std::string& name, const std::string& body) {
  rapidjson::Document doc;
  if (auto e = parse_object(body, doc); !e.empty()) return error(400, e);
  if (auto e = unknown_field(doc, {"replicas", "hold"}); !e.empty()) return error(400, e);
  auto rep = doc.FindMember("replicas");
  if (rep == doc.MemberEnd()) return error(400, "\"replicas\" is required");
  if (!rep->value.IsUint()) return error(400, "\"replicas\" must be a whole number from 0");
  std::chrono::milliseconds hold{0};
  if (auto h = doc.FindMember("hold"); h != doc.MemberEnd() && !h->value.IsNull()) {
    if (!h->value.IsString()) return error(400, "\"hold\" must be a duration such as \"10m\"");
    auto d = config::parse_duration(std::string(h->value.GetString(), h->value.GetStringLength()));
    if (!d) return error(400, "\"hold\": not a duration such as \"10m\" (at most 277h)");
    hold = *d;
  }
  c.set_replicas(name, rep->value.GetUint(), hold);
  return service_reply(c, name);
}

http_response autoscale(control& c, const std::string& name, const std::string& body) {
  rapidjson::Document doc;
  if (auto e = parse_object(body, doc); !e.empty()) return error(400, e);
  if (auto e = unknown_field(doc, {"enabled"}); !e.empty()) return error(400, e);
  auto en = doc.FindMember("enabled");
  if (en == doc.MemberEnd() || !en->value.IsBool())
    return error(400, "\"enabled\" must be true or false");
  c.set_autoscale(name, en->value.GetBool());
  return service_reply(c, name);
}

// POST /v1/reload takes no arguments: an empty body or {}; anything else is
// refused rather than ignored, so a caller that thinks it passes options learns
// it does not.
http_response reload(control& c, const std::string& body) {
  if (!body.empty()) {
    rapidjson::Document doc;
    if (auto e = parse_object(body, doc); !e.empty()) return error(400, e);
    if (auto e = unknown_field(doc, {}); !e.empty()) return error(400, e);
  }
  return ok_json(json_message(c.reload()));
}

// %XX and '+' of a query component decoded; nullopt when a % is not followed
// by two hex digits.
std::optional<std::string> url_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      unsigned v = 0;
      if (i + 2 >= in.size()) return std::nullopt;
      auto [end, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
      if (ec != std::errc() || end != in.data() + i + 3) return std::nullopt;
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// The query of `target` as name -> value; an error message when it cannot be
// read or names a parameter not in `allowed` (refused, not ignored, as body fields are).
std::string parse_query(const std::string& target, std::initializer_list<std::string_view> allowed,
                        std::map<std::string, std::string>& out) {
  const auto q = target.find('?');
  if (q == std::string::npos) return {};
  std::string_view rest = std::string_view(target).substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto name = url_decode(pair.substr(0, eq));
    auto value = url_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!name || !value) return "the query is not URL-encoded";
    if (std::find(allowed.begin(), allowed.end(), *name) == allowed.end())
      return "unknown query parameter \"" + *name + "\"";
    out[*name] = *value;
  }
  return {};
}

// GET /v1/events[?service=S&after=SEQ&follow=1].
http_response events(control& c, const http_request& req) {
  std::map<std::string, std::string> q;
  if (auto e = parse_query(req.target, {"service", "after", "follow"}, q); !e.empty())
    return error(400, e);
  event_follow f;
  if (auto a = q.find("after"); a != q.end()) {
    const std::string& v = a->second;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), f.after_seq);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size())
      return error(400, "\"after\" must be an event's seq, a whole number from 0");
  }
  bool follow = false;
  if (auto fl = q.find("follow"); fl != q.end()) {
    if (fl->second == "1" || fl->second == "true")
      follow = true;
    else if (fl->second != "0" && fl->second != "false")
      return error(400, "\"follow\" must be 1 or 0");
  }
  const history& h = c.scale_history();
  f.source = &h;
  if (auto s = q.find("service"); s != q.end()) {
    f.service = s->second;
    // A service the config no longer has still shows its past events.
    if (!find(c.status(), f.service) && h.events(f.service).empty())
      return error(404, "no such service: " + f.service);
  }
  if (follow && req.method == "GET") {
    http_response r{200, "application/x-ndjson", {}};
    r.follow = std::move(f);
    return r;
  }
  return ok_json(events_json(h.events(f.service, f.after_seq)));
}

http_response route(const http_request& req, control& c, bool metrics_only) {
  std::string path = req.target.substr(0, req.target.find('?'));
  const bool get = req.method == "GET" || req.method == "HEAD";
  const bool post = req.method == "POST";
  auto method_error = [] { return error(405, "method not allowed"); };

  if (path == "/metrics") {
    if (!get) return method_error();
    return {200, "text/plain; version=0.0.4; charset=utf-8", c.metrics_text()};
  }
  if (metrics_only) return error(404, "only /metrics is served here");
  if (path == "/healthz") {
    if (!get) return method_error();
    return {200, "text/plain; charset=utf-8", "ok\n"};
  }
  if (path == "/v1/status") {
    if (!get) return method_error();
    return ok_json(status_json(c.info(), c.status()));
  }
  if (path == "/v1/reload") {
    if (!post) return method_error();
    return reload(c, req.body);
  }
  if (path == "/v1/events") {
    if (!get) return method_error();
    return events(c, req);
  }
  const std::string prefix = "/v1/services/";
  if (path.rfind(prefix, 0) == 0) {
    std::string rest = path.substr(prefix.size());
    std::string name = rest, action;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      name = rest.substr(0, slash);
      action = rest.substr(slash + 1);
    }
    if (name.empty()) return error(404, "page not found");
    if (action.empty()) {
      if (!get) return method_error();
      return service_reply(c, name);
    }
    if (action == "containers") {
      if (!get) return method_error();
      const auto all = c.status();
      const auto* s = find(all, name);
      if (!s) return error(404, "no such service: " + name);
      rapidjson::StringBuffer b;
      writer w(b);
      w.StartArray();
      for (const auto& r : s->replicas) write_replica(w, r);
      w.EndArray();
      return ok_json(b.GetString());
    }
    if (action == "scale") {
      if (!post) return method_error();
      return scale(c, name, req.body);
    }
    if (action == "autoscale") {
      if (!post) return method_error();
      return autoscale(c, name, req.body);
    }
  }
  return error(404, "page not found");
}

}  // namespace

std::string service_json(const scaler::service_status& s, const service_route* route) {
  rapidjson::StringBuffer b;
  writer w(b);
  write_service(w, s, route);
  return b.GetString();
}

std::string status_json(const daemon_info& info, const std::vector<scaler::service_status>& all) {
  rapidjson::StringBuffer b;
  writer w(b);
  w.StartObject();
  str(w, "version", info.version);
  str(w, "api_version", api_version);
  str(w, "docker_api_version", info.docker_api_version);
  str(w, "docker_host", info.docker_host);
  w.Key("proxy");
  w.StartObject();
  w.Key("listeners");
  w.StartArray();
  for (const auto& l : info.proxy_listeners) {
    w.StartObject();
    str(w, "scheme", l.scheme);
    str(w, "address", l.address);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.Key("services");
  w.StartArray();
  for (const auto& s : all) write_service(w, s, route_of(info, s.name));
  w.EndArray();
  w.EndObject();
  return b.GetString();
}

std::string event_json(const history_event& e) {
  rapidjson::StringBuffer b;
  writer w(b);
  write_event(w, e);
  return b.GetString();
}

std::string events_json(const std::vector<history_event>& events) {
  rapidjson::StringBuffer b;
  writer w(b);
  w.StartObject();
  w.Key("events");
  w.StartArray();
  for (const auto& e : events) write_event(w, e);
  w.EndArray();
  w.EndObject();
  return b.GetString();
}

std::string rfc3339_ms(std::int64_t unix_ms) {
  // Floor division: a time before 1970 still gets 0..999 ms.
  std::int64_t secs = unix_ms / 1000, ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];  // room for any int the format may meet, so no truncation to warn of
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

http_response handle(const http_request& req, control& c, bool metrics_only) {
  try {
    return route(req, c, metrics_only);
  } catch (const std::out_of_range& e) {
    return error(404, e.what());
  } catch (const std::invalid_argument& e) {
    return error(400, e.what());
  } catch (const rejected& e) {
    return error(400, e.what());
  } catch (const reload_busy& e) {
    return error(409, e.what());
  } catch (const std::exception& e) {
    return error(500, e.what());
  } catch (...) {
    return error(500, "internal error");
  }
}

std::optional<proxy_listener> request_listener(const std::vector<proxy_listener>& listeners) {
  const proxy_listener* pick = nullptr;
  for (const char* scheme : {"http", "https"})
    for (const auto& l : listeners)
      if (!pick && l.scheme == scheme) pick = &l;
  if (!pick) return std::nullopt;
  proxy_listener out = *pick;
  if (out.address.starts_with("0.0.0.0:")) out.address = "127.0.0.1" + out.address.substr(7);
  if (out.address.starts_with("[::]:")) out.address = "[::1]" + out.address.substr(4);
  return out;
}

}  // namespace dockscaler::admin
