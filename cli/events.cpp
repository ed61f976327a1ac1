// `dockscaler events [SERVICE] [-f] [-o table|json]`: the daemon's scale
// events (GET /v1/events) as a table with their reasons and figures, or as
// NDJSON; -f follows new ones (GET /v1/events?follow=1) until interrupted,
// and exits 3 when the daemon goes away.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "admin/client.hpp"
#include "app.hpp"
#include "commands.hpp"
#include "json/parse.hpp"
#include "table.hpp"

namespace po = boost::program_options;

namespace dockscaler::cli {

namespace {

using row = std::vector<std::string>;

const row header = {"TIME", "SERVICE", "CHANGE", "REASON", "WAIT", "QUEUE", "IN-FLIGHT", "DETAIL"};

// A follow cannot measure rows it has not seen: its columns are as wide as
// the usual values (an RFC 3339 time with ms, the longest reason).
const std::vector<std::size_t> follow_widths = {24, 16, 8, 15, 7, 5, 9};

std::string text_of(const rapidjson::Value& e, const char* key) {
  auto m = e.FindMember(key);
  if (m == e.MemberEnd()) return {};
  if (m->value.IsString()) return m->value.GetString();
  if (m->value.IsUint64()) return std::to_string(m->value.GetUint64());
  return {};
}

double seconds_of(const rapidjson::Value& e, const char* key) {
  auto m = e.FindMember(key);
  return m != e.MemberEnd() && m->value.IsNumber() ? m->value.GetDouble() : 0;
}

// One event as a table row. A manual change has no figures of its own.
row event_row(const rapidjson::Value& e) {
  const std::string reason = text_of(e, "reason");
  const bool manual = reason == "manual";
  return {text_of(e, "time"),
          text_of(e, "service"),
          text_of(e, "from") + " -> " + text_of(e, "to"),
          reason,
          manual ? "-" : seconds_text(seconds_of(e, "wait_time_seconds")),
          manual ? "-" : text_of(e, "queue_length"),
          manual ? "-" : text_of(e, "in_flight"),
          text_of(e, "detail")};
}

// Columns padded to `widths`, two spaces apart; a longer value pushes the
// rest of its line along.
void print_row(const row& r, const std::vector<std::size_t>& widths) {
  std::string line;
  for (std::size_t i = 0; i < r.size(); ++i) {
    line += r[i];
    if (i + 1 == r.size()) break;
    const std::size_t w = i < widths.size() ? widths[i] : 0;
    line.append(w > r[i].size() ? w - r[i].size() + 2 : 2, ' ');
  }
  std::printf("%s\n", line.c_str());
}

rapidjson::Document parse(std::string_view text) {
  rapidjson::Document d;
  if (auto e = json::parse_untrusted(d, text, json::daemon_reply_depth); !e.empty())
    throw std::runtime_error("the daemon sent JSON that does not parse: " + e);
  return d;
}

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return b.GetString();
}

// Percent-encoded for a query: a service name is [a-z0-9_-] in practice,
// but whatever was typed must not change the request.
std::string query_escape(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// The daemon's answer to `call`; an error status is the daemon's message (exit 1).
admin::reply reach(const std::string& address, const std::function<admin::reply()>& call) {
  admin::reply r = reach_daemon(address, call);
  if (r.status != 200) throw std::runtime_error(admin::error_message(r));
  return r;
}

int list_events(const std::string& address, const std::string& target, bool json_lines) {
  const auto r = reach(address, [&] { return admin::request(address, "GET", target); });
  const auto d = parse(r.body);
  std::vector<const rapidjson::Value*> events;
  if (auto m = d.FindMember("events"); m != d.MemberEnd() && m->value.IsArray())
    for (const auto& e : m->value.GetArray()) events.push_back(&e);
  if (json_lines) {
    for (const auto* e : events) std::printf("%s\n", compact(*e).c_str());
    return exit_ok;
  }
  std::vector<row> rows = {header};
  for (const auto* e : events) rows.push_back(event_row(*e));
  std::vector<std::size_t> widths(header.size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], r[i].size());
  for (const auto& r : rows) print_row(r, widths);
  return exit_ok;
}

// Prints each event as it comes; the daemon's heartbeats (empty lines) only
// tell that the stream is up, so the header goes out with the first of them.
int follow_events(const std::string& address, const std::string& target, bool json_lines) {
  bool started = false;
  auto on_line = [&](std::string_view line) {
    if (!started && !json_lines) print_row(header, follow_widths);
    started = true;
    if (line.empty()) {
      std::fflush(stdout);
      return;
    }
    if (json_lines)
      std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
    else
      print_row(event_row(parse(line)), follow_widths);
    std::fflush(stdout);
  };
  try {
    reach(address, [&] { return admin::stream_lines(address, target + "&follow=1", on_line); });
  } catch (const unreachable_error&) {
    if (!started) throw;  // never reached: say why, with the hint
  }
  // Cut or ended cleanly, the stream is over only when the daemon is.
  throw unreachable_error("the daemon ended the event stream (it stopped or went away)");
}

}  // namespace

int cmd_events(const globals& g, const std::vector<std::string>& args) {
  po::options_description opts("events options");
  opts.add_options()("service", po::value<std::string>(), "only this service")(
      "follow,f", "keep printing new events until interrupted")(
      "output,o", po::value<std::string>()->default_value("table"),
      "table|json (json: one event per line)");
  add_common(opts, g);
  po::positional_options_description pos;
  pos.add("service", 1);
  po::variables_map vm;
  if (!parse_sub("events", "events [SERVICE] [-f] [-o table|json]", opts, args, vm, &pos))
    return exit_ok;
  const std::string format = vm["output"].as<std::string>();
  if (format != "table" && format != "json") throw usage_error("-o must be table or json");
  std::string target = "/v1/events?after=0";
  if (vm.count("service")) target += "&service=" + query_escape(vm["service"].as<std::string>());
  const std::string address = vm["admin"].as<std::string>();
  if (vm.count("follow")) return follow_events(address, target, format == "json");
  return list_events(address, target, format == "json");
}

}  // namespace dockscaler::cli
