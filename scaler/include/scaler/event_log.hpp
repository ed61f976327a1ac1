// Log lines for scale and container events that carry their figures as
// fields, so that a JSON log (`--log-format json`) can be filtered on them
// (service, from, to, reason) instead of parsing a sentence. The text log
// keeps the usual sentence; the JSON log gets the event's name as "msg" and
// one member per field.
#pragma once

#include <concepts>
#include <initializer_list>
#include <string>
#include <string_view>

namespace dockscaler::scaler {

// One field of an event: a string, a whole number or a flag.
struct log_field {
  log_field(std::string_view k, std::string_view v) : key(k), value(v) {}
  log_field(std::string_view k, const char* v) : key(k), value(v) {}
  log_field(std::string_view k, const std::string& v) : key(k), value(v) {}
  log_field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), raw(true) {}
  template <std::integral I>
  log_field(std::string_view k, I v) : key(k), value(std::to_string(v)), raw(true) {}

  std::string key, value;
  bool raw = false;  // written as it is in JSON (a number, true, false)
};

enum class event_level { debug, info, warn };

// With structured events on, the message handed to spdlog is this byte
// followed by ready-made JSON members ("msg":"scale up","service":"hello",
// ...), which the JSON formatter writes as they are (cli/logging.cpp).
inline constexpr char structured_marker = '\x1e';

// Off (the default): events are logged as their text. The daemon turns it on
// for --log-format json.
void set_structured_events(bool on);

// Logs `text` (the sentence for people) or, with structured events on, the
// event `name` and its `fields`.
void log_event(event_level level, std::string_view name, const std::string& text,
               std::initializer_list<log_field> fields);

}  // namespace dockscaler::scaler
