// dockerapi/detail/json_util.hpp: the small RapidJSON helpers every Docker
// JSON mapping uses: lenient readers (missing or null reads as empty/zero, as
// the daemon omits many fields) and writer shorthands. Private to dockerapi.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dockerapi/error.hpp"
#include "json/parse.hpp"

namespace dockscaler::dockerapi::detail::json_util {

using value = rapidjson::Value;

inline rapidjson::Document parse(std::string_view json, const char* what) {
  rapidjson::Document d;
  if (auto e = dockscaler::json::parse_untrusted(d, json, dockscaler::json::docker_reply_depth);
      !e.empty())
    throw error(errc::protocol,
                std::string("dockerapi: malformed JSON in ") + what + " reply: " + e);
  return d;
}

[[noreturn]] inline void wrong_shape(const char* what, const char* expected) {
  throw error(errc::protocol,
              std::string("dockerapi: unexpected ") + what + " reply: expected " + expected);
}

inline const value* member(const value& o, const char* name) {
  if (!o.IsObject()) return nullptr;
  auto it = o.FindMember(name);
  if (it == o.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

inline std::string str(const value& o, const char* name) {
  auto* v = member(o, name);
  return v && v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : std::string();
}

inline std::int64_t num(const value& o, const char* name) {
  auto* v = member(o, name);
  if (!v) return 0;
  if (v->IsInt64()) return v->GetInt64();
  if (v->IsUint64()) return static_cast<std::int64_t>(v->GetUint64());
  if (v->IsDouble()) return static_cast<std::int64_t>(v->GetDouble());
  return 0;
}

inline int inum(const value& o, const char* name) { return static_cast<int>(num(o, name)); }

inline bool boolean(const value& o, const char* name) {
  auto* v = member(o, name);
  return v && v->IsBool() && v->GetBool();
}

inline std::vector<std::string> strings(const value* v) {
  std::vector<std::string> out;
  if (v && v->IsArray())
    for (auto& e : v->GetArray())
      if (e.IsString()) out.emplace_back(e.GetString(), e.GetStringLength());
  return out;
}

inline std::optional<std::vector<std::string>> opt_strings(const value* v) {
  if (!v || !v->IsArray()) return std::nullopt;
  return strings(v);
}

inline std::map<std::string, std::string> string_map(const value* v) {
  std::map<std::string, std::string> out;
  if (v && v->IsObject())
    for (auto& m : v->GetObject())
      if (m.value.IsString())
        out.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                    std::string(m.value.GetString(), m.value.GetStringLength()));
  return out;
}

inline const value& object(const rapidjson::Document& d, const char* what) {
  if (!d.IsObject()) wrong_shape(what, "an object");
  return d;
}

inline const value& array(const rapidjson::Document& d, const char* what) {
  if (!d.IsArray()) wrong_shape(what, "an array");
  return d;
}

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

inline void key(writer& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}
inline void string(writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
inline void string_array(writer& w, std::string_view k, const std::vector<std::string>& v) {
  key(w, k);
  w.StartArray();
  for (auto& s : v) string(w, s);
  w.EndArray();
}
inline void string_object(writer& w, std::string_view k,
                          const std::map<std::string, std::string>& m) {
  key(w, k);
  w.StartObject();
  for (auto& [a, b] : m) {
    key(w, a);
    string(w, b);
  }
  w.EndObject();
}
// Fields the spec may leave unset are left out, so the daemon's defaults apply.
inline void opt_string(writer& w, std::string_view k, const std::optional<std::string>& v) {
  if (!v) return;
  key(w, k);
  string(w, *v);
}
template <class Int>
inline void opt_int64(writer& w, std::string_view k, const std::optional<Int>& v) {
  if (!v) return;
  key(w, k);
  w.Int64(static_cast<std::int64_t>(*v));
}
inline void flag(writer& w, std::string_view k, bool v) {
  key(w, k);
  w.Bool(v);
}
inline void empty_object(writer& w, std::string_view k) {
  key(w, k);
  w.StartObject();
  w.EndObject();
}

}  // namespace dockscaler::dockerapi::detail::json_util
