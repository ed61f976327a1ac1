// A hostile stdio function for tests/test_hostile_functions.cpp (a static
// binary in a FROM scratch image). After reading its input:
//  - FLOOD=stdout|stderr: writes "y\n" without end (FLOOD_PAUSE_MS between
//    64 KiB writes, default none);
//  - FORGE=1: looks for the init's token wherever a function could —
//    /proc/1/cmdline, /proc/1/environ, its own environment, the init's memory
//    (/proc/1/maps + /proc/1/mem), the init's stdin (/proc/1/fd/0) — prints
//    an exit-0 trailer for every 32-hex-digit candidate it found, says on
//    stderr what it could read, and exits 3. Its caller must see the 3.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <set>
#include <string>

extern char** environ;

namespace {

void put(int fd, const std::string& s) {
  for (std::size_t off = 0; off < s.size();) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) std::exit(1);
    off += static_cast<std::size_t>(n);
  }
}

// A file's contents, or why not (on stderr).
std::string slurp(const char* path, std::size_t max = 1 << 20) {
  const int fd = ::open(path, O_RDONLY | O_NONBLOCK);
  std::string s;
  if (fd < 0) {
    put(2, std::string("hostile: ") + path + ": denied (" + std::strerror(errno) + ")\n");
    return s;
  }
  char buf[65536];
  ssize_t n;
  while (s.size() < max && (n = ::read(fd, buf, sizeof buf)) > 0)
    s.append(buf, static_cast<std::size_t>(n));
  put(2, std::string("hostile: ") + path + ": read " + std::to_string(s.size()) + " bytes\n");
  ::close(fd);
  return s;
}

bool hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// Every run of exactly 32 hex digits.
void candidates(const std::string& s, std::set<std::string>& out) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    while (j < s.size() && hex(s[j])) ++j;
    if (j - i == 32) out.insert(s.substr(i, 32));
    i = j + 1;
  }
}

// The init's writable memory, as a debugger would read it.
std::string init_memory() {
  const std::string maps = slurp("/proc/1/maps");
  const int mem = ::open("/proc/1/mem", O_RDONLY);
  if (mem < 0) {
    put(2, std::string("hostile: /proc/1/mem: denied (") + std::strerror(errno) + ")\n");
    return {};
  }
  std::string out;
  std::size_t pos = 0;
  while (pos < maps.size()) {
    const std::size_t eol = maps.find('\n', pos);
    const std::string line = maps.substr(pos, eol - pos);
    pos = eol == std::string::npos ? maps.size() : eol + 1;
    unsigned long from = 0, to = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &from, &to, perms) != 3 || perms[0] != 'r')
      continue;
    std::string region(std::min<unsigned long>(to - from, 16ul << 20), '\0');
    const ssize_t n = ::pread(mem, region.data(), region.size(), static_cast<off_t>(from));
    if (n > 0) out.append(region.data(), static_cast<std::size_t>(n));
  }
  ::close(mem);
  put(2, "hostile: /proc/1/mem: read " + std::to_string(out.size()) + " bytes\n");
  return out;
}

void forge() {
  std::set<std::string> found;
  candidates(slurp("/proc/1/cmdline"), found);
  candidates(slurp("/proc/1/environ"), found);
  for (char** e = environ; *e; ++e) candidates(*e, found);
  candidates(init_memory(), found);
  candidates(slurp("/proc/1/fd/0", 65536), found);
  // Each forged trailer on its own, a moment apart: each is then the end of
  // what the runner has read when it looks, as the real one would be.
  const timespec apart{0, 50 * 1000 * 1000};
  for (const auto& t : found) {
    put(1,
        "\x1e"
        "dockscaler-exit:" +
            t + ":0\n");
    ::nanosleep(&apart, nullptr);
  }
  put(2, "hostile: " + std::to_string(found.size()) + " token candidates\n");
  std::exit(3);
}

void flood(int fd, long pause_ms) {
  std::string block;
  while (block.size() < 65536) block += "y\n";
  for (;;) {
    put(fd, block);
    if (pause_ms > 0) {
      timespec ts{pause_ms / 1000, (pause_ms % 1000) * 1000000};
      ::nanosleep(&ts, nullptr);
    }
  }
}

}  // namespace

int main() {
  char buf[65536];
  while (::read(0, buf, sizeof buf) > 0) {
  }
  const char* f = std::getenv("FLOOD");
  const char* pause = std::getenv("FLOOD_PAUSE_MS");
  if (f) flood(std::strcmp(f, "stderr") == 0 ? 2 : 1, pause ? std::atol(pause) : 0);
  if (std::getenv("FORGE")) forge();
  put(1, "harmless\n");
  return 0;
}
