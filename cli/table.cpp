// See table.hpp. Widths count characters, not bytes, so "µs" stays aligned.
#include "table.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace dockscaler::cli {

std::string seconds_text(double s) {
  char buf[32];
  if (!(s > 0)) return "0s";
  if (s < 0.001)
    std::snprintf(buf, sizeof buf, "%.0fµs", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.1fms", s * 1000);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else
    return age_text(static_cast<long long>(s));
  return buf;
}

std::string age_text(long long s) {
  char buf[48];
  if (s < 0) s = 0;
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%llds", s / 60, s % 60);
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%lldm", s / 3600, s % 3600 / 60);
  else
    std::snprintf(buf, sizeof buf, "%lldd%lldh", s / 86400, s % 86400 / 3600);
  return buf;
}

std::string field_name(const std::string& header) {
  std::string f = header;
  for (char& c : f) c = c == ' ' || c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return f;
}

namespace {

std::size_t width_of(const std::string& s) {
  // UTF-8 continuation bytes take no column.
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

void print_aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], width_of(r[i]));
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - width_of(r[i]) + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

// The columns --format names, in its order.
std::vector<std::size_t> format_columns(const std::vector<std::string>& header,
                                        const std::string& format) {
  std::vector<std::size_t> out;
  std::size_t from = 0;
  for (;;) {
    const auto comma = format.find(',', from);
    const std::string want = field_name(format.substr(from, comma - from));
    std::size_t i = 0;
    while (i < header.size() && field_name(header[i]) != want) ++i;
    if (i == header.size()) {
      std::string known;
      for (const auto& h : header) known += (known.empty() ? "" : ", ") + field_name(h);
      throw std::invalid_argument("--format: unknown field '" + want +
                                  "'; the fields are: " + known);
    }
    out.push_back(i);
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}

void print(const table& t, const table_style& style) {
  if (style.quiet) {
    for (const auto& r : t.rows) std::printf("%s\n", r[t.key].c_str());
    return;
  }
  if (style.format.empty()) {
    std::vector<std::vector<std::string>> all = {t.header};
    all.insert(all.end(), t.rows.begin(), t.rows.end());
    print_aligned(all);
    return;
  }
  const auto cols = format_columns(t.header, style.format);
  for (const auto& r : t.rows) {
    std::string line;
    for (std::size_t i = 0; i < cols.size(); ++i) line += (i ? "\t" : "") + r[cols[i]];
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace dockscaler::cli
