// The files a service's auth names (docs/proxy.md "Authentication"): a bearer
// token file (one token per line) and an htpasswd file of bcrypt entries as
// `htpasswd -B` writes them. Parsed here, checked against requests by the
// proxy. Blank lines and lines starting with '#' are ignored in both.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dockscaler::config {

// What is wrong with one line of such a file (1-based).
struct file_problem {
  int line = 0;
  std::string message;
};

// Tokens in file order. A token holds no blank; trailing blanks and CR are dropped.
std::vector<std::string> parse_token_file(std::string_view text,
                                          std::vector<file_problem>& problems);

// (user, hash) pairs in file order. Only bcrypt hashes ($2y$, $2b$, $2a$) are
// accepted; a user named twice is a problem.
std::vector<std::pair<std::string, std::string>> parse_htpasswd(
    std::string_view text, std::vector<file_problem>& problems);

}  // namespace dockscaler::config
