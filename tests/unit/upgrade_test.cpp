// WebSocket upgrade checks (proxy/upgrade): each rule, and their order.
#include <catch2/catch.hpp>

#include <string>

#include "http/parser.hpp"
#include "proxy/upgrade.hpp"

namespace {

using sluice::http::MessageHead;
using sluice::http::Parser;
using sluice::http::ParserHandler;

int status_of(const std::string& extra_headers, const sluice::config::RouteWebSocket& ws,
              const char* request_line = "GET /chat HTTP/1.1") {
  struct H final : ParserHandler {
    Next on_head(MessageHead&) override { return Next::Pause; }
    bool on_body(const char*, std::size_t) override { return true; }
  } h;
  Parser p(Parser::Kind::Request, h, sluice::http::HeadLimits{});
  const std::string text = std::string(request_line) +
                           "\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
                           extra_headers + "\r\n";
  Parser::Result r = p.feed(text.data(), text.size());
  REQUIRE(r.status == Parser::Status::Paused);
  return sluice::proxy::check_websocket_upgrade(p.head(), ws).status;
}

const std::string kGood =
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

}  // namespace

TEST_CASE("upgrade: a valid handshake passes, each broken rule has its status", "[proxy]") {
  sluice::config::RouteWebSocket ws;  // defaults: any origin, but one is required
  CHECK(status_of(kGood + "Origin: http://x\r\n", ws) == 0);
  CHECK(status_of(kGood, ws) == 403);  // no Origin
  ws.allow_missing_origin = true;
  CHECK(status_of(kGood, ws) == 0);
  CHECK(status_of("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ws) == 426);
  CHECK(status_of("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ws) == 426);
  CHECK(status_of("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n", ws) == 400);
  CHECK(status_of(kGood + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ws) == 400);  // two keys
  CHECK(status_of(kGood, ws, "POST /chat HTTP/1.1") == 400);
  ws.enabled = false;
  CHECK(status_of(kGood, ws) == 403);
}

TEST_CASE("upgrade: origins and subprotocols follow the route's allowlists", "[proxy]") {
  sluice::config::RouteWebSocket ws;
  ws.allowed_origins = {"https://*.example.com"};
  ws.subprotocols = {"chat.v2"};
  const std::string good = kGood + "Origin: https://a.example.com\r\n";
  CHECK(status_of(good, ws) == 0);  // no subprotocol offered: fine
  CHECK(status_of(good + "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", ws) == 0);
  CHECK(status_of(good + "Sec-WebSocket-Protocol: CHAT.V2\r\n", ws) == 403);  // case-sensitive
  CHECK(status_of(kGood + "Origin: https://example.com\r\n", ws) == 403);
  CHECK(status_of(kGood + "Origin: https://a.example.com\r\nOrigin: https://b.example.com\r\n", ws) == 403);
}
