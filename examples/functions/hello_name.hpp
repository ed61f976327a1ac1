// The one piece of logic the hello function examples share, in every format:
// IronFunctions' hello decodes {"Name": ...} over a default of "World";
// anything else (not JSON, not an object, no string Name) keeps the default.
#pragma once

#include <rapidjson/document.h>

#include <string>

inline std::string name_from(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return "World";
  auto it = doc.FindMember("Name");
  if (it == doc.MemberEnd() || !it->value.IsString()) return "World";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}
