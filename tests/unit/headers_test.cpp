// Tests for src/http/headers and src/http/responses: case-insensitive
// compares, OWS trimming, token lists, the hop-by-hop set, Host
// normalisation, and the gateway's own error responses (which must also be
// well-formed HTTP: they are fed back through the response Parser).
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "http/headers.hpp"
#include "http/parser.hpp"
#include "http/responses.hpp"

namespace {

using namespace sluice::http;

std::vector<std::string> tokens(std::string_view list) {
  std::vector<std::string> out;
  for_each_token(list, [&](std::string_view t) {
    out.emplace_back(t);
    return true;
  });
  return out;
}

// normalise_host into a buffer of `cap` bytes; nullopt-like "" + ok flag.
struct Host {
  bool ok;
  std::string host;
};
Host norm(std::string_view authority, std::size_t cap = 255) {
  std::vector<char> out(cap + 1, '#');  // one guard byte past the capacity
  std::size_t len = 12345;
  const bool ok = normalise_host(authority, out.data(), cap, len);
  REQUIRE(out[cap] == '#');  // never writes past out_cap
  if (!ok) return {false, {}};
  REQUIRE(len <= cap);
  return {true, std::string(out.data(), len)};
}

// Splits a response into head and body at the first blank line.
struct Split {
  std::string head;
  std::string body;
};
Split split(std::string_view r) {
  const std::size_t end = r.find("\r\n\r\n");
  REQUIRE(end != std::string_view::npos);
  return {std::string(r.substr(0, end + 2)), std::string(r.substr(end + 4))};
}

}  // namespace

TEST_CASE("http headers: iequals folds ASCII case only", "[http]") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("HOST", "host"));
  CHECK(iequals("", ""));
  CHECK(iequals("a-1_B", "A-1_b"));
  CHECK_FALSE(iequals("host", "hosts"));
  CHECK_FALSE(iequals("host", "hosT "));
  CHECK_FALSE(iequals("abc", "abd"));
  CHECK_FALSE(iequals("", "a"));
  // Bytes that differ by 0x20 but are not letters must stay different.
  CHECK_FALSE(iequals("@", "`"));
  CHECK_FALSE(iequals("[", "{"));
  CHECK_FALSE(iequals("^", "~"));
  CHECK_FALSE(iequals("\xc4", "\xe4"));  // not ASCII: no folding
  CHECK(ascii_lower('Q') == 'q');
  CHECK(ascii_lower('q') == 'q');
  CHECK(ascii_lower('@') == '@');
  CHECK(ascii_lower('[') == '[');
}

TEST_CASE("http headers: trim_ows removes spaces and tabs at both ends only", "[http]") {
  CHECK(trim_ows("  a b \t") == "a b");
  CHECK(trim_ows("\ta") == "a");
  CHECK(trim_ows("a\t\t") == "a");
  CHECK(trim_ows("a") == "a");
  CHECK(trim_ows("") == "");
  CHECK(trim_ows(" \t \t") == "");
  CHECK(trim_ows(" a \t b ") == "a \t b");
  // Only SP and HTAB are OWS: CR, LF, VT and FF are not trimmed.
  CHECK(trim_ows("\ra\r") == "\ra\r");
  CHECK(trim_ows("\na\n") == "\na\n");
  CHECK(trim_ows("\va\f") == "\va\f");
}

TEST_CASE("http headers: for_each_token skips empty items and trims OWS", "[http]") {
  CHECK(tokens("a,b,c") == std::vector<std::string>{"a", "b", "c"});
  CHECK(tokens(" a ,b,, ,\tc\t,") == std::vector<std::string>{"a", "b", "c"});
  CHECK(tokens("Keep-Alive, UPGRADE") == std::vector<std::string>{"Keep-Alive", "UPGRADE"});
  CHECK(tokens("") .empty());
  CHECK(tokens(",").empty());
  CHECK(tokens(" , ,\t,").empty());
  CHECK(tokens("single") == std::vector<std::string>{"single"});
  CHECK(tokens("a b, c") == std::vector<std::string>{"a b", "c"});

  // Returning false stops the walk.
  std::vector<std::string> seen;
  for_each_token("x, y, z", [&](std::string_view t) {
    seen.emplace_back(t);
    return t != "y";
  });
  CHECK(seen == std::vector<std::string>{"x", "y"});
}

TEST_CASE("http headers: has_token matches whole tokens case-insensitively", "[http]") {
  CHECK(has_token("keep-alive, Upgrade", "upgrade"));
  CHECK(has_token("close", "CLOSE"));
  CHECK(has_token("a,,b", "b"));
  CHECK(has_token(" chunked ,\tgzip\t", "gzip"));
  CHECK(has_token("gzip, chunked", "chunked"));
  CHECK_FALSE(has_token("upgraded", "upgrade"));
  CHECK_FALSE(has_token("x-upgrade", "upgrade"));
  CHECK_FALSE(has_token("up grade", "upgrade"));
  CHECK_FALSE(has_token("", "close"));
  CHECK_FALSE(has_token(",,", "close"));
  CHECK_FALSE(has_token("close", ""));
}

TEST_CASE("http headers: is_hop_by_hop knows the RFC 9110 set, in any case", "[http]") {
  for (const char* name : {"Connection", "keep-alive", "PROXY-CONNECTION", "TE", "Trailer",
                           "transfer-encoding", "Upgrade"}) {
    INFO(name);
    CHECK(is_hop_by_hop(name));
  }
  for (const char* name : {"Content-Length", "Host", "Keep-Alive-X", "connectionx", "Connectio",
                           "Trailers", "TE ", "", "Via", "X-Forwarded-For"}) {
    INFO(name);
    CHECK_FALSE(is_hop_by_hop(name));
  }
}

TEST_CASE("http headers: normalise_host lower-cases and drops the port", "[http]") {
  CHECK(norm("Example.COM").host == "example.com");
  CHECK(norm("example.com:8080").host == "example.com");
  CHECK(norm("EXAMPLE.com:80").host == "example.com");
  CHECK(norm("127.0.0.1:9000").host == "127.0.0.1");
  CHECK(norm("my_host-1.internal").host == "my_host-1.internal");
  CHECK(norm("example.com:").ok);  // an empty port is allowed by RFC 3986
  CHECK(norm("example.com:").host == "example.com");
}

TEST_CASE("http headers: normalise_host keeps IPv6 literals in brackets", "[http]") {
  CHECK(norm("[::1]").host == "[::1]");
  CHECK(norm("[::1]:8080").host == "[::1]");
  CHECK(norm("[2001:DB8::A]:443").host == "[2001:db8::a]");
  CHECK_FALSE(norm("[::1").ok);
  CHECK_FALSE(norm("[::1]x").ok);
  CHECK_FALSE(norm("[::1]8080").ok);
}

TEST_CASE("http headers: normalise_host refuses a non-numeric port after an IPv6 literal", "[http]") {
  // The same rule as for names: "example.com:8a" is refused, so "[::1]:8a" must be too.
  CHECK_FALSE(norm("example.com:8a").ok);
  CHECK_FALSE(norm("[::1]:8a").ok);
  CHECK_FALSE(norm("[::1]:80:80").ok);
}

TEST_CASE("http headers: normalise_host refuses invalid characters", "[http]") {
  for (const char* bad : {"exa mple.com", "example.com/", "ex@mple.com", "example.com:80x",
                          "example.com:-1", "exa\tmple", "a\r\nb", "example.com:8 0", "a,b",
                          "\xc3\xa9xample.com"}) {
    INFO(bad);
    CHECK_FALSE(norm(bad).ok);
  }
}

TEST_CASE("http headers: normalise_host refuses colons outside an IPv6 literal", "[http]") {
  // A name cannot contain ':'; only the last one may introduce the port.
  CHECK_FALSE(norm("example.com:80:80").ok);
  CHECK_FALSE(norm("a:b:8080").ok);
}

TEST_CASE("http headers: normalise_host refuses a host longer than the output", "[http]") {
  CHECK(norm("abcdefgh", 8).host == "abcdefgh");
  CHECK(norm("ABCDEFGH:8080", 8).host == "abcdefgh");  // the port does not count
  CHECK_FALSE(norm("abcdefghi", 8).ok);
  CHECK_FALSE(norm("abcdefghi:80", 8).ok);
  CHECK(norm(std::string(255, 'a')).ok);
  CHECK_FALSE(norm(std::string(256, 'a')).ok);
}

TEST_CASE("http responses: error responses are well-formed and framed by Content-Length", "[http]") {
  for (int status : {400, 403, 404, 405, 408, 413, 414, 426, 429, 431, 500, 501, 502, 503, 504}) {
    for (bool close : {true, false}) {
      INFO("status " << status << " close " << close);
      const std::string r(error_response(status, close));
      const Split s = split(r);
      const std::string line =
          "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
      CHECK(s.head.rfind(line, 0) == 0);
      CHECK(s.head.find("Content-Length: " + std::to_string(s.body.size()) + "\r\n") !=
            std::string::npos);
      CHECK(s.body == std::to_string(status) + " " + reason_phrase(status) + "\n");
      CHECK((s.head.find("\r\nConnection: close\r\n") != std::string::npos) == close);
      if (!close) CHECK(s.head.find("Connection") == std::string::npos);

      // And a strict parser reads exactly one complete message from it.
      struct H final : ParserHandler {
        Next on_head(MessageHead&) override { return Next::Continue; }
        bool on_body(const char* p, std::size_t n) override {
          body.append(p, n);
          return true;
        }
        std::string body;
      } h;
      Parser p(Parser::Kind::Response, h, HeadLimits{});
      const Parser::Result res = p.feed(r.data(), r.size());
      REQUIRE(res.status == Parser::Status::Paused);
      CHECK(res.consumed == r.size());
      CHECK(p.message_complete());
      CHECK(p.head().status == status);
      CHECK(p.head().keep_alive == !close);
      CHECK(p.head().content_length == s.body.size());
      CHECK(h.body == s.body);
    }
  }
}

TEST_CASE("http responses: an unknown status falls back to a closing 500", "[http]") {
  CHECK(error_response(418, false) == error_response(500, true));
  CHECK(error_response(200, true) == error_response(500, true));
  CHECK(std::string(reason_phrase(431)) == "Request Header Fields Too Large");
  CHECK(std::string(reason_phrase(999)) == "Unknown");
  CHECK(kContinue100 == "HTTP/1.1 100 Continue\r\n\r\n");
}
