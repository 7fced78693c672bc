// The small value grammars of the config file: durations, sizes and
// "host:port" addresses.
//
// Each function takes one string and answers with a value or a refusal; none
// knows about TOML, file positions or the Config being built. They accept
// only the strict forms (no spaces, signs, fractions or lower/upper-case
// variants) so that one spelling means one thing, and they never wrap around
// on overflow. resolve_address() may block in getaddrinfo: call it at load
// time only, never from a worker's loop.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include "config/config.hpp"

namespace sluice::config {
namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t factor;
};

// Longest suffixes first, so "ms" is not read as "m" followed by junk.
constexpr std::array<Unit, 4> kDurationUnits{
    {{"ms", 1}, {"s", 1'000}, {"m", 60'000}, {"h", 3'600'000}}};

constexpr std::array<Unit, 8> kSizeUnits{{{"KiB", 1ull << 10},
                                          {"MiB", 1ull << 20},
                                          {"GiB", 1ull << 30},
                                          {"KB", 1'000},
                                          {"MB", 1'000'000},
                                          {"GB", 1'000'000'000},
                                          {"B", 1},
                                          {"", 1}}};

// Splits "123abc" into its leading digits and the rest.
std::pair<std::string_view, std::string_view> split_digits(std::string_view text) {
  std::size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
  return {text.substr(0, n), text.substr(n)};
}

// Digits times factor, refusing anything above `max` rather than wrapping.
std::optional<std::uint64_t> scaled(std::string_view digits, std::uint64_t factor,
                                    std::uint64_t max) {
  if (digits.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : digits) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (value > (max - d) / 10) return std::nullopt;
    value = value * 10 + d;
  }
  if (factor != 0 && value > max / factor) return std::nullopt;
  return value * factor;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  const auto [digits, rest] = split_digits(text);
  if (!rest.empty() || digits.empty() || digits.size() > 5) return std::nullopt;
  const auto value = scaled(digits, 1, 65'535);
  if (!value || *value == 0) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

bool is_dotted_digits(std::string_view host) {
  for (char c : host)
    if ((c < '0' || c > '9') && c != '.') return false;
  return true;
}

// Letters, digits, '-', '_' and '.': anything else is not a name we would
// want to hand to the resolver (and would only produce a confusing error).
bool is_host_name(std::string_view host) {
  if (host.size() > 253) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string describe(const sockaddr_storage& storage) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (storage.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    inet_ntop(AF_INET6, &in6.sin6_addr, buf.data(), buf.size());
    return "[" + std::string(buf.data()) + "]:" + std::to_string(ntohs(in6.sin6_port));
  }
  const auto& in4 = reinterpret_cast<const sockaddr_in&>(storage);
  inet_ntop(AF_INET, &in4.sin_addr, buf.data(), buf.size());
  return std::string(buf.data()) + ":" + std::to_string(ntohs(in4.sin_port));
}

SocketAddress make_v4(const in_addr& addr, std::uint16_t port) {
  SocketAddress out;
  auto& in4 = reinterpret_cast<sockaddr_in&>(out.storage);
  in4.sin_family = AF_INET;
  in4.sin_port = htons(port);
  in4.sin_addr = addr;
  out.length = sizeof(sockaddr_in);
  out.text = describe(out.storage);
  return out;
}

SocketAddress make_v6(const in6_addr& addr, std::uint16_t port) {
  SocketAddress out;
  auto& in6 = reinterpret_cast<sockaddr_in6&>(out.storage);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  in6.sin6_addr = addr;
  out.length = sizeof(sockaddr_in6);
  out.text = describe(out.storage);
  return out;
}

// Every IPv4 and IPv6 address of `host`, in getaddrinfo's order of
// preference, each once (it lists one per socket type and protocol it knows).
std::variant<std::vector<SocketAddress>, std::string> resolve_name(const std::string& host,
                                                                   std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    const std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return "cannot resolve \"" + host + "\": " + why;
  }
  std::vector<SocketAddress> out = addresses_of(found, port);
  freeaddrinfo(found);
  if (out.empty()) return "cannot resolve \"" + host + "\": no IPv4 or IPv6 address";
  return out;
}

}  // namespace

std::optional<Millis> parse_duration(std::string_view text) {
  const auto [digits, suffix] = split_digits(text);
  for (const Unit& unit : kDurationUnits) {
    if (suffix != unit.suffix) continue;
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max());
    const auto ms = scaled(digits, unit.factor, kMax);
    if (!ms) return std::nullopt;
    return Millis{static_cast<Millis::rep>(*ms)};
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  const auto [digits, suffix] = split_digits(text);
  for (const Unit& unit : kSizeUnits) {
    if (suffix == unit.suffix)
      return scaled(digits, unit.factor, std::numeric_limits<std::uint64_t>::max());
  }
  return std::nullopt;
}

std::vector<SocketAddress> addresses_of(const addrinfo* answer, std::uint16_t port) {
  std::vector<SocketAddress> out;
  for (const addrinfo* ai = answer; ai != nullptr; ai = ai->ai_next) {
    SocketAddress a;
    if (ai->ai_family == AF_INET)
      a = make_v4(reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, port);
    else if (ai->ai_family == AF_INET6)
      a = make_v6(reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr, port);
    else
      continue;
    const bool seen = std::any_of(out.begin(), out.end(),
                                  [&](const SocketAddress& b) { return same_address(a, b); });
    if (!seen) out.push_back(std::move(a));
  }
  return out;
}

void sort_addresses(std::vector<SocketAddress>& addrs) {
  std::sort(addrs.begin(), addrs.end(), [](const SocketAddress& a, const SocketAddress& b) {
    if (a.length != b.length) return a.length < b.length;
    return std::memcmp(&a.storage, &b.storage, a.length) < 0;
  });
}

bool is_literal_address(std::string_view host_port) {
  if (!host_port.empty() && host_port.front() == '[') return true;
  const auto colon = host_port.rfind(':');
  return colon != std::string_view::npos && is_dotted_digits(host_port.substr(0, colon));
}

bool same_address(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

std::variant<SocketAddress, std::string> resolve_address(std::string_view host_port) {
  auto all = resolve_addresses(host_port);
  if (auto* why = std::get_if<std::string>(&all)) return std::move(*why);
  // The first answer: getaddrinfo has already ordered them by preference.
  return std::move(std::get<std::vector<SocketAddress>>(all).front());
}

std::variant<std::vector<SocketAddress>, std::string> resolve_addresses(std::string_view host_port) {
  constexpr std::string_view kShape =
      "expected host:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"";
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = !host_port.empty() && host_port.front() == '[';
  if (bracketed) {
    const auto close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':')
      return std::string(kShape);
    host = host_port.substr(1, close - 1);
    port_text = host_port.substr(close + 2);
  } else {
    const auto colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return std::string(kShape);
    host = host_port.substr(0, colon);
    port_text = host_port.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return std::string("IPv6 addresses must be in brackets, e.g. \"[::1]:8080\"");
  }
  if (host.empty()) return std::string("missing host before the port");
  const auto port = parse_port(port_text);
  if (!port) return std::string("port must be in 1..65535");

  const std::string host_z(host);
  if (bracketed) {
    in6_addr addr{};
    if (inet_pton(AF_INET6, host_z.c_str(), &addr) != 1)
      return "invalid IPv6 address \"" + host_z + "\"";
    return std::vector<SocketAddress>{make_v6(addr, *port)};
  }
  // All digits and dots is meant as an IPv4 literal; resolving it as a name
  // would let getaddrinfo accept legacy forms such as "127.1".
  if (is_dotted_digits(host)) {
    in_addr addr{};
    if (inet_pton(AF_INET, host_z.c_str(), &addr) != 1)
      return "invalid IPv4 address \"" + host_z + "\"";
    return std::vector<SocketAddress>{make_v4(addr, *port)};
  }
  if (!is_host_name(host)) return "invalid host name \"" + host_z + "\"";
  return resolve_name(host_z, *port);
}

}  // namespace sluice::config
