// Header rules: see headers.hpp.
#include "http/headers.hpp"

#include <array>

namespace sluice::http {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool is_tchar(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_token(std::string_view list, std::string_view token) noexcept {
  bool found = false;
  for_each_token(list, [&](std::string_view item) {
    if (iequals(item, token)) found = true;
    return !found;
  });
  return found;
}

bool is_hop_by_hop(std::string_view name) noexcept {
  static constexpr std::array<std::string_view, 7> kHopByHop = {
      "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
      "upgrade"};
  for (std::string_view h : kHopByHop) {
    if (iequals(name, h)) return true;
  }
  return false;
}

bool normalise_host(std::string_view authority, char* out, std::size_t out_cap,
                    std::size_t& out_len) noexcept {
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {  // IPv6 literal
    std::size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) return false;
      for (char c : rest.substr(1)) {
        if (c < '0' || c > '9') return false;
      }
    }
    host = host.substr(0, close + 1);
    for (char c : host.substr(1, host.size() - 2)) {
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return false;
    }
  } else {
    std::size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      std::string_view port = host.substr(colon + 1);
      for (char c : port) {
        if (c < '0' || c > '9') return false;
      }
      host = host.substr(0, colon);
    }
  }
  if (host.size() > out_cap) return false;
  for (std::size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    const bool literal = host.front() == '[';  // inside brackets ':' is part of the address
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || (literal && (c == '[' || c == ']' || c == ':'));
    if (!ok) return false;
    out[i] = ascii_lower(c);
  }
  out_len = host.size();
  return true;
}

}  // namespace sluice::http
