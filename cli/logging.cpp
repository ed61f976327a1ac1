// spdlog configuration (see logging.hpp). The JSON format escapes the message
// with a custom flag, since spdlog's %v writes it raw; scale and container
// events bring their fields as JSON members of their own.
#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string_view>

#include "scaler/event_log.hpp"

namespace dockscaler::cli {

namespace {

// The line's members after time and level: "msg" with the message escaped,
// or, for a structured event (scaler/event_log.hpp), its ready-made members.
class json_message_flag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == scaler::structured_marker) {
      dest.append(payload.substr(1));
      return;
    }
    dest.append(std::string_view("\"msg\":\""));
    escape(payload, dest);
    dest.push_back('"');
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message_flag>();
  }

 private:
  static void escape(std::string_view text, spdlog::memory_buf_t& dest) {
    for (char c : text) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            dest.append(std::string_view(buf));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
};

// The level as --log-level spells it ("warn", where spdlog's own %l says
// "warning"); it takes %l's place in both formats, padding included.
class level_name_flag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view n = name(msg.level);
    const std::string pad(padinfo_.width_ > n.size() ? padinfo_.width_ - n.size() : 0, ' ');
    const bool pad_after = padinfo_.side_ == spdlog::details::padding_info::pad_side::right;
    if (!pad_after) dest.append(std::string_view(pad));
    dest.append(n);
    if (pad_after) dest.append(std::string_view(pad));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<level_name_flag>();
  }

 private:
  static std::string_view name(spdlog::level::level_enum l) {
    switch (l) {
      case spdlog::level::trace:
        return "trace";
      case spdlog::level::debug:
        return "debug";
      case spdlog::level::info:
        return "info";
      case spdlog::level::warn:
        return "warn";
      case spdlog::level::err:
        return "error";
      case spdlog::level::critical:
        return "critical";
      default:
        return "off";
    }
  }
};

// A formatter for `pattern` whose %l is level_name_flag.
std::unique_ptr<spdlog::pattern_formatter> level_named(const std::string& pattern) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<level_name_flag>('l').set_pattern(pattern);
  return f;
}

}  // namespace

void setup_logging(const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_logger_mt("dockscaler");
  if (format == "json") {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<level_name_flag>('l');
    f->add_flag<json_message_flag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%*})");
    logger->set_formatter(std::move(f));
  } else {
    logger->set_formatter(level_named("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v"));
  }
  scaler::set_structured_events(format == "json");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace dockscaler::cli
