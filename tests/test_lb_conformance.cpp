// HTTP/1.1 conformance table: each row of tests/data/conformance.txt is a raw
// request, the answer RFC 9110/9112 requires and the section it comes from.
// Rows run against the real proxy in front of a real echo backend (which
// answers with the request head it received, or with the response a row
// scripts in an X-Respond field), so a row can check what the client got,
// what the backend saw, and whether anything reached the backend at all.
// The file format is described at its top.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "lb/proxy.hpp"
#include "tests/test_lb_support.hpp"

using namespace dockscaler::lb;
using namespace lbtest;

namespace {

// ---- the table ---------------------------------------------------------------

struct row {
  int line = 0;
  std::string section;
  std::string expect;               // a status, or "close"
  std::vector<std::string> checks;  // unescaped
  std::string request;              // unescaped, may hold the markers below
};

constexpr std::string_view wait_marker = "\x01WAIT\x01";  // {{wait}}: pause for an interim answer
constexpr std::string_view eof_marker = "\x01EOF\x01";    // {{eof}}: half-close here
constexpr std::string_view pause_marker =
    "\x01PAUSE\x01";  // {{pause}}: a separate write 200 ms later

// \r \n \t \s(space) \\ \xHH, {{N*c}} (N copies of c), {{wait}}, {{pause}}, {{eof}}.
std::string unescape(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in.substr(i, 2) == "{{") {
      const auto end = in.find("}}", i);
      REQUIRE(end != std::string_view::npos);
      const auto inner = std::string(in.substr(i + 2, end - i - 2));
      if (inner == "wait") {
        out += wait_marker;
      } else if (inner == "eof") {
        out += eof_marker;
      } else if (inner == "pause") {
        out += pause_marker;
      } else {
        const auto star = inner.find('*');
        REQUIRE(star != std::string::npos);
        out.append(std::stoul(inner.substr(0, star)), inner.at(star + 1));
      }
      i = end + 1;
      continue;
    }
    if (in[i] != '\\' || i + 1 == in.size()) {
      out += in[i];
      continue;
    }
    const char c = in[++i];
    if (c == 'r')
      out += '\r';
    else if (c == 'n')
      out += '\n';
    else if (c == 't')
      out += '\t';
    else if (c == 's')
      out += ' ';
    else if (c == 'x') {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else
      out += c;
  }
  return out;
}

std::vector<row> load_table() {
  std::ifstream f(std::string(DOCKSCALER_TEST_DATA) + "/conformance.txt");
  REQUIRE(f);
  std::vector<row> rows;
  std::string text;
  int n = 0;
  while (std::getline(f, text)) {
    ++n;
    if (text.empty() || text[0] == '#') continue;
    row r;
    r.line = n;
    std::string_view rest = text;
    std::string_view cols[3];
    for (auto& c : cols) {
      const auto bar = rest.find(" | ");
      INFO("conformance.txt:" << n << ": expected `section | expect | checks | request`");
      REQUIRE(bar != std::string_view::npos);
      c = rest.substr(0, bar);
      rest.remove_prefix(bar + 3);
    }
    r.section = std::string(cols[0]);
    r.expect = std::string(cols[1]);
    std::istringstream cs{std::string(cols[2])};
    for (std::string tok; cs >> tok;)
      if (tok != "-") r.checks.push_back(unescape(tok));
    r.request = unescape(rest);
    rows.push_back(std::move(r));
  }
  return rows;
}

// ---- the echo backend ----------------------------------------------------------

// Answers each request with 200 and a body of the request head it received,
// "--body--", and the body; or, when the request carries X-Respond, writes
// that field's value ('~' for CRLF, "HTTP/1.1 " prepended unless present)
// and closes. Counts the connections it accepted, the bytes that arrived
// before a complete head, and the request heads it received; each answer
// names the proxy's port of the connection it came on (X-Peer-Port).
class echo_backend {
 public:
  echo_backend() : server_("echo", [this](tcp::socket& s) { serve(s); }) {}
  std::uint16_t port() const { return server_.port(); }
  int connections() const { return server_.connections; }
  std::set<unsigned short> peers() {
    std::lock_guard lock(mu_);
    return peers_;
  }
  std::atomic<int> requests{0};
  std::atomic<long> bytes{0};

 private:
  void serve(tcp::socket& s) {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    const auto peer = s.remote_endpoint(ec).port();
    {
      std::lock_guard lock(mu_);
      peers_.insert(peer);
    }
    for (;;) {
      auto data = [&] {
        return std::string_view(static_cast<const char*>(buf.data().data()), buf.size());
      };
      while (data().find("\r\n\r\n") == std::string_view::npos) {
        const auto n = s.read_some(buf.prepare(4096), ec);
        if (ec) return;
        bytes += static_cast<long>(n);
        buf.commit(n);
      }
      const std::string raw_head(data().substr(0, data().find("\r\n\r\n") + 4));
      ++requests;
      http::request_parser<http::string_body> p;
      p.body_limit(boost::none);
      http::read(s, buf, p, ec);
      if (ec) return;
      const auto& req = p.get();
      if (req.count("X-Respond")) {
        const std::string text(req["X-Respond"]);
        std::string out = text.rfind("HTTP/", 0) == 0 ? "" : "HTTP/1.1 ";
        for (char c : text) out += c == '~' ? std::string("\r\n") : std::string(1, c);
        asio::write(s, asio::buffer(out), ec);
        s.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
      const std::string body = raw_head + "--body--\r\n" + req.body();
      std::string out =
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Peer-Port: " + std::to_string(peer) +
          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
      if (req.method() != http::verb::head) out += body;
      asio::write(s, asio::buffer(out), ec);
      if (ec || !req.keep_alive()) {
        s.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
    }
  }

  backend server_;
  std::mutex mu_;
  std::set<unsigned short> peers_;  // the proxy-side ports of the connections accepted
};

// ---- the client side -------------------------------------------------------------

struct response {
  unsigned status = 0;
  std::string head;  // raw, status line to the empty line
  std::string body;
};

struct exchange {
  std::vector<response> interim;  // 1xx
  std::vector<response> final;
  bool closed = false;  // the proxy closed the connection
  std::string raw;
};

// Parses the complete responses in `raw`. The first final one has no body
// when `head_first` (an answer to HEAD).
void parse_responses(exchange& x, bool head_first) {
  x.interim.clear();
  x.final.clear();
  std::size_t off = 0;
  while (off < x.raw.size()) {
    http::response_parser<http::string_body> p;
    p.eager(true);
    p.body_limit(boost::none);
    if (head_first && x.final.empty()) p.skip(true);
    boost::system::error_code ec;
    const auto used = p.put(asio::buffer(x.raw.data() + off, x.raw.size() - off), ec);
    if (!ec && !p.is_done() && x.closed && p.is_header_done()) p.put_eof(ec);  // close-delimited
    if (ec || !p.is_done()) return;
    response r;
    r.status = p.get().result_int();
    r.head = x.raw.substr(off, x.raw.find("\r\n\r\n", off) + 4 - off);
    r.body = p.get().body();
    (r.status < 200 ? x.interim : x.final).push_back(std::move(r));
    off += used;
  }
}

exchange run_exchange(std::uint16_t port, const std::string& request, std::size_t want,
                      bool until_close, bool head_first) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  set_socket_timeout(s, 4s);
  exchange x;
  boost::system::error_code ec;
  char tmp[8192];
  auto read_once = [&] {
    const auto n = s.read_some(asio::buffer(tmp), ec);
    if (ec == asio::error::eof || ec == asio::error::connection_reset) x.closed = true;
    if (!ec) x.raw.append(tmp, n);
    return !ec;
  };
  std::string_view rest = request;
  for (;;) {
    const auto w = rest.find(wait_marker);
    const auto e = rest.find(eof_marker);
    const auto pz = rest.find(pause_marker);
    const auto cut = std::min({w, e, pz});
    asio::write(s, asio::buffer(rest.substr(0, cut)), ec);
    if (cut == std::string_view::npos) break;
    if (cut == pz) {
      std::this_thread::sleep_for(200ms);  // the bytes before must arrive as a read of their own
      rest = rest.substr(pz + pause_marker.size());
    } else if (cut == e) {
      s.shutdown(tcp::socket::shutdown_send, ec);
      rest = rest.substr(e + eof_marker.size());
    } else {
      read_once();  // the interim answer (or whatever comes first)
      rest = rest.substr(w + wait_marker.size());
    }
  }
  const auto end = std::chrono::steady_clock::now() + 6s;
  for (;;) {
    parse_responses(x, head_first);
    if (x.closed || std::chrono::steady_clock::now() > end) break;
    if (!until_close && x.final.size() >= want) break;
    if (!read_once() && !x.closed) break;
  }
  parse_responses(x, head_first);
  return x;
}

bool has_check(const row& r, std::string_view c) {
  return std::find(r.checks.begin(), r.checks.end(), c) != r.checks.end();
}

// then=200,400: statuses of the responses after the first.
std::vector<unsigned> then_statuses(const row& r) {
  std::vector<unsigned> out;
  for (const auto& c : r.checks)
    if (c.rfind("then=", 0) == 0) {
      std::istringstream in(c.substr(5));
      for (std::string s; std::getline(in, s, ',');)
        out.push_back(static_cast<unsigned>(std::stoul(s)));
    }
  return out;
}

std::size_t count_of(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = hay.find(needle); at != std::string_view::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

// One check of a row against the exchange; `seen` is what the backend echoed.
void check_one(const std::string& c, const exchange& x, int backend_delta) {
  INFO("check " << c);
  const response* first = x.final.empty() ? nullptr : &x.final.front();
  const std::string seen = first ? first->body : std::string();
  const std::string head = first ? first->head : std::string();
  auto arg = [&](std::size_t prefix) { return c.substr(prefix); };
  if (c.rfind("backend=", 0) == 0) {
    CHECK(backend_delta == std::stoi(arg(8)));
  } else if (c.rfind("seen~", 0) == 0) {
    CHECK_THAT(seen, Catch::Contains(arg(5)));
  } else if (c.rfind("seen!", 0) == 0) {
    CHECK_THAT(seen, !Catch::Contains(arg(5), Catch::CaseSensitive::No));
  } else if (c.rfind("head~", 0) == 0) {
    CHECK_THAT(head, Catch::Contains(arg(5)));
  } else if (c.rfind("head!", 0) == 0) {
    CHECK_THAT(head, !Catch::Contains(arg(5), Catch::CaseSensitive::No));
  } else if (c.rfind("head#", 0) == 0 || c.rfind("seen#", 0) == 0) {  // TEXT=N: TEXT occurs N times
    const auto eq = c.rfind('=');
    CHECK(count_of(c[0] == 'h' ? head : seen, c.substr(5, eq - 5)) == std::stoul(c.substr(eq + 1)));
  } else if (c.rfind("body=", 0) == 0) {
    CHECK(seen == arg(5));
  } else if (c == "closed") {
    CHECK(x.closed);
  } else if (c == "got100") {
    CHECK((!x.interim.empty() && x.interim.front().status == 100));
  } else if (c == "no100") {
    CHECK(x.interim.empty());
  } else if (c.rfind("then=", 0) == 0 || c == "trusted" || c == "head") {
    // handled by the caller
  } else {
    FAIL("unknown check " << c);
  }
}

// What the backend had received before a row.
struct backend_counts {
  int connections;
  int requests;
  long bytes;
  std::set<unsigned short> peers;
};

backend_counts counts_of(echo_backend& be) {
  return {be.connections(), be.requests, be.bytes, be.peers()};
}

// backend=0, with no slack: not a connection, not a byte, not a head reached
// the backend. A barrier request through the same proxy closes the window:
// if it comes on a connection new to the backend, any connection the row
// opened was accepted (and counted) before it; if it comes on a pooled one,
// the row's bytes on that connection were read before it.
void check_nothing_reached(echo_backend& be, std::uint16_t port, const backend_counts& before) {
  client c(port);
  const auto r = c.get("/barrier");
  REQUIRE(r.result_int() == 200);
  const auto peer = static_cast<unsigned short>(std::stoi(std::string(r["X-Peer-Port"])));
  const bool new_connection = before.peers.count(peer) == 0;
  const auto head_bytes = static_cast<long>(r.body().find("--body--"));
  CHECK(be.connections() - before.connections == (new_connection ? 1 : 0));
  CHECK(be.requests - before.requests == 1);
  CHECK(be.bytes - before.bytes == head_bytes);
}

}  // namespace

TEST_CASE("HTTP/1.1 conformance table (tests/data/conformance.txt)", "[lb][net][conformance]") {
  const auto rows = load_table();
  REQUIRE(rows.size() >= 100);

  echo_backend be;
  proxy_options o;
  o.listen = {"127.0.0.1:0"};
  o.threads = 1;
  o.max_header_bytes = 8192;
  o.max_body_bytes = 1000;
  o.timeouts.header = 3s;
  o.timeouts.idle = 3s;
  o.timeouts.response = 4s;
  proxy untrusted(o);
  o.trusted_proxies = {*parse_cidr("127.0.0.0/8")};
  proxy trusted(o);
  for (proxy* p : {&untrusted, &trusted}) {
    service_options root;
    root.name = "root";
    p->add_service(root);
    p->add_backend("root", "127.0.0.1", be.port());
    service_options pre;
    pre.name = "pre";
    pre.route.path_prefix = "/pre";
    pre.route.strip_prefix = true;
    p->add_service(pre);
    p->add_backend("pre", "127.0.0.1", be.port());
    p->start();
  }

  for (const auto& r : rows) {
    INFO("conformance.txt:" << r.line << " (" << r.section << ")");
    const auto then = then_statuses(r);
    const bool close_expected = r.expect == "close";
    const bool until_close = close_expected || has_check(r, "closed");
    const int before = be.requests.load();
    const auto counts = counts_of(be);
    const auto port = (has_check(r, "trusted") ? trusted : untrusted).port();
    const auto x =
        run_exchange(port, r.request, 1 + then.size(), until_close, has_check(r, "head"));
    // The backend may still be reading the last request of the row: give it a moment
    // when the row counts requests.
    for (const auto& c : r.checks)
      if (c.rfind("backend=", 0) == 0)
        eventually([&] { return be.requests - before >= std::stoi(c.substr(8)); }, 1s);
    const int delta = be.requests.load() - before;
    INFO("client got:\n" << x.raw);
    if (close_expected) {
      CHECK(x.final.empty());
      CHECK(x.closed);
    } else {
      CHECK_FALSE(x.final.empty());
      if (!x.final.empty())
        CHECK(x.final.front().status == static_cast<unsigned>(std::stoul(r.expect)));
      CHECK(x.final.size() == 1 + then.size());
      for (std::size_t i = 0; i < then.size() && i + 1 < x.final.size(); ++i)
        CHECK(x.final[i + 1].status == then[i]);
    }
    for (const auto& c : r.checks) check_one(c, x, delta);
    if (has_check(r, "backend=0")) check_nothing_reached(be, port, counts);
  }
}
