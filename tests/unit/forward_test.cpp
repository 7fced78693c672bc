// Head rewriting (http/forward): what crosses the proxy and what does not.
#include <catch2/catch.hpp>

#include <string>

#include "http/forward.hpp"
#include "http/parser.hpp"

namespace {

using sluice::http::MessageHead;
using sluice::http::Parser;
using sluice::http::ParserHandler;

// Parses one message head and keeps the parser (which owns the head) alive.
struct Parsed final : ParserHandler {
  explicit Parsed(const std::string& text, Parser::Kind kind = Parser::Kind::Request)
      : parser(kind, *this, sluice::http::HeadLimits{}) {
    Parser::Result r = parser.feed(text.data(), text.size());
    REQUIRE(r.status == Parser::Status::Paused);
    REQUIRE(parser.head_complete());
  }
  Next on_head(MessageHead&) override { return Next::Pause; }
  bool on_body(const char*, std::size_t) override { return true; }
  MessageHead& head() { return parser.head(); }
  Parser parser;
};

std::string upstream_head(const std::string& request, std::string_view path, std::string_view host,
                          bool http10 = false, bool trust_xff = true) {
  Parsed p(request);
  sluice::http::RequestForward f;
  f.path = path;
  f.host = host;
  f.fallback_host = "10.0.0.9:8000";
  f.client_ip = "192.0.2.7";
  f.client_http10 = http10;
  f.trust_client_xff = trust_xff;
  std::string out = "stale bytes from the last request";
  sluice::http::write_upstream_head(p.head(), f, out);
  return out;
}

}  // namespace

TEST_CASE("http forward: request head loses hop-by-hop fields and gains forwarding fields",
          "[http]") {
  const std::string out = upstream_head(
      "POST /api/x?q=1 HTTP/1.1\r\n"
      "Host: Example.COM:8080\r\n"
      "Connection: keep-alive, X-Secret-Hop\r\n"
      "X-Secret-Hop: 1\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Sum\r\n"
      "Upgrade: something\r\n"
      "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
      "X-Forwarded-For: 203.0.113.1\r\n"
      "X-Forwarded-For: 203.0.113.2\r\n"
      "X-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: spoofed.example\r\n"
      "Via: 1.1 edge\r\n"
      "Expect: 100-continue\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Accept: */*\r\n"
      "\r\n",
      "/x?q=1", "example.com");
  CHECK(out ==
        "POST /x?q=1 HTTP/1.1\r\n"
        "Host: Example.COM:8080\r\n"
        "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        "Accept: */*\r\n"
        "X-Forwarded-For: 203.0.113.1, 203.0.113.2, 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: Example.COM:8080\r\n"
        "Via: 1.1 edge, 1.1 sluice\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n");
}

TEST_CASE("http forward: X-Forwarded-For from a client that is not a trusted proxy is replaced",
          "[http]") {
  const std::string request =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.66\r\n"
      "X-Forwarded-For: 10.0.0.1\r\n\r\n";
  const std::string untrusted = upstream_head(request, "/", "a", false, false);
  CHECK(untrusted.find("X-Forwarded-For: 192.0.2.7\r\n") != std::string::npos);
  CHECK(untrusted.find("198.51.100.66") == std::string::npos);
  CHECK(untrusted.find("10.0.0.1") == std::string::npos);
  const std::string trusted = upstream_head(request, "/", "a", false, true);
  CHECK(trusted.find("X-Forwarded-For: 198.51.100.66, 10.0.0.1, 192.0.2.7\r\n") != std::string::npos);
}

TEST_CASE("http forward: HTTP/1.0 request without Host gets one, and Via says 1.0", "[http]") {
  const std::string out = upstream_head("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", "/", "", true);
  CHECK(out ==
        "GET / HTTP/1.1\r\n"
        "Accept: */*\r\n"
        "Host: 10.0.0.9:8000\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "Via: 1.0 sluice\r\n"
        "\r\n");
}

TEST_CASE("http forward: a stripped prefix that leaves no slash still sends an origin-form target",
          "[http]") {
  const std::string out =
      upstream_head("GET /api?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", "?x=1", "a");
  CHECK(out.rfind("GET /?x=1 HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("http forward: response head keeps end-to-end fields and states the chosen framing",
          "[http]") {
  Parsed p(
      "HTTP/1.1 200 Fine\r\n"
      "Connection: X-Hop\r\n"
      "X-Hop: 1\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Set-Cookie: a=1\r\n"
      "Set-Cookie: b=2\r\n"
      "\r\n",
      Parser::Kind::Response);
  std::string out;
  SECTION("chunked to a keep-alive HTTP/1.1 client") {
    sluice::http::write_client_head(p.head(), {true, true, false, {}}, out);
    CHECK(out ==
          "HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
          "Transfer-Encoding: chunked\r\n\r\n");
  }
  SECTION("de-chunked to a closing client") {
    sluice::http::write_client_head(p.head(), {false, false, false, {}}, out);
    CHECK(out ==
          "HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: close\r\n\r\n");
  }
  SECTION("keep-alive to an HTTP/1.0 client is said explicitly") {
    sluice::http::write_client_head(p.head(), {false, true, true, {}}, out);
    CHECK(out.find("Connection: keep-alive\r\n") != std::string::npos);
    CHECK(out.find("Transfer-Encoding") == std::string::npos);
  }
}

TEST_CASE("http forward: a websocket upgrade goes upstream with the gateway's own fields",
          "[http]") {
  Parsed p(
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate\r\nOrigin: https://a\r\nCookie: c=1\r\n\r\n");
  const sluice::http::WebSocketForward ws{"AQIDBAUGBwgJCgsMDQ4PEA==", "chat.v2", ""};
  sluice::http::RequestForward f;
  f.path = "/chat";
  f.host = "a";
  f.client_ip = "192.0.2.7";
  f.websocket = &ws;
  std::string out;
  sluice::http::write_upstream_head(p.head(), f, out);
  CHECK(out.find("dGhlIHNhbXBsZSBub25jZQ==") == std::string::npos);  // the client's key stays here
  CHECK(out.find("\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n") != std::string::npos);
  CHECK(out.find("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n") != std::string::npos);
  CHECK(out.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
  CHECK(out.find("\r\nSec-WebSocket-Protocol: chat.v2\r\n") != std::string::npos);
  CHECK(out.find("chat.v1") == std::string::npos);
  CHECK(out.find("Sec-WebSocket-Extensions") == std::string::npos);  // "" = stripped
  CHECK(out.find("\r\nOrigin: https://a\r\n") != std::string::npos);
  CHECK(out.find("\r\nCookie: c=1\r\n") != std::string::npos);
  CHECK(out.find("keep-alive") == std::string::npos);
}

TEST_CASE("http forward: the client's 101 carries its own accept and the upstream's choices",
          "[http]") {
  Parsed p(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: upstream-value\r\nSec-WebSocket-Protocol: chat.v2\r\n"
      "Set-Cookie: s=1\r\nContent-Length: 0\r\n\r\n",
      Parser::Kind::Response);
  std::string out;
  sluice::http::write_client_head(
      p.head(), {false, true, false, "max-age=60", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, out);
  CHECK(out.rfind("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", 0) == 0);
  CHECK(out.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
  CHECK(out.find("upstream-value") == std::string::npos);
  CHECK(out.find("\r\nSec-WebSocket-Protocol: chat.v2\r\n") != std::string::npos);
  CHECK(out.find("\r\nSet-Cookie: s=1\r\n") != std::string::npos);
  CHECK(out.find("Content-Length") == std::string::npos);
  CHECK(out.find("\r\nStrict-Transport-Security: max-age=60\r\n") != std::string::npos);
  CHECK(out.size() >= 4);
  CHECK(out.compare(out.size() - 4, 4, "\r\n\r\n") == 0);
}
