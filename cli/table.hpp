// The tables `status` and `ps` print, and what they print instead with -q or
// --format: one row per service or container, numbers with their units.
#pragma once

#include <string>
#include <vector>

namespace dockscaler::cli {

// Seconds as a duration with its unit: "0s", "850us", "609.5ms", "1.2s", "2m5s".
std::string seconds_text(double s);
// An age in whole seconds: "45s", "3m12s", "2h5m", "3d4h".
std::string age_text(long long s);

// Rows under a header row. `key` is the column -q prints.
struct table {
  std::vector<std::string> header;  // "SERVICE", "IN-FLIGHT", "LAST DECISION", ...
  std::vector<std::vector<std::string>> rows;
  std::size_t key = 0;
};

// How a table is printed: aligned with its header (default), the key column
// only (-q), or the --format fields tab-separated without a header.
struct table_style {
  bool quiet = false;
  std::string format;  // "service,ready,wait-p95"; empty: the whole table
};

// A column's field name for --format: its header lower-cased, spaces as '-'
// ("IN-FLIGHT" -> "in-flight", "LAST DECISION" -> "last-decision").
std::string field_name(const std::string& header);

// The columns of `header` that `format` names, in its order. Throws
// std::invalid_argument naming the known fields for a name that is not one of them.
std::vector<std::size_t> format_columns(const std::vector<std::string>& header,
                                        const std::string& format);

// Prints `t` to stdout. Throws as format_columns does.
void print(const table& t, const table_style& style);

}  // namespace dockscaler::cli
