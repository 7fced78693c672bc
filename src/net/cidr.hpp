// Address prefixes ("10.0.0.0/8", "fd00::/8", "::1") and a set of them, for
// settings such as trusted_proxies; plus the strict textual IP forms shared
// with the PROXY protocol v1 parser.
//
// IPv4 and IPv6 prefixes are kept apart: an IPv4 client (or an IPv4-mapped
// IPv6 one, ::ffff:a.b.c.d, which is how a dual-stack socket reports it)
// matches IPv4 prefixes only, and "::/0" means every IPv6 client, not every
// client. A prefix written in mapped form (::ffff:10.0.0.0/104) is stored as
// the IPv4 prefix it names (10.0.0.0/8).
// Parsing allocates (error text); contains() is pure: no allocation, no I/O.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::net {

// A dotted quad, each part 0..255 in decimal with no leading zeros ("0" is
// fine, "01" and "1.2.3" are not). out is in network order.
bool parse_ipv4(std::string_view text, in_addr& out) noexcept;
// IPv6 text (RFC 4291 2.2, including the embedded-IPv4 forms); no zone id,
// no brackets.
bool parse_ipv6(std::string_view text, in6_addr& out) noexcept;

struct CidrPrefix {
  sa_family_t family = AF_UNSPEC;  // AF_INET or AF_INET6
  std::uint8_t length = 0;         // 0..32 or 0..128
  // The network in host order: IPv6 as two 64-bit halves, IPv4 in the low 32
  // bits of lo (hi = 0). Bits past `length` are zero, as are those of the masks.
  std::uint64_t hi = 0, lo = 0;
  std::uint64_t mask_hi = 0, mask_lo = 0;
};

// "10.0.0.0/8", "fd00::/8", or a bare address (/32 or /128). Refuses, with a
// message fit for a config error, a bad address, a prefix length that is not
// plain decimal or out of range, and host bits set past the prefix
// ("10.1.0.0/8": nginx would mask it silently; a typo in a trust list should
// not widen or narrow it unseen, so the message names the intended network).
std::variant<CidrPrefix, std::string> parse_cidr(std::string_view text);

// Canonical text: "10.0.0.0/8", "fd00::/8", "::1/128".
std::string to_string(const CidrPrefix& p);

class CidrSet {
 public:
  void add(const CidrPrefix& p) { prefixes_.push_back(p); }

  // AF_INET and AF_INET6 (IPv4-mapped addresses checked as IPv4); any other
  // family, or nullptr, is never contained. A linear scan: trust lists are a
  // handful of entries.
  bool contains(const sockaddr* addr) const noexcept;

  bool empty() const noexcept { return prefixes_.empty(); }
  std::size_t size() const noexcept { return prefixes_.size(); }
  const std::vector<CidrPrefix>& prefixes() const noexcept { return prefixes_; }

 private:
  std::vector<CidrPrefix> prefixes_;
};

}  // namespace sluice::net
