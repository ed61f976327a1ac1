// The dashboard's page, scripts and styles, embedded in the binary: the .cpp
// is generated at build time from admin/dashboard/ and third_party/uplot/ by
// cmake/embed_files.cmake, so the daemon reads no file at run time.
#pragma once

#include <span>
#include <string_view>

namespace dockscaler::admin::detail {

struct embedded_file {
  std::string_view name;  // the file's name, "app.js"
  std::string_view body;
};

std::span<const embedded_file> dashboard_assets();

}  // namespace dockscaler::admin::detail
