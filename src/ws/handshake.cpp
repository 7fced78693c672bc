// Handshake helpers: see handshake.hpp.
#include "ws/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>

#include "http/headers.hpp"

namespace sluice::ws {
namespace {

constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kKeyBytes = 16;
constexpr std::size_t kKeyChars = 24;  // 4 * ceil(16 / 3)

// Value of a standard-alphabet base64 character, or -1.
int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string base64(const unsigned char* p, std::size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');  // EVP_EncodeBlock writes a NUL
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p,
                                  static_cast<int>(n));
  out.resize(len > 0 ? static_cast<std::size_t>(len) : 0);
  return out;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(char c) noexcept {
  const char l = http::ascii_lower(c);
  return is_digit(c) || (l >= 'a' && l <= 'f');
}

// Dot-separated non-empty labels of letters, digits, '-' and '_'. This also
// admits dotted IPv4 addresses, which is what we want.
bool valid_dns_name(std::string_view h) noexcept {
  if (h.empty() || h.size() > 253) return false;
  std::size_t label = 0;
  for (char c : h) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label != 0;  // no trailing dot: browsers never serialise one
}

// "[" IPv6 or IPv4-mapped literal "]": only the character set is checked;
// an origin is compared as text, never resolved.
bool valid_ip_literal(std::string_view h) noexcept {
  if (h.size() < 4 || h.front() != '[' || h.back() != ']') return false;
  bool colon = false;
  for (char c : h.substr(1, h.size() - 2)) {
    if (c == ':') colon = true;
    else if (!is_hex(c) && c != '.') return false;
  }
  return colon;
}

// True when the last label is all digits: a wildcard over that would be a
// wildcard over IPv4 addresses ("*.0.0.1"), never what anyone means.
bool ends_in_numeric_label(std::string_view h) noexcept {
  const std::size_t dot = h.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? h : h.substr(dot + 1);
  for (char c : last) {
    if (!is_digit(c)) return false;
  }
  return true;
}

std::optional<std::uint16_t> parse_port(std::string_view s) noexcept {
  if (s.empty() || s.size() > 5) return std::nullopt;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;  // also refuses '+' and '-'
  }
  unsigned v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = http::ascii_lower(c);
  return out;
}

// The grammar shared by allowlist patterns and Origin headers; only
// patterns may carry a "*." wildcard.
std::optional<OriginPattern> parse_origin(std::string_view text, bool allow_wildcard) {
  const std::size_t sep = text.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  OriginPattern o;
  const std::string_view scheme = text.substr(0, sep);
  if (http::iequals(scheme, "http")) {
    o.scheme = "http";
    o.port = 80;
  } else if (http::iequals(scheme, "https")) {
    o.scheme = "https";
    o.port = 443;
  } else {
    return std::nullopt;
  }

  std::string_view authority = text.substr(sep + 3);
  // A path, query or fragment is not part of an origin; '@' means userinfo.
  if (authority.find_first_of("/?#@\\") != std::string_view::npos) return std::nullopt;

  std::string_view host = authority;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(0, close + 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
      has_port = true;
    }
    if (!valid_ip_literal(host)) return std::nullopt;
  } else {
    const std::size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      has_port = true;
    }
    if (allow_wildcard && host.starts_with("*.")) {
      host.remove_prefix(2);
      o.wildcard = true;
      if (ends_in_numeric_label(host)) return std::nullopt;
    }
    if (!valid_dns_name(host)) return std::nullopt;
  }

  if (has_port) {
    const std::optional<std::uint16_t> p = parse_port(port);
    if (!p) return std::nullopt;
    o.port = *p;
  }
  o.host = lower(host);
  return o;
}

bool matches(const OriginPattern& p, const OriginPattern& origin) noexcept {
  if (p.port != origin.port || !http::iequals(p.scheme, origin.scheme)) return false;
  if (!p.wildcard) return http::iequals(p.host, origin.host);
  // "*.example.com": at least one label, then ".example.com".
  const std::string_view h = origin.host;
  if (h.size() < p.host.size() + 2) return false;
  const std::size_t dot = h.size() - p.host.size() - 1;
  return h[dot] == '.' && http::iequals(h.substr(dot + 1), p.host);
}

}  // namespace

std::string accept_for(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kAcceptGuid.size());
  input.append(key).append(kAcceptGuid);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (EVP_Digest(input.data(), input.size(), md.data(), &md_len, EVP_sha1(), nullptr) != 1) {
    return {};
  }
  return base64(md.data(), md_len);
}

bool valid_key(std::string_view key) noexcept {
  if (key.size() != kKeyChars || key.substr(22) != "==") return false;
  for (char c : key.substr(0, 22)) {
    if (base64_value(c) < 0) return false;
  }
  // 22 characters carry 132 bits; the last 4 are padding and must be zero.
  return (base64_value(key[21]) & 0x0F) == 0;
}

std::string new_key() {
  std::array<unsigned char, kKeyBytes> nonce{};
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) return {};
  return base64(nonce.data(), nonce.size());
}

std::optional<OriginPattern> parse_origin_pattern(std::string_view text) {
  return parse_origin(text, /*allow_wildcard=*/true);
}

bool origin_allowed(std::string_view origin_header, const std::vector<OriginPattern>& allow) {
  if (allow.empty()) return true;
  const std::optional<OriginPattern> origin =
      parse_origin(http::trim_ows(origin_header), /*allow_wildcard=*/false);
  if (!origin) return false;  // includes "null"
  for (const OriginPattern& p : allow) {
    if (matches(p, *origin)) return true;
  }
  return false;
}

std::vector<std::string_view> split_protocols(std::string_view header) {
  std::vector<std::string_view> out;
  http::for_each_token(header, [&](std::string_view item) {
    out.push_back(item);
    return true;
  });
  return out;
}

}  // namespace sluice::ws
