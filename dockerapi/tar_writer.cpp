// dockerapi/tar_writer.cpp: see tar_writer.hpp (POSIX ustar format).
#include "dockerapi/tar_writer.hpp"

#include <cstdio>
#include <cstring>

#include "dockerapi/error.hpp"

namespace dockscaler::dockerapi {

namespace {
// Writes `value` as zero-padded octal into field[0..len-1), NUL-terminated.
void octal(char* field, std::size_t len, unsigned long long value) {
  std::snprintf(field, len, "%0*llo", static_cast<int>(len - 1), value);
}
}  // namespace

void tar_writer::header(std::string_view name, char type, unsigned mode, std::size_t size) {
  char h[512];
  std::memset(h, 0, sizeof h);
  std::string_view prefix, base = name;
  if (name.size() > 100) {
    // ustar splits long names at a '/' into prefix (155) and name (100).
    auto slash = name.rfind('/', 155);
    if (slash == std::string_view::npos || name.size() - slash - 1 > 100 || slash == 0)
      throw error(errc::invalid_argument, "tar_writer: name too long: " + std::string(name));
    prefix = name.substr(0, slash);
    base = name.substr(slash + 1);
  }
  if (name.empty()) throw error(errc::invalid_argument, "tar_writer: empty name");
  std::memcpy(h, base.data(), base.size());
  octal(h + 100, 8, mode & 07777);
  octal(h + 108, 8, 0);  // uid
  octal(h + 116, 8, 0);  // gid
  octal(h + 124, 12, size);
  octal(h + 136, 12, 0);  // mtime: fixed, so equal contexts give equal archives
  std::memset(h + 148, ' ', 8);
  h[156] = type;
  std::memcpy(h + 257, "ustar", 6);
  // The version is two digits with no terminator (POSIX ustar).
  std::memcpy(h + 263, "00", 2);  // NOLINT(bugprone-not-null-terminated-result)
  if (!prefix.empty()) std::memcpy(h + 345, prefix.data(), prefix.size());
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  out_.append(h, sizeof h);
}

void tar_writer::add_file(std::string_view name, std::string_view content, unsigned mode) {
  header(name, '0', mode, content.size());
  out_.append(content);
  out_.append((512 - content.size() % 512) % 512, '\0');
}

void tar_writer::add_directory(std::string_view name, unsigned mode) {
  std::string n(name);
  if (n.empty() || n.back() != '/') n += '/';
  header(n, '5', mode, 0);
}

std::string tar_writer::finish() {
  out_.append(1024, '\0');
  return std::move(out_);
}

}  // namespace dockscaler::dockerapi
