// Header rules shared by requests and responses: case-insensitive compares,
// comma-separated token lists, and which fields are hop-by-hop.
// Pure functions over string_views: no allocation, no I/O.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::http {

inline char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept;
// RFC 9110 tchar, and a token: the only bytes a header name (or a
// subprotocol name) may hold.
bool is_tchar(unsigned char c) noexcept;
bool is_token(std::string_view s) noexcept;
std::string_view trim_ows(std::string_view s) noexcept;

// Calls fn(token) for each non-empty element of a comma-separated list,
// trimmed of optional whitespace. fn returns false to stop early.
template <typename Fn>
void for_each_token(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty() && !fn(item)) return;
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// True when the comma-separated list holds `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) noexcept;

// Fields that describe one connection and never travel past a proxy
// (RFC 9110 7.6.1), besides those the Connection header names.
bool is_hop_by_hop(std::string_view name) noexcept;

// Parses a host[:port] (Host header or URI authority); returns the host in
// lower case into `out` (at most out_cap bytes), or false when malformed.
bool normalise_host(std::string_view authority, char* out, std::size_t out_cap,
                    std::size_t& out_len) noexcept;

}  // namespace sluice::http
