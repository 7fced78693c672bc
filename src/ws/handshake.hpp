// WebSocket opening-handshake helpers (RFC 6455 section 4): the key and
// accept values, Origin allowlists, and Sec-WebSocket-Protocol lists.
// Pure apart from new_key(), which draws from OpenSSL's CSPRNG; no I/O, and
// nothing here looks at a whole request (the session does that).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::ws {

// Sec-WebSocket-Accept for a Sec-WebSocket-Key:
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). The key is
// used as given; check it with valid_key() first.
std::string accept_for(std::string_view key);

// True when key is canonical base64 of exactly 16 bytes: 24 characters from
// the standard alphabet, the last two "==", and the 4 unused bits of the
// last data character zero (so each 16-byte nonce has one spelling; every
// real encoder writes it that way). No whitespace is allowed.
bool valid_key(std::string_view key) noexcept;

// A fresh Sec-WebSocket-Key: base64 of 16 bytes from RAND_bytes. Returns ""
// if the CSPRNG fails, which the caller must treat as an internal error
// (never send a predictable key).
std::string new_key();

// One entry of a route's Origin allowlist, parsed from config strings such
// as "https://chat.example.com", "https://*.example.com" or
// "http://localhost:3000". Only http and https are accepted: those are the
// schemes a browser sends for web pages, and a typo like "htps" should fail
// config validation rather than silently match nothing.
struct OriginPattern {
  std::string scheme;      // "http" or "https", lower case
  std::string host;        // lower case; for a wildcard, the suffix after "*."
  bool wildcard = false;   // "*.suffix": any host ending in ".suffix", never suffix itself
  std::uint16_t port = 0;  // effective port: explicit, else 80 (http) or 443 (https)

  bool operator==(const OriginPattern&) const = default;
};

// Parses scheme "://" host [":" port], where host is a DNS name (letters,
// digits, '-', '_', dot-separated non-empty labels), a dotted IPv4 address,
// a bracketed IPv6 literal, or "*." followed by a DNS name. Rejects paths
// (even a lone "/"), queries, fragments, userinfo, an empty host, an empty,
// zero, signed or out-of-range port, and any other scheme.
std::optional<OriginPattern> parse_origin_pattern(std::string_view text);

// Whether an Origin header value is allowed by `allow`.
// - An empty allowlist allows everything, even a malformed or "null" Origin.
// - Otherwise the header must be a serialised origin (RFC 6454 6.1): the
//   same grammar as a pattern but without wildcards, surrounding spaces
//   ignored. Anything else is refused, including "null" (sandboxed frames,
//   file: pages), an empty value, and an origin followed by a path such as
//   "https://a.example.com/" - browsers never send one, so it is not an
//   origin, and being lenient would only widen what an attacker can try.
// - Scheme and host compare case-insensitively, ports after defaulting
//   (so "https://x" matches a pattern "https://x:443").
bool origin_allowed(std::string_view origin_header, const std::vector<OriginPattern>& allow);

// The items of a Sec-WebSocket-Protocol list: comma separated, each trimmed
// of spaces and tabs, empty items dropped. The views point into `header`.
std::vector<std::string_view> split_protocols(std::string_view header);

}  // namespace sluice::ws
