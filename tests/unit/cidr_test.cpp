// Tests for src/net/cidr: strict IP text, prefix parsing with the errors the
// config loader shows, and set membership for IPv4, IPv6 and IPv4-mapped
// IPv6 clients, at the edges of each prefix.
#include <arpa/inet.h>
#include <sys/un.h>

#include <catch2/catch.hpp>

#include <string>
#include <variant>
#include <vector>

#include "net/cidr.hpp"

namespace {

using sluice::net::CidrPrefix;
using sluice::net::CidrSet;
using sluice::net::parse_cidr;
namespace net = sluice::net;

// An IPv4 or IPv6 client address ("1.2.3.4" or "::ffff:1.2.3.4") as the
// accept path would have it.
sockaddr_storage addr(const char* text) {
  sockaddr_storage ss{};
  if (std::string(text).find(':') != std::string::npos) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(4242);
    REQUIRE(inet_pton(AF_INET6, text, &in6.sin6_addr) == 1);
  } else {
    auto& in4 = reinterpret_cast<sockaddr_in&>(ss);
    in4.sin_family = AF_INET;
    in4.sin_port = htons(4242);
    REQUIRE(inet_pton(AF_INET, text, &in4.sin_addr) == 1);
  }
  return ss;
}

CidrPrefix prefix(const std::string& text) {
  auto r = parse_cidr(text);
  INFO(text);
  if (auto* err = std::get_if<std::string>(&r)) FAIL("unexpected error: " << *err);
  return std::get<CidrPrefix>(r);
}

std::string error(const std::string& text) {
  auto r = parse_cidr(text);
  INFO(text);
  REQUIRE(std::holds_alternative<std::string>(r));
  return std::get<std::string>(r);
}

CidrSet set_of(const std::vector<std::string>& entries) {
  CidrSet s;
  for (const auto& e : entries) s.add(prefix(e));
  return s;
}

bool in(const CidrSet& s, const char* text) {
  const sockaddr_storage ss = addr(text);
  return s.contains(reinterpret_cast<const sockaddr*>(&ss));
}

}  // namespace

TEST_CASE("cidr: strict IPv4 dotted quads", "[cidr]") {
  in_addr a{};
  for (const char* ok : {"0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.100.200", "1.20.100.0"}) {
    INFO(ok);
    CHECK(net::parse_ipv4(ok, a));
  }
  REQUIRE(net::parse_ipv4("10.1.2.3", a));
  CHECK(ntohl(a.s_addr) == 0x0A010203u);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.00",
                          "1.2.3.04", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.1000",
                          "0x1.2.3.4", "1.2.3.-4", "1.2.3.+4", "127.1", "::1", "1.2.3.4/8"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(net::parse_ipv4(bad, a));
  }
}

TEST_CASE("cidr: IPv6 text", "[cidr]") {
  in6_addr a{};
  for (const char* ok : {"::", "::1", "fd00::", "2001:db8::1", "FE80::ABCD", "::ffff:10.1.2.3",
                         "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
                         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}) {
    INFO(ok);
    CHECK(net::parse_ipv6(ok, a));
  }
  for (const char* bad : {"", ":", ":::", "1.2.3.4", "fe80::1%eth0", "[::1]", "::1 ", "2001:db8::g",
                          "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.04", "::1/128"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(net::parse_ipv6(bad, a));
  }
}

TEST_CASE("cidr: prefixes parse to their canonical form", "[cidr]") {
  CHECK(net::to_string(prefix("10.0.0.0/8")) == "10.0.0.0/8");
  CHECK(net::to_string(prefix("127.0.0.1")) == "127.0.0.1/32");
  CHECK(net::to_string(prefix("127.0.0.1/32")) == "127.0.0.1/32");
  CHECK(net::to_string(prefix("0.0.0.0/0")) == "0.0.0.0/0");
  CHECK(net::to_string(prefix("::1")) == "::1/128");
  CHECK(net::to_string(prefix("::/0")) == "::/0");
  CHECK(net::to_string(prefix("fd00::/8")) == "fd00::/8");
  CHECK(net::to_string(prefix("2001:0DB8:0000::/32")) == "2001:db8::/32");
  // Mapped prefixes are the IPv4 prefixes they name.
  const CidrPrefix mapped = prefix("::ffff:10.0.0.0/104");
  CHECK(mapped.family == AF_INET);
  CHECK(net::to_string(mapped) == "10.0.0.0/8");
  CHECK(net::to_string(prefix("::ffff:0:0/96")) == "0.0.0.0/0");
  CHECK(net::to_string(prefix("::ffff:1.2.3.4")) == "1.2.3.4/32");
  CHECK(prefix("::fffe:0:0/95").family == AF_INET6);  // covers the mapped block, but is no IPv4 prefix
}

TEST_CASE("cidr: a bad entry is refused with a message that says why", "[cidr]") {
  using Catch::Matchers::Contains;
  CHECK_THAT(error(""), Contains("missing address"));
  CHECK_THAT(error("/8"), Contains("missing address"));
  CHECK_THAT(error("10.0.0.256/8"), Contains("invalid IPv4 address \"10.0.0.256\""));
  CHECK_THAT(error("10.0.0/8"), Contains("invalid IPv4 address"));
  CHECK_THAT(error("010.0.0.0/8"), Contains("invalid IPv4 address"));
  CHECK_THAT(error("localhost"), Contains("invalid IPv4 address"));
  CHECK_THAT(error(" 10.0.0.0/8"), Contains("invalid IPv4 address"));
  CHECK_THAT(error("10.0.0.0 /8"), Contains("invalid IPv4 address"));
  CHECK_THAT(error("fd00::g/8"), Contains("invalid IPv6 address \"fd00::g\""));
  CHECK_THAT(error("fe80::1%eth0"), Contains("invalid IPv6 address"));
  CHECK_THAT(error("[::1]"), Contains("invalid IPv6 address"));
  CHECK_THAT(error("10.0.0.0/"), Contains("invalid prefix length \"/\""));
  CHECK_THAT(error("10.0.0.0/08"), Contains("invalid prefix length \"/08\""));
  CHECK_THAT(error("10.0.0.0/-1"), Contains("invalid prefix length"));
  CHECK_THAT(error("10.0.0.0/8/9"), Contains("invalid prefix length"));
  CHECK_THAT(error("10.0.0.0/8 "), Contains("invalid prefix length"));
  CHECK_THAT(error("10.0.0.0/1000"), Contains("invalid prefix length"));
  CHECK_THAT(error("10.0.0.0/33"), Contains("/33 is out of range for IPv4"));
  CHECK_THAT(error("::/129"), Contains("/129 is out of range for IPv6"));
  CHECK_THAT(error("10.1.0.0/8"), Contains("host bits are set past the /8 prefix") &&
                                      Contains("did you mean \"10.0.0.0/8\""));
  CHECK_THAT(error("192.168.1.1/24"), Contains("did you mean \"192.168.1.0/24\""));
  CHECK_THAT(error("1.2.3.4/0"), Contains("did you mean \"0.0.0.0/0\""));
  CHECK_THAT(error("fd00::1/8"), Contains("did you mean \"fd00::/8\""));
  CHECK_THAT(error("::1/127"), Contains("did you mean \"::/127\""));
  CHECK_THAT(error("2001:db8:0:0:8000::/64"), Contains("did you mean \"2001:db8::/64\""));
}

TEST_CASE("cidr: the trusted_proxies example matches what it names and nothing else", "[cidr]") {
  const CidrSet s = set_of({"10.0.0.0/8", "::1", "fd00::/8", "127.0.0.1/32"});
  CHECK(s.size() == 4);
  CHECK(in(s, "10.0.0.0"));
  CHECK(in(s, "10.1.2.3"));
  CHECK(in(s, "10.255.255.255"));
  CHECK_FALSE(in(s, "9.255.255.255"));
  CHECK_FALSE(in(s, "11.0.0.0"));
  CHECK(in(s, "127.0.0.1"));
  CHECK_FALSE(in(s, "127.0.0.2"));
  CHECK_FALSE(in(s, "127.0.0.0"));
  CHECK(in(s, "::1"));
  CHECK_FALSE(in(s, "::2"));
  CHECK_FALSE(in(s, "::"));
  CHECK(in(s, "fd00::"));
  CHECK(in(s, "fd12:3456::1"));
  CHECK(in(s, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(in(s, "fc00::1"));
  CHECK_FALSE(in(s, "fe00::"));
  CHECK_FALSE(in(s, "2001:db8::1"));
}

TEST_CASE("cidr: IPv4-mapped IPv6 clients match IPv4 prefixes", "[cidr]") {
  const CidrSet s = set_of({"10.0.0.0/8", "127.0.0.1"});
  CHECK(in(s, "::ffff:10.1.2.3"));
  CHECK(in(s, "::ffff:a00:0"));
  CHECK(in(s, "::ffff:127.0.0.1"));
  CHECK_FALSE(in(s, "::ffff:11.1.2.3"));
  CHECK_FALSE(in(s, "::ffff:127.0.0.2"));
  // Not mapped: the deprecated IPv4-compatible form and NAT64 are IPv6 addresses.
  CHECK_FALSE(in(s, "::10.1.2.3"));
  CHECK_FALSE(in(s, "64:ff9b::10.1.2.3"));
  // A prefix written in mapped form matches plain IPv4 clients as well.
  const CidrSet m = set_of({"::ffff:192.168.0.0/112"});
  CHECK(in(m, "192.168.4.5"));
  CHECK(in(m, "::ffff:192.168.4.5"));
  CHECK_FALSE(in(m, "192.169.0.0"));
}

TEST_CASE("cidr: /0 covers its own family only", "[cidr]") {
  const CidrSet v4 = set_of({"0.0.0.0/0"});
  CHECK(in(v4, "0.0.0.0"));
  CHECK(in(v4, "255.255.255.255"));
  CHECK(in(v4, "::ffff:8.8.8.8"));
  CHECK_FALSE(in(v4, "::1"));
  CHECK_FALSE(in(v4, "2001:db8::1"));
  const CidrSet v6 = set_of({"::/0"});
  CHECK(in(v6, "::"));
  CHECK(in(v6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK(in(v6, "::1"));
  CHECK_FALSE(in(v6, "8.8.8.8"));
  CHECK_FALSE(in(v6, "::ffff:8.8.8.8"));
}

TEST_CASE("cidr: boundaries of odd-length prefixes", "[cidr]") {
  const CidrSet s = set_of({"192.168.1.128/25", "172.16.0.0/12", "2001:db8::/63", "2001:db8:1:2:8000::/65",
                            "fe80::/127"});
  CHECK_FALSE(in(s, "192.168.1.127"));
  CHECK(in(s, "192.168.1.128"));
  CHECK(in(s, "192.168.1.255"));
  CHECK_FALSE(in(s, "192.168.2.0"));
  CHECK_FALSE(in(s, "172.15.255.255"));
  CHECK(in(s, "172.16.0.0"));
  CHECK(in(s, "172.31.255.255"));
  CHECK_FALSE(in(s, "172.32.0.0"));
  CHECK(in(s, "2001:db8::"));
  CHECK(in(s, "2001:db8:0:1:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(in(s, "2001:db8:0:2::"));
  CHECK_FALSE(in(s, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(in(s, "2001:db8:1:2:7fff:ffff:ffff:ffff"));
  CHECK(in(s, "2001:db8:1:2:8000::"));
  CHECK(in(s, "2001:db8:1:2:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(in(s, "2001:db8:1:3::"));
  CHECK(in(s, "fe80::"));
  CHECK(in(s, "fe80::1"));
  CHECK_FALSE(in(s, "fe80::2"));
  // Every length of an IPv4 and an IPv6 prefix: the first and last address
  // inside, the neighbours outside.
  for (unsigned len = 1; len <= 31; ++len) {
    const std::uint32_t net4 = 0x80000000u >> (len - 1);  // a network with its last prefix bit set
    const std::uint32_t size = 1u << (32 - len);
    auto text4 = [](std::uint32_t v) {
      in_addr a{};
      a.s_addr = htonl(v);
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &a, buf, sizeof buf);
      return std::string(buf);
    };
    const CidrSet one = set_of({text4(net4) + "/" + std::to_string(len)});
    INFO("/" << len);
    CHECK(in(one, text4(net4).c_str()));
    CHECK(in(one, text4(net4 + size - 1).c_str()));
    CHECK_FALSE(in(one, text4(net4 - 1).c_str()));
    if (net4 + size != 0) CHECK_FALSE(in(one, text4(net4 + size).c_str()));
  }
  for (unsigned len = 1; len <= 127; ++len) {
    in6_addr net{}, last{}, below{};
    net.s6_addr[(len - 1) / 8] = static_cast<std::uint8_t>(0x80 >> ((len - 1) % 8));
    last = net;
    for (unsigned bit = len; bit < 128; ++bit) last.s6_addr[bit / 8] |= static_cast<std::uint8_t>(0x80 >> (bit % 8));
    for (unsigned bit = len; bit < 128; ++bit) below.s6_addr[bit / 8] |= static_cast<std::uint8_t>(0x80 >> (bit % 8));
    char nb[INET6_ADDRSTRLEN], lb[INET6_ADDRSTRLEN], bb[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &net, nb, sizeof nb);
    inet_ntop(AF_INET6, &last, lb, sizeof lb);
    inet_ntop(AF_INET6, &below, bb, sizeof bb);  // the address just below the network
    const CidrSet one = set_of({std::string(nb) + "/" + std::to_string(len)});
    INFO("/" << len << " " << nb);
    CHECK(in(one, nb));
    // For /81 the last address is ::ffff:ffff:ffff, an IPv4-mapped one: that
    // is an IPv4 client, which no IPv6 prefix matches.
    if (len == 81) {
      CHECK_FALSE(in(one, lb));
    } else {
      CHECK(in(one, lb));
    }
    CHECK_FALSE(in(one, bb));
  }
}

TEST_CASE("cidr: other families, null and an empty set contain nothing", "[cidr]") {
  const CidrSet all = set_of({"0.0.0.0/0", "::/0"});
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  CHECK_FALSE(all.contains(reinterpret_cast<const sockaddr*>(&un)));
  CHECK_FALSE(all.contains(nullptr));
  const CidrSet none;
  CHECK(none.empty());
  CHECK_FALSE(in(none, "10.0.0.1"));
  CHECK_FALSE(in(none, "::1"));
}
