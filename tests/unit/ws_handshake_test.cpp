// Tests for src/ws/handshake: the RFC 6455 sample key and accept value,
// strict key validation, fresh keys, Origin pattern parsing and matching
// (case, default ports, wildcard depth, "null", malformed headers), and
// Sec-WebSocket-Protocol list splitting.
#include <catch2/catch.hpp>

#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ws/handshake.hpp"

namespace {

using namespace sluice::ws;

std::vector<OriginPattern> allow(std::initializer_list<std::string_view> texts) {
  std::vector<OriginPattern> out;
  for (std::string_view t : texts) {
    const std::optional<OriginPattern> p = parse_origin_pattern(t);
    INFO(t);
    REQUIRE(p.has_value());
    out.push_back(*p);
  }
  return out;
}

}  // namespace

TEST_CASE("ws handshake: accept_for gives the RFC 6455 sample answer", "[ws]") {
  CHECK(accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // The other widely quoted pair (from the Wikipedia article on WebSocket).
  CHECK(accept_for("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  // base64 of a 20-byte SHA-1 is always 28 characters ending in one '='.
  const std::string empty = accept_for("");
  CHECK(empty.size() == 28);
  CHECK(empty.back() == '=');
}

TEST_CASE("ws handshake: valid_key accepts exactly canonical base64 of 16 bytes", "[ws]") {
  CHECK(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
  CHECK(valid_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK(valid_key("/////////////////////w=="));  // 16 x 0xFF
  CHECK(valid_key("+/+/+/+/+/+/+/+/+/+/+g=="));

  CHECK_FALSE(valid_key(""));
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 chars
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25 chars
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ"));     // unpadded
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQAA"));   // no padding: 18 bytes
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ=A"));   // bad padding
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZ=A="));   // '=' inside
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25j-Q=="));   // URL-safe alphabet
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25j_Q=="));
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25j Q=="));   // whitespace
  CHECK_FALSE(valid_key(" dGhlIHNhbXBsZSBub25jZQ=="));
  CHECK_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZR=="));   // non-zero pad bits
  CHECK_FALSE(valid_key("AAAAAAAAAAAAAAAAAAAAAB=="));
  CHECK_FALSE(valid_key(std::string_view("dGhlIHNhbXBsZSBub25j\0Q==", 24)));
  // 15 bytes (20 chars, no padding) and 17 bytes (24 chars, one '=').
  CHECK_FALSE(valid_key("AAAAAAAAAAAAAAAAAAAA"));
  CHECK_FALSE(valid_key("AAAAAAAAAAAAAAAAAAAAAAA="));
  // 15 bytes padded out to look like 24 chars is still not 16 bytes.
  CHECK_FALSE(valid_key("AAAAAAAAAAAAAAAAAAAA===="));
}

TEST_CASE("ws handshake: new_key is a valid key and fresh each call", "[ws]") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string k = new_key();
    INFO(k);
    CHECK(k.size() == 24);
    CHECK(valid_key(k));
    CHECK(seen.insert(k).second);
  }
}

TEST_CASE("ws handshake: origin patterns parse scheme, host, wildcard and port", "[ws]") {
  auto p = parse_origin_pattern("https://chat.example.com");
  REQUIRE(p);
  CHECK(p->scheme == "https");
  CHECK(p->host == "chat.example.com");
  CHECK_FALSE(p->wildcard);
  CHECK(p->port == 443);

  p = parse_origin_pattern("HTTPS://*.Example.COM");
  REQUIRE(p);
  CHECK(p->scheme == "https");
  CHECK(p->host == "example.com");
  CHECK(p->wildcard);
  CHECK(p->port == 443);

  p = parse_origin_pattern("http://localhost:3000");
  REQUIRE(p);
  CHECK(p->host == "localhost");
  CHECK(p->port == 3000);

  p = parse_origin_pattern("http://example.com");
  REQUIRE(p);
  CHECK(p->port == 80);
  CHECK(*parse_origin_pattern("http://example.com:80") == *p);

  p = parse_origin_pattern("http://[::1]:8080");
  REQUIRE(p);
  CHECK(p->host == "[::1]");
  CHECK(p->port == 8080);
  CHECK(parse_origin_pattern("http://127.0.0.1:65535"));
  CHECK(parse_origin_pattern("https://xn--bcher-kva.example"));
  CHECK(parse_origin_pattern("https://*.a.b.example.com:8443"));

  for (std::string_view bad : {
           "",                             // empty
           "example.com",                  // no scheme
           "//example.com",                // no scheme
           "ftp://example.com",            // not http(s)
           "ws://example.com",             // not an origin scheme
           "htps://example.com",           // a typo must not pass config
           "https//example.com",           // no "://"
           "https://",                     // empty host
           "https://:443",                 // empty host
           "https://example.com/",         // path
           "https://example.com/app",      // path
           "https://example.com?x",        // query
           "https://example.com#x",        // fragment
           "https://user@example.com",     // userinfo
           "https://user:pw@example.com",  // userinfo
           "https://example.com:",         // empty port
           "https://example.com:0",        // port 0
           "https://example.com:65536",    // out of range
           "https://example.com:123456",   // too long
           "https://example.com:+80",      // signed
           "https://example.com:-1",
           "https://example.com:8o",       // not digits
           "https://example.com:80:80",
           "https://exa mple.com",         // space
           "https://example..com",         // empty label
           "https://.example.com",
           "https://example.com.",         // trailing dot
           "https://*",                    // wildcard without a domain
           "https://*.",
           "https://*example.com",         // wildcard not a whole label
           "https://a.*.example.com",      // wildcard not leftmost
           "https://*.*.example.com",
           "https://*.0.0.1",              // wildcard over IPv4 addresses
           "https://[::1",                 // unclosed literal
           "https://[]",                   // empty literal
           "https://[example.com]",        // not an IP literal
           "https://[::1]x",               // junk after literal
           "null",                         // only meaningful as a header value
           "*",                            // use an empty list for "any"
       }) {
    INFO("pattern: '" << bad << "'");
    CHECK_FALSE(parse_origin_pattern(bad).has_value());
  }
}

TEST_CASE("ws handshake: an empty allowlist allows any Origin, even malformed", "[ws]") {
  CHECK(origin_allowed("https://evil.example", {}));
  CHECK(origin_allowed("null", {}));
  CHECK(origin_allowed("", {}));
  CHECK(origin_allowed("not an origin", {}));
}

TEST_CASE("ws handshake: exact origins match on scheme, host and effective port", "[ws]") {
  const auto list = allow({"https://chat.example.com", "http://localhost:3000"});
  CHECK(origin_allowed("https://chat.example.com", list));
  CHECK(origin_allowed("HTTPS://CHAT.Example.Com", list));     // case-insensitive
  CHECK(origin_allowed("https://chat.example.com:443", list));  // explicit default port
  CHECK(origin_allowed("http://localhost:3000", list));
  CHECK(origin_allowed("  http://localhost:3000\t", list));     // header OWS
  CHECK_FALSE(origin_allowed("http://chat.example.com", list));       // scheme differs
  CHECK_FALSE(origin_allowed("https://chat.example.com:8443", list));  // port differs
  CHECK_FALSE(origin_allowed("http://localhost", list));               // 80, not 3000
  CHECK_FALSE(origin_allowed("https://localhost:3000", list));
  CHECK_FALSE(origin_allowed("https://example.com", list));
  CHECK_FALSE(origin_allowed("https://a.chat.example.com", list));  // no implicit subdomains
  CHECK_FALSE(origin_allowed("https://chat.example.com.evil.io", list));
  CHECK_FALSE(origin_allowed("https://evilchat.example.com", list));

  // A pattern's explicit default port is the same as none.
  const auto explicit_port = allow({"https://chat.example.com:443", "http://a.test:80"});
  CHECK(origin_allowed("https://chat.example.com", explicit_port));
  CHECK(origin_allowed("http://a.test", explicit_port));
  CHECK_FALSE(origin_allowed("http://chat.example.com:443", explicit_port));
}

TEST_CASE("ws handshake: a wildcard matches subdomains at any depth, not the domain", "[ws]") {
  const auto list = allow({"https://*.example.com"});
  CHECK(origin_allowed("https://a.example.com", list));
  CHECK(origin_allowed("https://a.b.example.com", list));
  CHECK(origin_allowed("https://A.B.EXAMPLE.COM:443", list));
  CHECK_FALSE(origin_allowed("https://example.com", list));
  CHECK_FALSE(origin_allowed("https://.example.com", list));      // malformed
  CHECK_FALSE(origin_allowed("https://aexample.com", list));      // not a label boundary
  CHECK_FALSE(origin_allowed("https://a.example.com.evil", list));
  CHECK_FALSE(origin_allowed("https://a.example.org", list));
  CHECK_FALSE(origin_allowed("http://a.example.com", list));      // scheme
  CHECK_FALSE(origin_allowed("https://a.example.com:8443", list));  // port
  CHECK_FALSE(origin_allowed("https://*.example.com", list));     // headers carry no wildcards

  const auto ported = allow({"http://*.dev.test:8080"});
  CHECK(origin_allowed("http://x.dev.test:8080", ported));
  CHECK_FALSE(origin_allowed("http://x.dev.test", ported));
}

TEST_CASE("ws handshake: null and malformed Origin headers are refused by a list", "[ws]") {
  const auto list = allow({"https://chat.example.com", "https://*.example.com"});
  for (std::string_view bad : {
           "null",
           "NULL",
           "",
           "   ",
           "chat.example.com",                 // no scheme
           "//chat.example.com",
           "https://chat.example.com/",        // a path: not a serialised origin
           "https://chat.example.com/app",
           "https://chat.example.com?q",
           "https://user@chat.example.com",
           "https://chat.example.com:",
           "https://chat.example.com:99999",
           "https://chat.example.com, https://chat.example.com",  // a list, not one origin
           "file://",
           "chrome-extension://abcdef",
       }) {
    INFO("origin: '" << bad << "'");
    CHECK_FALSE(origin_allowed(bad, list));
  }
}

TEST_CASE("ws handshake: IP literals match as text", "[ws]") {
  const auto list = allow({"http://[::1]:8080", "http://127.0.0.1:3000"});
  CHECK(origin_allowed("http://[::1]:8080", list));
  CHECK(origin_allowed("http://127.0.0.1:3000", list));
  CHECK_FALSE(origin_allowed("http://[::1]", list));
  CHECK_FALSE(origin_allowed("http://127.0.0.1", list));
}

TEST_CASE("ws handshake: split_protocols trims items and drops empty ones", "[ws]") {
  using V = std::vector<std::string_view>;
  CHECK(split_protocols("chat, superchat") == V{"chat", "superchat"});
  CHECK(split_protocols("chat") == V{"chat"});
  CHECK(split_protocols(" \tchat ,\tv2.json.example\t") == V{"chat", "v2.json.example"});
  CHECK(split_protocols(",, a ,, ,b,") == V{"a", "b"});
  CHECK(split_protocols("").empty());
  CHECK(split_protocols(" , ,").empty());
  // Views point into the header; case is preserved (protocol names are
  // compared case-sensitively, RFC 6455 4.1).
  const std::string header = "MQTT, mqttv3.1";
  const V items = split_protocols(header);
  REQUIRE(items.size() == 2);
  CHECK(items[0] == "MQTT");
  CHECK(items[0].data() == header.data());
  CHECK(items[1].data() == header.data() + 6);
}
