// libFuzzer target for the request path up to the upstream: arbitrary client
// bytes through the parser, then, for every head, what a session does before
// any I/O: host normalisation, routing, the WebSocket upgrade checks and the
// rewriting of the head for the upstream. ASan and UBSan watch every step;
// the checks below are the invariants the session relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/forward.hpp"
#include "http/headers.hpp"
#include "http/parser.hpp"
#include "proxy/router.hpp"
#include "proxy/upgrade.hpp"

namespace {

using sluice::http::MessageHead;
using sluice::http::Parser;
using sluice::http::ParserHandler;

void check(bool ok) {
  if (!ok) std::abort();
}

std::vector<sluice::config::Route> make_routes() {
  std::vector<sluice::config::Route> routes(4);
  routes[0].host = "*";
  routes[0].path_prefix = "/";
  routes[1].host = "*.example.com";
  routes[1].path_prefix = "/api/";
  routes[1].strip_prefix = true;
  routes[2].host = "chat.example.com";
  routes[2].path_prefix = "/chat";
  routes[2].websocket.allowed_origins = {
      sluice::ws::parse_origin_pattern("https://chat.example.com").value()};
  routes[2].websocket.subprotocols = {"chat.v2"};
  routes[3].host = "off.test";
  routes[3].websocket.enabled = false;
  return routes;
}

struct Handler final : ParserHandler {
  explicit Handler(const sluice::proxy::Router& r) : router(r) {}

  Next on_head(MessageHead& head) override {
    std::string_view url = head.url();
    std::string_view authority = head.find("host").value_or(std::string_view{});
    char host[256];
    std::size_t host_len = 0;
    if (!authority.empty() && !sluice::http::normalise_host(authority, host, sizeof host, host_len)) {
      return Next::Continue;  // the session answers 400
    }
    check(host_len <= sizeof host);
    const sluice::config::Route* route = router.match(std::string_view(host, host_len), url);
    if (!route) return Next::Continue;
    check(url.substr(0, route->path_prefix.size()) == route->path_prefix);
    if (head.upgrade) {
      const int status = sluice::proxy::check_websocket_upgrade(head, route->websocket).status;
      check(status == 0 || status == 400 || status == 403 || status == 426 || status == 501);
      return Next::Continue;
    }
    std::string_view path = route->strip_prefix ? url.substr(route->path_prefix.size()) : url;
    sluice::http::RequestForward f;
    f.path = path;
    f.host = std::string_view(host, host_len);
    f.fallback_host = "127.0.0.1:9000";
    f.client_ip = "192.0.2.1";
    sluice::http::write_upstream_head(head, f, out);
    // What goes upstream is one well-formed head: a request line, CRLF-ended
    // lines, one empty line at the very end, no bare CR or LF anywhere.
    check(out.size() >= 4 && out.compare(out.size() - 4, 4, "\r\n\r\n") == 0);
    check(out.find("\r\n\r\n") == out.size() - 4);
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i] == '\n') check(i > 0 && out[i - 1] == '\r');
      if (out[i] == '\r') check(i + 1 < out.size() && out[i + 1] == '\n');
    }
    return Next::Continue;
  }
  bool on_body(const char*, std::size_t) override { return true; }

  const sluice::proxy::Router& router;
  std::string out;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<sluice::config::Route> routes = make_routes();
  static const sluice::proxy::Router router(routes);
  Handler h(router);
  Parser parser(Parser::Kind::Request, h, sluice::http::HeadLimits{2048, 32, 512});
  std::vector<char> input(data, data + size);  // exactly sized: ASan sees an overread
  std::size_t off = 0;
  for (int rounds = 0; off < input.size() && rounds < 4096; ++rounds) {
    Parser::Result r = parser.feed(input.data() + off, input.size() - off);
    check(r.consumed <= input.size() - off);
    off += r.consumed;
    if (r.status == Parser::Status::Error) return 0;
    if (r.status == Parser::Status::Paused) {
      if (parser.upgraded()) return 0;
      parser.resume();
    }
  }
  return 0;
}
