// Parsing of auth's token and htpasswd files (credential_files.hpp).
#include "config/credential_files.hpp"

#include <set>

namespace dockscaler::config {
namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Calls `line(number, text)` for every line that is neither blank nor a comment.
template <class F>
void each_line(std::string_view text, F line) {
  int number = 0;
  while (!text.empty()) {
    ++number;
    const auto nl = text.find('\n');
    std::string_view l = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!l.empty() && blank(l.back())) l.remove_suffix(1);
    while (!l.empty() && blank(l.front())) l.remove_prefix(1);
    if (l.empty() || l.front() == '#') continue;
    line(number, l);
  }
}

bool bcrypt_hash(std::string_view h) {
  return h.size() == 60 &&
         (h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$"));
}

}  // namespace

std::vector<std::string> parse_token_file(std::string_view text,
                                          std::vector<file_problem>& problems) {
  std::vector<std::string> out;
  each_line(text, [&](int n, std::string_view l) {
    for (const char c : l)
      if (blank(c) || static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
        problems.push_back({n, "a token must be one word of visible characters"});
        return;
      }
    out.emplace_back(l);
  });
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_htpasswd(
    std::string_view text, std::vector<file_problem>& problems) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string, std::less<>> seen;
  each_line(text, [&](int n, std::string_view l) {
    const auto colon = l.find(':');
    if (colon == 0 || colon == std::string_view::npos) {
      problems.push_back({n, "expected user:hash"});
      return;
    }
    const std::string_view user = l.substr(0, colon);
    const std::string_view hash = l.substr(colon + 1);
    if (!bcrypt_hash(hash)) {
      problems.push_back(
          {n, "user '" + std::string(user) +
                  "': only bcrypt hashes are supported (make them with htpasswd -B)"});
      return;
    }
    if (!seen.emplace(user).second) {
      problems.push_back({n, "user '" + std::string(user) + "' is listed twice"});
      return;
    }
    out.emplace_back(user, hash);
  });
  return out;
}

}  // namespace dockscaler::config
