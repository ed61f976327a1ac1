// Structured event log lines (see event_log.hpp): rendered once, as text or
// as JSON members, and handed to spdlog as the message.
#include "scaler/event_log.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <atomic>

namespace dockscaler::scaler {

namespace {

std::atomic<bool> structured{false};

// `"msg":"<name>","key":value,...`: the members of the line's object after
// time and level. RapidJSON escapes the strings.
std::string members(std::string_view name, std::initializer_list<log_field> fields) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("msg");
  w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
  for (const auto& f : fields) {
    w.Key(f.key.data(), static_cast<rapidjson::SizeType>(f.key.size()));
    if (f.raw)
      w.RawValue(f.value.data(), f.value.size(), rapidjson::kNumberType);
    else
      w.String(f.value.data(), static_cast<rapidjson::SizeType>(f.value.size()));
  }
  w.EndObject();
  // Without the braces: the formatter puts time and level before them.
  return std::string(sb.GetString() + 1, sb.GetSize() - 2);
}

spdlog::level::level_enum to_spdlog(event_level l) {
  switch (l) {
    case event_level::debug:
      return spdlog::level::debug;
    case event_level::info:
      return spdlog::level::info;
    case event_level::warn:
      return spdlog::level::warn;
  }
  return spdlog::level::info;
}

}  // namespace

void set_structured_events(bool on) { structured = on; }

void log_event(event_level level, std::string_view name, const std::string& text,
               std::initializer_list<log_field> fields) {
  const auto lvl = to_spdlog(level);
  if (!spdlog::should_log(lvl)) return;
  if (!structured) return spdlog::log(lvl, "{}", text);
  spdlog::log(lvl, "{}{}", structured_marker, members(name, fields));
}

}  // namespace dockscaler::scaler
