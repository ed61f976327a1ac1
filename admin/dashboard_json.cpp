// The dashboard API's JSON (detail/dashboard_json.hpp), with RapidJSON.
#include "detail/dashboard_json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <type_traits>

#include "json/parse.hpp"

namespace dockscaler::admin::detail {

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

void str(writer& w, const char* key, std::string_view v) {
  w.Key(key);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

// One column of the points: `get` of each.
template <class F>
void column(writer& w, const char* key, const std::vector<history_point>& points, F get) {
  w.Key(key);
  w.StartArray();
  for (const auto& p : points) {
    const auto v = get(p);
    if constexpr (std::is_floating_point_v<decltype(v)>)
      w.Double(v);
    else
      w.Int64(static_cast<std::int64_t>(v));
  }
  w.EndArray();
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80         ? 1
                          : (c >> 5) == 6  ? 2
                          : (c >> 4) == 14 ? 3
                          : (c >> 3) == 30 ? 4
                                           : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

// A method, path or header the proxy would refuse, or that would split the request.
bool token_chars(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}
bool visible(std::string_view s, bool spaces) {
  return std::all_of(s.begin(), s.end(), [spaces](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u > 0x20 && u != 0x7f) || (spaces && (c == ' ' || c == '\t'));
  });
}

std::string_view string_member(const rapidjson::Value& o, const char* key) {
  const auto m = o.FindMember(key);
  if (m == o.MemberEnd() || !m->value.IsString()) return {};
  return {m->value.GetString(), m->value.GetStringLength()};
}

// The call the body asks for; an error message, empty when it is one.
std::string parse_call(const std::string& body, invoke_call& call) {
  rapidjson::Document doc;
  if (auto e = json::parse_untrusted(doc, body, json::admin_body_depth); !e.empty())
    return "the body is not valid JSON: " + e;
  if (!doc.IsObject()) return "the body must be a JSON object";
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    const std::string_view k(m->name.GetString(), m->name.GetStringLength());
    if (k != "method" && k != "path" && k != "headers" && k != "body")
      return "unknown field \"" + std::string(k) + "\"";
    if (k != "headers" && !m->value.IsString())
      return "\"" + std::string(k) + "\" must be a string";
  }
  if (doc.HasMember("method")) call.method = string_member(doc, "method");
  if (doc.HasMember("path")) call.path = string_member(doc, "path");
  call.body = string_member(doc, "body");
  if (!token_chars(call.method) || call.method.size() > 32)
    return "\"method\" is not an HTTP method";
  if (call.path.empty() || call.path.front() != '/' || !visible(call.path, false))
    return "\"path\" must start with / and hold no spaces";
  if (const auto h = doc.FindMember("headers"); h != doc.MemberEnd()) {
    if (!h->value.IsObject()) return "\"headers\" must be an object of strings";
    for (auto f = h->value.MemberBegin(); f != h->value.MemberEnd(); ++f) {
      const std::string_view name(f->name.GetString(), f->name.GetStringLength());
      if (!f->value.IsString()) return "\"headers\" must be an object of strings";
      const std::string_view value(f->value.GetString(), f->value.GetStringLength());
      if (!token_chars(name) || !visible(value, true))
        return "header \"" + std::string(name) + "\" is not a valid field";
      call.headers.emplace_back(name, value);
    }
  }
  return {};
}

std::string answer_json(const invoke_answer& a) {
  rapidjson::StringBuffer b;
  writer w(b);
  w.StartObject();
  w.Key("status");
  w.Uint(a.status);
  w.Key("took_ms");
  w.Double(a.took_seconds * 1000);
  w.Key("headers");
  w.StartArray();
  for (const auto& [k, v] : a.headers) {
    w.StartArray();
    w.String(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
    const bool text = valid_utf8(v);
    w.String(text ? v.c_str() : "", static_cast<rapidjson::SizeType>(text ? v.size() : 0));
    w.EndArray();
  }
  w.EndArray();
  // The page shows text; a binary answer is said to be one.
  const bool text = valid_utf8(a.body);
  str(w, "body", text ? a.body : "(" + std::to_string(a.body.size()) + " bytes, not UTF-8 text)");
  w.Key("binary");
  w.Bool(!text);
  w.Key("truncated");
  w.Bool(a.truncated);
  str(w, "error", a.error);
  w.EndObject();
  return b.GetString();
}

void add_settings(rapidjson::Value& svc, const dashboard_service& s,
                  rapidjson::Document::AllocatorType& al) {
  rapidjson::Value th(rapidjson::kObjectType);
  th.AddMember("wait_time_above", s.wait_time_above, al);
  th.AddMember("wait_time_below", s.wait_time_below, al);
  th.AddMember("stat", rapidjson::Value(s.wait_stat.c_str(), al), al);
  svc.AddMember("thresholds", th, al);
  rapidjson::Value route(rapidjson::kObjectType);
  route.AddMember("path_prefix", rapidjson::Value(s.path_prefix.c_str(), al), al);
  route.AddMember("host", rapidjson::Value(s.host.c_str(), al), al);
  svc.AddMember("route", route, al);
}

}  // namespace

http_response json_error(unsigned status, std::string_view message) {
  rapidjson::StringBuffer b;
  writer w(b);
  w.StartObject();
  str(w, "message", message);
  w.EndObject();
  return {status, "application/json", b.GetString()};
}

std::string dashboard_status_json(const daemon_info& info,
                                  const std::vector<scaler::service_status>& all,
                                  const dashboard_settings& s, std::int64_t now_ms) {
  rapidjson::Document doc;
  doc.Parse(status_json(info, all).c_str());
  auto& al = doc.GetAllocator();
  for (auto& svc : doc["services"].GetArray()) {
    const std::string_view name(svc["name"].GetString(), svc["name"].GetStringLength());
    for (const auto& d : s.services)
      if (d.name == name) add_settings(svc, d, al);
  }
  rapidjson::Value dash(rapidjson::kObjectType);
  dash.AddMember("invoke", s.invoke, al);
  dash.AddMember("time_ms", now_ms, al);
  doc.AddMember("dashboard", dash, al);
  rapidjson::StringBuffer b;
  writer w(b);
  doc.Accept(w);
  return b.GetString();
}

std::string history_json(std::string_view service, const std::vector<history_point>& points) {
  rapidjson::StringBuffer b;
  writer w(b);
  w.StartObject();
  str(w, "service", service);
  using P = history_point;
  column(w, "time_ms", points, [](const P& p) { return p.time_ms; });
  column(w, "desired", points, [](const P& p) { return p.desired; });
  column(w, "ready", points, [](const P& p) { return p.ready; });
  column(w, "starting", points, [](const P& p) { return p.starting; });
  column(w, "draining", points, [](const P& p) { return p.draining; });
  column(w, "min", points, [](const P& p) { return p.min; });
  column(w, "max", points, [](const P& p) { return p.max; });
  column(w, "queue_length", points, [](const P& p) { return p.queue_length; });
  column(w, "in_flight", points, [](const P& p) { return p.in_flight; });
  column(w, "wait_p50", points, [](const P& p) { return p.wait_p50; });
  column(w, "wait_p95", points, [](const P& p) { return p.wait_p95; });
  column(w, "request_rate", points, [](const P& p) { return p.request_rate; });
  column(w, "error_rate", points, [](const P& p) { return p.error_rate; });
  w.EndObject();
  return b.GetString();
}

http_response invoke_reply(const http_request& req, const dashboard_service& service,
                           const dashboard_sources& src) {
  // A cross-site form can send a POST but never as application/json.
  const std::string_view type = req.header("content-type");
  if (type.substr(0, type.find(';')) != "application/json")
    return json_error(415, "the body must be JSON (Content-Type: application/json)");
  invoke_call call;
  if (auto e = parse_call(req.body, call); !e.empty()) return json_error(400, e);
  return {200,
          "application/json",
          answer_json(src.invoke(service, call)),
          {{"Cache-Control", "no-store"}}};
}

}  // namespace dockscaler::admin::detail
