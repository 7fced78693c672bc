// WebSocket upgrade checks (proxy/upgrade): each rule, and their order.
#include <catch2/catch.hpp>

#include <string>

#include "http/parser.hpp"
#include "proxy/upgrade.hpp"
#include "ws/handshake.hpp"

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

// A parsed head, kept alive with its parser.
struct Parsed final : ParserHandler {
  Parsed(const std::string& text, Parser::Kind kind)
      : parser(kind, *this, sluice::http::HeadLimits{}) {
    Parser::Result r = parser.feed(text.data(), text.size());
    REQUIRE(r.status == Parser::Status::Paused);
  }
  Next on_head(MessageHead&) override { return Next::Pause; }
  bool on_body(const char*, std::size_t) override { return true; }
  Parser parser;
};

const std::string kKey = "AQIDBAUGBwgJCgsMDQ4PEA==";

sluice::proxy::SwitchCheck switch_of(const std::string& extra_headers,
                                     std::string_view protocols = "",
                                     std::string_view extensions = "") {
  Parsed p("HTTP/1.1 101 Switching Protocols\r\n" + extra_headers + "\r\n", Parser::Kind::Response);
  return sluice::proxy::check_websocket_switch(p.parser.head(), kKey, protocols, extensions);
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
  ws.allowed_origins = {sluice::ws::parse_origin_pattern("https://*.example.com").value()};
  ws.subprotocols = {"chat.v2"};
  const std::string good = kGood + "Origin: https://a.example.com\r\n";
  CHECK(status_of(good, ws) == 0);  // no subprotocol offered: fine
  CHECK(status_of(good + "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", ws) == 0);
  CHECK(status_of(good + "Sec-WebSocket-Protocol: CHAT.V2\r\n", ws) == 403);  // case-sensitive
  CHECK(status_of(kGood + "Origin: https://example.com\r\n", ws) == 403);
  CHECK(status_of(kGood + "Origin: https://a.example.com\r\nOrigin: https://b.example.com\r\n", ws) == 403);
}

TEST_CASE("upgrade: an upgrade needs the upgrade token in Connection", "[proxy]") {
  auto is_upgrade = [](const std::string& head) {
    Parsed p(head + "\r\n", Parser::Kind::Request);
    return sluice::proxy::is_upgrade_request(p.parser.head());
  };
  CHECK(is_upgrade("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, UPGRADE\r\n"));
  CHECK_FALSE(is_upgrade("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"));
  CHECK_FALSE(is_upgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"));
  CHECK(is_upgrade("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n"));
}

TEST_CASE("upgrade: the upstream is offered only allowed subprotocols, extensions when passed through",
          "[proxy]") {
  Parsed p("GET /chat HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Protocol: a, b\r\n"
           "Sec-WebSocket-Protocol: c, a\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
           Parser::Kind::Request);
  sluice::config::RouteWebSocket ws;
  CHECK(sluice::proxy::offered_subprotocols(p.parser.head(), ws) == "a, b, c");
  ws.subprotocols = {"c", "b"};
  CHECK(sluice::proxy::offered_subprotocols(p.parser.head(), ws) == "b, c");  // the client's order
  CHECK(sluice::proxy::offered_extensions(p.parser.head(), ws).empty());
  ws.extensions = sluice::config::RouteWebSocket::Extensions::Passthrough;
  CHECK(sluice::proxy::offered_extensions(p.parser.head(), ws) == "permessage-deflate");
}

TEST_CASE("upgrade: the upstream's 101 must answer our key and pick only what was offered",
          "[proxy]") {
  const std::string ok = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                         sluice::ws::accept_for(kKey) + "\r\n";
  CHECK(switch_of(ok).status == 0);
  CHECK_FALSE(switch_of(ok).deflate);
  CHECK(switch_of("Upgrade: websocket\r\nConnection: Upgrade\r\n").status == 502);  // no accept
  CHECK(switch_of("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                  sluice::ws::accept_for("dGhlIHNhbXBsZSBub25jZQ==") + "\r\n").status == 502);
  CHECK(switch_of(ok + "Sec-WebSocket-Accept: " + sluice::ws::accept_for(kKey) + "\r\n").status == 502);
  CHECK(switch_of("Connection: Upgrade\r\nSec-WebSocket-Accept: " + sluice::ws::accept_for(kKey) +
                  "\r\n").status == 502);  // no Upgrade: websocket
  CHECK(switch_of(ok + "Sec-WebSocket-Protocol: b\r\n", "a, b").status == 0);
  CHECK(switch_of(ok + "Sec-WebSocket-Protocol: c\r\n", "a, b").status == 502);
  CHECK(switch_of(ok + "Sec-WebSocket-Protocol: a\r\n").status == 502);  // none offered
  CHECK(switch_of(ok + "Sec-WebSocket-Protocol: a, b\r\n", "a, b").status == 502);
  CHECK(switch_of(ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n").status == 502);
  const auto deflate = switch_of(ok + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
                                 "", "permessage-deflate");
  CHECK(deflate.status == 0);
  CHECK(deflate.deflate);
  CHECK(switch_of(ok + "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n", "", "x-webkit-deflate-frame")
            .status == 502);
  // Chosen, but the client offered something else.
  CHECK(switch_of(ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n", "", "x-webkit-deflate-frame")
            .status == 502);
  CHECK(switch_of(ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n", "",
                  "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits")
            .status == 0);
  CHECK(switch_of(ok + "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n", "",
                  "permessage-deflate").status == 502);
}
