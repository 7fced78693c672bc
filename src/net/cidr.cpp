// Address prefixes and prefix sets; see cidr.hpp.
#include "net/cidr.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace sluice::net {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool is_hex_digit(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::uint64_t load_be64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}

// The top `bits` bits of a 64-bit word set (bits clamped to 0..64).
std::uint64_t top_bits(int bits) noexcept {
  if (bits <= 0) return 0;
  if (bits >= 64) return ~std::uint64_t{0};
  return ~std::uint64_t{0} << (64 - bits);
}

// ::ffff:0:0/96 in two halves: the IPv4-mapped block.
constexpr std::uint64_t kMappedHi = 0;
constexpr std::uint64_t kMappedLoTop = 0x0000'FFFF'0000'0000ull;

// An address as the lookup sees it: family, and the same layout as CidrPrefix.
struct Key {
  sa_family_t family;
  std::uint64_t hi, lo;
};

Key key_of_v6(const in6_addr& a) noexcept {
  const std::uint64_t hi = load_be64(a.s6_addr);
  const std::uint64_t lo = load_be64(a.s6_addr + 8);
  if (hi == kMappedHi && (lo & 0xFFFF'FFFF'0000'0000ull) == kMappedLoTop) {
    return {AF_INET, 0, lo & 0xFFFF'FFFFull};
  }
  return {AF_INET6, hi, lo};
}

}  // namespace

bool parse_ipv4(std::string_view text, in_addr& out) noexcept {
  std::uint32_t value = 0;
  std::size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= text.size() || text[i] != '.') return false;
      ++i;
    }
    const std::size_t start = i;
    unsigned n = 0;
    while (i < text.size() && is_digit(text[i]) && i - start < 3) n = n * 10 + unsigned(text[i++] - '0');
    const std::size_t len = i - start;
    if (len == 0 || n > 255 || (len > 1 && text[start] == '0')) return false;
    value = (value << 8) | n;
  }
  if (i != text.size()) return false;  // a fourth dot, a fourth digit, anything else
  out.s_addr = htonl(value);
  return true;
}

bool parse_ipv6(std::string_view text, in6_addr& out) noexcept {
  // The longest text form is 45 characters (ffff:...:ffff:255.255.255.255).
  std::array<char, INET6_ADDRSTRLEN> z{};
  if (text.empty() || text.size() >= z.size()) return false;
  for (char c : text) {
    if (!is_hex_digit(c) && c != ':' && c != '.') return false;
  }
  std::memcpy(z.data(), text.data(), text.size());
  return inet_pton(AF_INET6, z.data(), &out) == 1;
}

std::variant<CidrPrefix, std::string> parse_cidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  if (addr_text.empty()) return "missing address in \"" + std::string(text) + "\"";

  CidrPrefix p;
  unsigned max_len = 0;
  if (addr_text.find(':') != std::string_view::npos) {
    in6_addr a{};
    if (!parse_ipv6(addr_text, a)) return "invalid IPv6 address \"" + std::string(addr_text) + "\"";
    p.family = AF_INET6;
    p.hi = load_be64(a.s6_addr);
    p.lo = load_be64(a.s6_addr + 8);
    max_len = 128;
  } else {
    in_addr a{};
    if (!parse_ipv4(addr_text, a)) return "invalid IPv4 address \"" + std::string(addr_text) + "\"";
    p.family = AF_INET;
    p.lo = ntohl(a.s_addr);
    max_len = 32;
  }

  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const bool plain = !digits.empty() && digits.size() <= 3 &&
                       (digits.size() == 1 || digits[0] != '0');
    bool all_digits = true;
    for (char c : digits) all_digits = all_digits && is_digit(c);
    if (!plain || !all_digits) {
      return "invalid prefix length \"/" + std::string(digits) + "\" in \"" + std::string(text) +
             "\" (expected /0../" + std::to_string(max_len) + ")";
    }
    len = 0;
    for (char c : digits) len = len * 10 + unsigned(c - '0');
    if (len > max_len) {
      return "prefix length /" + std::to_string(len) + " is out of range for " +
             (p.family == AF_INET ? "IPv4" : "IPv6") + " in \"" + std::string(text) + "\" (0.." +
             std::to_string(max_len) + ")";
    }
  }
  p.length = static_cast<std::uint8_t>(len);
  if (p.family == AF_INET) {
    p.mask_lo = top_bits(static_cast<int>(len)) >> 32;
  } else {
    p.mask_hi = top_bits(static_cast<int>(len));
    p.mask_lo = top_bits(static_cast<int>(len) - 64);
  }
  if ((p.hi & ~p.mask_hi) != 0 || (p.lo & ~p.mask_lo) != 0) {
    CidrPrefix masked = p;
    masked.hi &= p.mask_hi;
    masked.lo &= p.mask_lo;
    return "host bits are set past the /" + std::to_string(len) + " prefix in \"" + std::string(text) +
           "\" (did you mean \"" + to_string(masked) + "\"?)";
  }
  // A mapped prefix names IPv4 addresses, and lookups see those as IPv4.
  if (p.family == AF_INET6 && len >= 96 && p.hi == kMappedHi &&
      (p.lo & 0xFFFF'FFFF'0000'0000ull) == kMappedLoTop) {
    p.family = AF_INET;
    p.length = static_cast<std::uint8_t>(len - 96);
    p.lo &= 0xFFFF'FFFFull;
    p.mask_hi = 0;
    p.mask_lo &= 0xFFFF'FFFFull;
  }
  return p;
}

std::string to_string(const CidrPrefix& p) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (p.family == AF_INET) {
    in_addr a{};
    a.s_addr = htonl(static_cast<std::uint32_t>(p.lo));
    inet_ntop(AF_INET, &a, buf.data(), buf.size());
  } else {
    in6_addr a{};
    store_be64(a.s6_addr, p.hi);
    store_be64(a.s6_addr + 8, p.lo);
    inet_ntop(AF_INET6, &a, buf.data(), buf.size());
  }
  return std::string(buf.data()) + "/" + std::to_string(p.length);
}

bool CidrSet::contains(const sockaddr* addr) const noexcept {
  if (addr == nullptr) return false;
  Key k{};
  if (addr->sa_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(addr);
    k = {AF_INET, 0, ntohl(in4->sin_addr.s_addr)};
  } else if (addr->sa_family == AF_INET6) {
    k = key_of_v6(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr);
  } else {
    return false;
  }
  for (const CidrPrefix& p : prefixes_) {
    if (p.family == k.family && (k.hi & p.mask_hi) == p.hi && (k.lo & p.mask_lo) == p.lo) return true;
  }
  return false;
}

}  // namespace sluice::net
