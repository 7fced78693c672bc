// Tests for src/net/proxy_protocol: the PROXY protocol v1/v2 header parser.
//
// v1 headers are written out as text; v2 headers are built here byte by byte
// from the spec (signature, version/command, family, length, address block,
// TLVs, CRC32C computed bit by bit), never with the parser's own code. Each
// input is fed whole, split in two at every offset, in three pieces when
// short, and byte by byte; every run must give the same addresses and TLVs,
// stop at the same offset, and leave exactly the same application bytes
// (an HTTP request, a TLS ClientHello, even another PROXY header) to the
// caller; an invalid one must fail with the same error at the same offset.
// Each piece is copied into a buffer of its own exact size, so a read past
// the span shows up under the sanitizers.
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "net/proxy_protocol.hpp"

namespace {

using sluice::net::ProxyHeaderParser;
using sluice::net::ProxyInfo;
using Status = ProxyHeaderParser::Status;
namespace net = sluice::net;
using Bytes = std::vector<std::uint8_t>;

Bytes bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 0xF];
  }
  return out;
}
std::string hex(const Bytes& b) { return hex(b.data(), b.size()); }
std::string hex(std::string_view s) { return hex(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

// ---- v2 headers, by hand (spec 2.2) ----

const Bytes kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::uint8_t kProxy = 0x21, kLocal = 0x20;
constexpr std::uint8_t kTcp4 = 0x11, kUdp4 = 0x12, kTcp6 = 0x21, kUdp6 = 0x22, kUnixStream = 0x31,
                       kUnspec = 0x00;

void put16(Bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

// Signature, version/command, family, then the length: the body's own unless
// `length` says otherwise (to build lying headers).
Bytes v2(std::uint8_t ver_cmd, std::uint8_t fam, const Bytes& body, long length = -1) {
  Bytes b = kV2Signature;
  b.push_back(ver_cmd);
  b.push_back(fam);
  put16(b, length < 0 ? body.size() : static_cast<std::size_t>(length));
  return cat(b, body);
}

Bytes inet4(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  Bytes b(8);
  REQUIRE(inet_pton(AF_INET, src, b.data()) == 1);
  REQUIRE(inet_pton(AF_INET, dst, b.data() + 4) == 1);
  put16(b, sport);
  put16(b, dport);
  return b;
}

Bytes inet6(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  Bytes b(32);
  REQUIRE(inet_pton(AF_INET6, src, b.data()) == 1);
  REQUIRE(inet_pton(AF_INET6, dst, b.data() + 16) == 1);
  put16(b, sport);
  put16(b, dport);
  return b;
}

Bytes tlv(std::uint8_t type, const Bytes& value) {
  Bytes b{type};
  put16(b, value.size());
  return cat(b, value);
}
Bytes tlv(std::uint8_t type, std::string_view value) { return tlv(type, bytes(value)); }

// CRC32C bit by bit (Castagnoli, reflected 0x82F63B78).
std::uint32_t crc32c(const Bytes& b) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::uint8_t byte : b) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

// A PROXY header whose TLVs are `before`, a CRC32C TLV, then `after`; the
// checksum covers the whole header with its own value zeroed (spec 2.2.5),
// plus `flip` xored in to make it wrong.
Bytes v2_with_crc(std::uint8_t fam, const Bytes& addr, const Bytes& before, const Bytes& after,
                  std::uint32_t flip = 0) {
  Bytes h = v2(kProxy, fam, cat(cat(cat(addr, before), tlv(0x03, Bytes{0, 0, 0, 0})), after));
  const std::uint32_t crc = crc32c(h) ^ flip;
  const std::size_t at = 16 + addr.size() + before.size() + 3;
  for (int i = 0; i < 4; ++i) h[at + i] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
  return h;
}

// ---- running the parser ----

std::string endpoint(const sockaddr_storage& ss, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(ss);
    REQUIRE(len == sizeof(sockaddr_in));
    inet_ntop(AF_INET, &in4.sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in4.sin_port));
  }
  REQUIRE(ss.ss_family == AF_INET6);
  REQUIRE(len == sizeof(sockaddr_in6));
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
  inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6.sin6_port));
}

std::string describe(const ProxyInfo& info) {
  std::ostringstream s;
  s << "v" << int(info.version);
  if (info.command == ProxyInfo::Command::Proxy) {
    s << " proxy " << endpoint(info.source, info.source_len) << " -> "
      << endpoint(info.destination, info.destination_len);
  } else {
    s << " local";
    CHECK(info.source_len == 0);
    CHECK(info.destination_len == 0);
  }
  s << " bytes=" << info.header_bytes;
  if (info.alpn.size) s << " alpn=" << info.alpn.view();
  if (info.authority.size) s << " authority=" << info.authority.view();
  if (info.unique_id.size) s << " uid=" << hex(info.unique_id.view());
  if (info.crc32c_checked) s << " crc";
  return s.str();
}

// What the parser made of `input` fed in the pieces `cuts` marks: the header
// it read and the bytes it left to the application, or the error and the
// absolute offset it stopped at, or "need more".
std::string run(const Bytes& input, const std::vector<std::size_t>& cuts) {
  ProxyHeaderParser parser;
  std::size_t begin = 0;
  bool done = false;
  std::string head;
  Bytes rest;
  for (std::size_t k = 0; k <= cuts.size(); ++k) {
    const std::size_t end = k < cuts.size() ? cuts[k] : input.size();
    const Bytes piece(input.begin() + static_cast<std::ptrdiff_t>(begin),
                      input.begin() + static_cast<std::ptrdiff_t>(end));
    std::size_t consumed = 999999;
    const Status s = parser.feed(piece, consumed);
    REQUIRE(consumed <= piece.size());
    if (done) {
      // Once Done, always Done, and nothing more is taken.
      REQUIRE(s == Status::Done);
      REQUIRE(consumed == 0);
      rest.insert(rest.end(), piece.begin(), piece.end());
    } else if (s == Status::NeedMore) {
      REQUIRE(consumed == piece.size());
      REQUIRE(parser.error() == nullptr);
    } else if (s == Status::Done) {
      REQUIRE(parser.error() == nullptr);
      done = true;
      head = describe(parser.info()) + " at=" + std::to_string(begin + consumed);
      rest.insert(rest.end(), piece.begin() + static_cast<std::ptrdiff_t>(consumed), piece.end());
    } else {
      REQUIRE(parser.error() != nullptr);
      const char* why = parser.error();
      // Sticky: the same answer, nothing taken.
      std::size_t again = 999999;
      CHECK(parser.feed(piece, again) == Status::Invalid);
      CHECK(again == 0);
      CHECK(parser.error() == why);
      return std::string("invalid: ") + why + " at=" + std::to_string(begin + consumed);
    }
    begin = end;
  }
  if (!done) return "need more";
  return head + " rest=" + hex(rest);
}

// Whole, every 2-way split, every 3-way split of inputs up to 140 bytes, and
// byte by byte: all must read as `want`.
void sweep(const Bytes& input, const std::string& want) {
  const std::size_t n = input.size();
  {
    INFO("fed whole");
    REQUIRE(run(input, {}) == want);
  }
  for (std::size_t i = 0; i <= n; ++i) {
    INFO("split at " << i);
    REQUIRE(run(input, {i}) == want);
  }
  if (n <= 140) {
    for (std::size_t i = 0; i <= n; ++i) {
      for (std::size_t j = i; j <= n; ++j) {
        INFO("split at " << i << " and " << j);
        REQUIRE(run(input, {i, j}) == want);
      }
    }
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < n; ++i) every.push_back(i);
  INFO("byte by byte");
  REQUIRE(run(input, every) == want);
}

// Application bytes that follow a header in the tests: they must come back
// untouched.
const Bytes kHttp = bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
const Bytes kClientHello = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, 0x0D, 0x0A};

// A valid header: read as `want`, at every split, with each kind of
// application bytes after it; and every proper prefix of it needs more.
void expect_header(const Bytes& header, const std::string& want) {
  INFO("header " << hex(header));
  const std::string at = " at=" + std::to_string(header.size());
  for (const Bytes& app : {Bytes{}, kHttp, kClientHello, header}) {
    INFO("then " << hex(app));
    sweep(cat(header, app), want + at + " rest=" + hex(app));
  }
  for (std::size_t len = 0; len < header.size(); ++len) {
    INFO("prefix of " << len);
    REQUIRE(run(Bytes(header.begin(), header.begin() + static_cast<std::ptrdiff_t>(len)), {}) == "need more");
  }
}

// An invalid input: `why` at offset `at`, at every split, whatever follows.
void expect_invalid(const Bytes& input, const std::string& why, std::size_t at) {
  INFO("input " << hex(input));
  const std::string want = "invalid: " + why + " at=" + std::to_string(at);
  sweep(input, want);
  sweep(cat(input, kHttp), want);
}

void expect_invalid(std::string_view input, const std::string& why) {
  const Bytes b = bytes(input);
  expect_invalid(b, why, b.size());
}

const char* kLongest6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

}  // namespace

// ---- v1 ----

TEST_CASE("proxy v1: TCP4 reads the same at every split point and leaves the request", "[proxy]") {
  expect_header(bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
                "v1 proxy 192.168.0.1:56324 -> 192.168.0.11:443 bytes=47");
  expect_header(bytes("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
                "v1 proxy 0.0.0.0:0 -> 255.255.255.255:65535 bytes=44");
  expect_header(bytes("PROXY TCP4 10.20.30.40 1.2.3.4 1 10\r\n"), "v1 proxy 10.20.30.40:1 -> 1.2.3.4:10 bytes=37");
}

TEST_CASE("proxy v1: TCP6 reads the same at every split point", "[proxy]") {
  expect_header(bytes("PROXY TCP6 2001:db8::1 ::1 40000 8443\r\n"),
                "v1 proxy [2001:db8::1]:40000 -> [::1]:8443 bytes=39");
  expect_header(bytes("PROXY TCP6 ::ffff:10.1.2.3 FD00::AB 1 2\r\n"),
                "v1 proxy [::ffff:10.1.2.3]:1 -> [fd00::ab]:2 bytes=41");
  const std::string longest = std::string("PROXY TCP6 ") + kLongest6 + " " + kLongest6 + " 65535 65535\r\n";
  REQUIRE(longest.size() == 104);
  expect_header(bytes(longest), std::string("v1 proxy [") + kLongest6 + "]:65535 -> [" + kLongest6 +
                                    "]:65535 bytes=104");
}

TEST_CASE("proxy v1: UNKNOWN means the connection's own addresses", "[proxy]") {
  expect_header(bytes("PROXY UNKNOWN\r\n"), "v1 local bytes=15");
  // Whatever follows UNKNOWN is ignored (spec 2.1), up to the longest line.
  expect_header(bytes("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"), "v1 local bytes=35");
  expect_header(bytes("PROXY UNKNOWN  anything at all\r\n"), "v1 local bytes=32");
  const std::string longest = std::string("PROXY UNKNOWN ") + kLongest6 + " " + kLongest6 + " 65535 65535\r\n";
  REQUIRE(longest.size() == net::kMaxProxyV1Bytes);
  expect_header(bytes(longest), "v1 local bytes=107");
}

TEST_CASE("proxy v1: the parsed addresses are ready for the accept path", "[proxy]") {
  ProxyHeaderParser p;
  const Bytes in = bytes("PROXY TCP4 192.0.2.7 198.51.100.9 5000 443\r\nGET");
  std::size_t consumed = 0;
  REQUIRE(p.feed(in, consumed) == Status::Done);
  CHECK(consumed == in.size() - 3);
  const ProxyInfo& info = p.info();
  CHECK(info.version == 1);
  CHECK(info.command == ProxyInfo::Command::Proxy);
  REQUIRE(info.source.ss_family == AF_INET);
  REQUIRE(info.source_len == sizeof(sockaddr_in));
  const auto& src = reinterpret_cast<const sockaddr_in&>(info.source);
  CHECK(src.sin_port == htons(5000));
  CHECK(src.sin_addr.s_addr == htonl(0xC0000207u));
  const auto& dst = reinterpret_cast<const sockaddr_in&>(info.destination);
  CHECK(dst.sin_family == AF_INET);
  CHECK(dst.sin_port == htons(443));
}

TEST_CASE("proxy: anything that does not start like a header fails on its first wrong byte", "[proxy]") {
  expect_invalid(bytes("GET / HTTP/1.1\r\n"), "not a PROXY protocol header", 1);
  expect_invalid(kClientHello, "not a PROXY protocol header", 1);
  expect_invalid(bytes("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "not a PROXY protocol header", 1);
  expect_invalid(bytes("PROXy TCP4"), "not a PROXY protocol header", 5);
  expect_invalid(bytes("PROXYTCP4 1.2.3.4"), "not a PROXY protocol header", 6);
  expect_invalid(bytes("PROXY\r\n"), "not a PROXY protocol header", 6);
  expect_invalid(bytes("PROXY\tTCP4"), "not a PROXY protocol header", 6);
  expect_invalid(Bytes{0x00}, "not a PROXY protocol header", 1);
  expect_invalid(bytes("\r\n\r\nGET"), "not a PROXY protocol header", 5);
  // Each byte of the v2 signature in turn.
  const Bytes good = v2(kLocal, kUnspec, {});
  for (std::size_t k = 1; k < 12; ++k) {
    Bytes bad = good;
    bad[k] ^= 0x20;
    INFO("signature byte " << k);
    expect_invalid(bad, "not a PROXY protocol header", k + 1);
  }
}

TEST_CASE("proxy v1: a line over 107 bytes is refused at byte 107", "[proxy]") {
  expect_invalid(bytes("PROXY UNKNOWN " + std::string(92, 'a') + "\r\n"), "v1: no CRLF within 107 bytes", 107);
  expect_invalid(bytes("PROXY UNKNOWN " + std::string(300, 'a')), "v1: no CRLF within 107 bytes", 107);
  expect_invalid(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + std::string(100, ' ') + "\r\n"),
                 "v1: no CRLF within 107 bytes", 107);
  // 106 bytes and no CRLF yet: still waiting.
  CHECK(run(bytes("PROXY UNKNOWN " + std::string(92, 'a')), {}) == "need more");
}

TEST_CASE("proxy v1: the line ends in CRLF and nothing else", "[proxy]") {
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1: line must end in CRLF");
  expect_invalid("PROXY UNKNOWN\n", "v1: line must end in CRLF");
  expect_invalid("PROXY \n", "v1: line must end in CRLF");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "v1: stray CR");
  expect_invalid("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "v1: stray CR");
  expect_invalid("PROXY UNKNOWN \r \r\n", "v1: stray CR");
}

TEST_CASE("proxy v1: fields are separated by exactly one space", "[proxy]") {
  const std::string why = "v1: fields must be separated by exactly one space";
  expect_invalid("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", why);
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", why);
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", why);
  expect_invalid("PROXY \r\n", why);
  expect_invalid("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", "v1: protocol must be TCP4, TCP6 or UNKNOWN");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1: expected protocol, two addresses and two ports");
  expect_invalid("PROXY TCP4\r\n", "v1: expected protocol, two addresses and two ports");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "v1: too many fields");
}

TEST_CASE("proxy v1: the protocol is TCP4, TCP6 or UNKNOWN, in capitals", "[proxy]") {
  const std::string why = "v1: protocol must be TCP4, TCP6 or UNKNOWN";
  expect_invalid("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY TCP46 1.2.3.4 5.6.7.8 1 2\r\n", why);
  expect_invalid("PROXY UNKNOWNX\r\n", why);
  expect_invalid("PROXY unknown\r\n", why);
}

TEST_CASE("proxy v1: addresses are strict and match the protocol's family", "[proxy]") {
  expect_invalid("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 127.1 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.255x 1 2\r\n", "v1: destination is not an IPv4 address");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n", "v1: destination is not an IPv4 address");
  // Family mismatch, both ways.
  expect_invalid("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "v1: source is not an IPv4 address");
  expect_invalid("PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "v1: destination is not an IPv4 address");
  expect_invalid("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "v1: source is not an IPv6 address");
  expect_invalid("PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "v1: destination is not an IPv6 address");
  expect_invalid("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "v1: source is not an IPv6 address");
  expect_invalid("PROXY TCP6 [::1] ::1 1 2\r\n", "v1: source is not an IPv6 address");
  expect_invalid("PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9 1 2\r\n", "v1: destination is not an IPv6 address");
}

TEST_CASE("proxy v1: ports are 0..65535 in plain decimal", "[proxy]") {
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", "v1: bad source port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "v1: bad destination port");
  expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 0443\r\n", "v1: bad destination port");
  expect_invalid("PROXY TCP6 ::1 ::2 1 70000\r\n", "v1: bad destination port");
}

// ---- v2 ----

TEST_CASE("proxy v2: PROXY over TCP/IPv4, with and without TLVs", "[proxy]") {
  const Bytes addr = inet4("192.168.0.1", "192.168.0.11", 56324, 443);
  expect_header(v2(kProxy, kTcp4, addr), "v2 proxy 192.168.0.1:56324 -> 192.168.0.11:443 bytes=28");
  // TLVs we keep, and others that must be skipped: NOOP, SSL with sub-TLVs,
  // NETNS, a custom one, an empty one.
  const Bytes ssl = cat(Bytes{0x05, 0x00, 0x00, 0x00, 0x00}, tlv(0x21, "TLSv1.3"));
  const Bytes tlvs = cat(cat(cat(tlv(0x01, "h2"), tlv(0x02, "chat.example.com")), cat(tlv(0x04, "pad"), tlv(0x20, ssl))),
                         cat(cat(tlv(0x05, Bytes{0xDE, 0xAD, 0x00, 0xBE}), tlv(0x30, "ns1")),
                             cat(tlv(0xE0, "vendor"), tlv(0xEA, Bytes{}))));
  expect_header(v2(kProxy, kTcp4, cat(addr, tlvs)),
                "v2 proxy 192.168.0.1:56324 -> 192.168.0.11:443 bytes=" + std::to_string(28 + tlvs.size()) +
                    " alpn=h2 authority=chat.example.com uid=dead00be");
}

TEST_CASE("proxy v2: PROXY over TCP/IPv6, with and without TLVs", "[proxy]") {
  const Bytes addr = inet6("2001:db8::1", "fd00::443", 40000, 8443);
  expect_header(v2(kProxy, kTcp6, addr), "v2 proxy [2001:db8::1]:40000 -> [fd00::443]:8443 bytes=52");
  const Bytes tlvs = cat(tlv(0x05, Bytes(128, 0x5A)), tlv(0x02, std::string(255, 'h')));
  expect_header(v2(kProxy, kTcp6, cat(addr, tlvs)),
                "v2 proxy [2001:db8::1]:40000 -> [fd00::443]:8443 bytes=" + std::to_string(52 + tlvs.size()) +
                    " authority=" + std::string(255, 'h') + " uid=" + hex(Bytes(128, 0x5A)));
}

TEST_CASE("proxy v2: a CRC32C TLV is checked", "[proxy]") {
  REQUIRE(crc32c(bytes("123456789")) == 0xE3069283u);  // the test's own CRC, against the standard check value
  const Bytes addr4 = inet4("10.0.0.1", "10.0.0.2", 1000, 80);
  expect_header(v2_with_crc(kTcp4, addr4, {}, {}), "v2 proxy 10.0.0.1:1000 -> 10.0.0.2:80 bytes=35 crc");
  expect_header(v2_with_crc(kTcp6, inet6("::1", "::2", 1, 2), tlv(0x01, "http/1.1"), tlv(0x04, Bytes(40, 0))),
                "v2 proxy [::1]:1 -> [::2]:2 bytes=113 alpn=http/1.1 crc");
  const Bytes wrong = v2_with_crc(kTcp4, addr4, {}, tlv(0x04, "x"), 1);
  expect_invalid(wrong, "v2: CRC32C mismatch", wrong.size());
  expect_invalid(v2(kProxy, kTcp4, cat(addr4, tlv(0x03, Bytes{1, 2, 3}))), "v2: CRC32C TLV must be 4 bytes", 31);
  expect_invalid(v2(kProxy, kTcp4, cat(addr4, tlv(0x03, Bytes{1, 2, 3, 4, 5}))), "v2: CRC32C TLV must be 4 bytes",
                 31);
}

TEST_CASE("proxy v2: LOCAL keeps the connection's addresses and skips the block unread", "[proxy]") {
  expect_header(v2(kLocal, kUnspec, {}), "v2 local bytes=16");
  expect_header(v2(kLocal, kTcp4, inet4("1.2.3.4", "5.6.7.8", 1, 2)), "v2 local bytes=28");
  // The family "is ignored" (spec 2.2), and so is everything in the block.
  expect_header(v2(kLocal, 0xFF, Bytes{1, 2, 3, 4, 5}), "v2 local bytes=21");
  expect_header(v2(kLocal, kTcp6, Bytes{0x01, 0xFF, 0xFF}), "v2 local bytes=19");
}

TEST_CASE("proxy v2: families we do not relay read as local, their TLVs still checked", "[proxy]") {
  expect_header(v2(kProxy, kUnspec, {}), "v2 local bytes=16");
  expect_header(v2(kProxy, kUnspec, tlv(0x01, "h2")), "v2 local bytes=21 alpn=h2");
  expect_header(v2(kProxy, kUdp4, inet4("1.2.3.4", "5.6.7.8", 53, 53)), "v2 local bytes=28");
  expect_header(v2(kProxy, kUdp6, inet6("::1", "::2", 53, 53)), "v2 local bytes=52");
  Bytes unix_block(216, 0);
  unix_block[0] = '/';
  unix_block[108] = '/';
  expect_header(v2(kProxy, kUnixStream, cat(unix_block, tlv(0x02, "x.test"))), "v2 local bytes=241 authority=x.test");
  expect_header(v2(kProxy, 0x32, unix_block), "v2 local bytes=232");
  expect_invalid(v2(kProxy, kUnspec, tlv(0x01, "h2"), 4), "v2: TLV overruns the header", 19);
  expect_invalid(v2(kProxy, kUnixStream, cat(unix_block, Bytes{0x01})), "v2: truncated TLV", 232);
}

TEST_CASE("proxy v2: the largest header under the cap is read, one byte more is refused", "[proxy]") {
  const Bytes addr = inet4("1.1.1.1", "2.2.2.2", 1, 2);
  const std::size_t pad = net::kMaxProxyV2Bytes - 16 - 12 - 3;
  const Bytes biggest = v2(kProxy, kTcp4, cat(addr, tlv(0x04, Bytes(pad, 0xAB))));
  REQUIRE(biggest.size() == net::kMaxProxyV2Bytes);
  const std::string want = "v2 proxy 1.1.1.1:1 -> 2.2.2.2:2 bytes=4096 at=4096 rest=";
  sweep(cat(biggest, kHttp), want + hex(kHttp));
  // Refused as soon as the length is read, before any of the block arrives.
  const Bytes over = v2(kProxy, kTcp4, cat(addr, tlv(0x04, Bytes(pad + 1, 0xAB))));
  expect_invalid(over, "v2: header longer than the 4 KiB cap", 16);
  expect_invalid(v2(kProxy, kTcp4, {}, 0xFFFF), "v2: header longer than the 4 KiB cap", 16);
  expect_invalid(v2(kLocal, kUnspec, {}, 0xFFFF), "v2: header longer than the 4 KiB cap", 16);
}

TEST_CASE("proxy v2: version 2 only, command LOCAL or PROXY only", "[proxy]") {
  const Bytes addr = inet4("1.2.3.4", "5.6.7.8", 1, 2);
  for (std::uint8_t ver : {0x0, 0x1, 0x3, 0xF}) {
    INFO("version " << int(ver));
    expect_invalid(v2(static_cast<std::uint8_t>(ver << 4 | 1), kTcp4, addr), "v2: version must be 2", 16);
  }
  for (std::uint8_t cmd : {0x2, 0x3, 0xF}) {
    INFO("command " << int(cmd));
    expect_invalid(v2(static_cast<std::uint8_t>(0x20 | cmd), kTcp4, addr), "v2: command must be LOCAL or PROXY", 16);
  }
}

TEST_CASE("proxy v2: unknown families and transports are refused", "[proxy]") {
  for (std::uint8_t fam : {0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0xFF}) {
    INFO("family/transport " << int(fam));
    expect_invalid(v2(kProxy, fam, Bytes(216, 0)), "v2: unknown address family or transport", 16);
  }
}

TEST_CASE("proxy v2: a length too small for the family's address block is refused", "[proxy]") {
  const std::string why = "v2: length shorter than the address block";
  expect_invalid(v2(kProxy, kTcp4, Bytes(11, 0)), why, 16);
  expect_invalid(v2(kProxy, kTcp4, {}), why, 16);
  expect_invalid(v2(kProxy, kUdp4, Bytes(11, 0)), why, 16);
  expect_invalid(v2(kProxy, kTcp6, Bytes(35, 0)), why, 16);
  expect_invalid(v2(kProxy, kTcp6, Bytes(12, 0)), why, 16);
  expect_invalid(v2(kProxy, kUnixStream, Bytes(215, 0)), why, 16);
}

TEST_CASE("proxy v2: TLVs must fit the header exactly", "[proxy]") {
  const Bytes addr = inet4("1.2.3.4", "5.6.7.8", 1, 2);
  // A TLV claiming more than is left: refused when its length is read.
  expect_invalid(v2(kProxy, kTcp4, cat(addr, Bytes{0x04, 0x00, 0x06, 'a', 'b', 'c', 'd', 'e'})),
                 "v2: TLV overruns the header", 31);
  expect_invalid(v2(kProxy, kTcp4, cat(cat(addr, tlv(0x01, "h2")), Bytes{0xE0, 0xFF, 0xFF})),
                 "v2: TLV overruns the header", 36);
  // Fewer than 3 bytes left where a TLV should start.
  expect_invalid(v2(kProxy, kTcp4, cat(addr, Bytes{0x04})), "v2: truncated TLV", 28);
  expect_invalid(v2(kProxy, kTcp4, cat(addr, Bytes{0x04, 0x00})), "v2: truncated TLV", 28);
  expect_invalid(v2(kProxy, kTcp4, cat(cat(addr, tlv(0x04, "")), Bytes{0x04, 0x00})), "v2: truncated TLV", 31);
  // A lying length that cuts the address block's TLV short.
  expect_invalid(v2(kProxy, kTcp6, cat(inet6("::1", "::2", 1, 2), tlv(0x01, "h2")), 37), "v2: truncated TLV", 52);
}

TEST_CASE("proxy v2: kept TLVs have their limits and come once", "[proxy]") {
  const Bytes addr = inet4("1.2.3.4", "5.6.7.8", 1, 2);
  expect_invalid(v2(kProxy, kTcp4, cat(addr, tlv(0x01, std::string(256, 'a')))), "v2: TLV value too long", 31);
  expect_invalid(v2(kProxy, kTcp4, cat(addr, tlv(0x02, std::string(256, 'a')))), "v2: TLV value too long", 31);
  expect_invalid(v2(kProxy, kTcp4, cat(addr, tlv(0x05, Bytes(129, 1)))), "v2: TLV value too long", 31);
  expect_invalid(v2(kProxy, kTcp4, cat(cat(addr, tlv(0x01, "h2")), tlv(0x01, "h2"))), "v2: duplicate TLV", 36);
  expect_invalid(v2(kProxy, kTcp4, cat(cat(addr, tlv(0x02, "a")), tlv(0x02, "b"))), "v2: duplicate TLV", 35);
  expect_invalid(v2(kProxy, kTcp4, cat(cat(addr, tlv(0x05, "a")), tlv(0x05, "a"))), "v2: duplicate TLV", 35);
  const Bytes two_crc = cat(cat(addr, tlv(0x03, Bytes{0, 0, 0, 0})), tlv(0x03, Bytes{0, 0, 0, 0}));
  expect_invalid(v2(kProxy, kTcp4, two_crc), "v2: duplicate TLV", 38);
  // Skipped types may repeat.
  expect_header(v2(kProxy, kTcp4, cat(cat(addr, tlv(0x04, "a")), tlv(0x04, "b"))),
                "v2 proxy 1.2.3.4:1 -> 5.6.7.8:2 bytes=36");
}

TEST_CASE("proxy: a header that stalls just needs more, and later calls change nothing", "[proxy]") {
  ProxyHeaderParser p;
  std::size_t consumed = 99;
  CHECK(p.feed({}, consumed) == Status::NeedMore);
  CHECK(consumed == 0);
  const Bytes part = bytes("PROXY TCP4 1.2.3.4");
  CHECK(p.feed(part, consumed) == Status::NeedMore);
  CHECK(consumed == part.size());
  CHECK(p.feed({}, consumed) == Status::NeedMore);
  const Bytes more = bytes(" 5.6.7.8 1 2\r\nPROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n");
  CHECK(p.feed(more, consumed) == Status::Done);
  CHECK(consumed == 14);
  // The second header is the application's business, not ours.
  CHECK(p.feed(more, consumed) == Status::Done);
  CHECK(consumed == 0);
  CHECK(describe(p.info()) == "v1 proxy 1.2.3.4:1 -> 5.6.7.8:2 bytes=32");
}
