// The immutable configuration snapshot and its loader.
//
// load_config() turns one TOML file into a Config or into every problem found
// at once, each naming file:line:col and the key path. A Config, once built,
// is never mutated: workers share it through std::shared_ptr<const Config>.
// This unit never touches the event loop or the network (name resolution of
// upstream servers happens here, at load time, blocking, off the data path;
// later lookups of the same names are proxy/resolver.hpp's, on the loop).
// It does read the TLS files a config names, to check them, and logs at warn
// what is worth knowing but not worth refusing (an expired certificate).
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "net/cidr.hpp"
#include "ws/handshake.hpp"

namespace sluice::config {

using Millis = std::chrono::milliseconds;

// "250ms", "10s", "5m", "1h" (a bare integer is not accepted: units are required).
std::optional<Millis> parse_duration(std::string_view text);
// "16KiB", "10MiB", "1GiB", "512B", or plain digits (bytes). KB/MB = 1000-based.
std::optional<std::uint64_t> parse_size(std::string_view text);

// One resolved socket address of an upstream server or a listener.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;  // "127.0.0.1:9000" or "[::1]:9000", for logs
};

struct ServerSettings {
  unsigned workers = 0;            // 0 = one per CPU (resolved by the caller)
  Millis drain_timeout{30'000};    // SIGTERM: in-flight requests get this long
  Millis drain_delay{0};           // SIGTERM: /readyz fails this long before listeners close
  Millis reload_grace{30'000};     // SIGHUP: 1012 closes are spread over this
  // Peers whose X-Forwarded-For is kept and extended; from any other peer it
  // is replaced by the peer's address. The peer is the PROXY protocol's
  // client address on listeners that take it.
  net::CidrSet trusted_proxies;
  std::vector<std::string> trusted_proxies_text;  // as written, canonical
};

struct Limits {
  std::uint64_t max_connections = 100'000;  // per process
  std::uint32_t connections_per_ip = 0;     // per client address, process-wide; 0: no limit
  std::uint32_t header_bytes = 16'384;      // request line + headers -> 431
  std::uint32_t header_count = 100;         // -> 431
  std::uint32_t uri_bytes = 8'192;          // -> 414
  std::uint64_t body_bytes = 10ull << 20;   // -> 413
};

struct Timeouts {
  Millis header{10'000};
  Millis idle{60'000};
  Millis upstream_connect{3'000};
  Millis upstream_response{60'000};
};

enum class LogLevel : std::uint8_t { Debug, Info, Warn, Error };

struct LogSettings {
  LogLevel level = LogLevel::Info;
  std::string access = "stdout";  // "stdout", "off", or a file path
  bool access_json = false;       // format = "json": one JSON object per line
};

enum class TlsVersion : std::uint8_t { V1_2, V1_3 };

// File paths, here and in UpstreamTls, are used as written: a relative path is
// relative to the working directory of the process, not to the config file.
// The loader has checked that each file reads and parses, and that each key
// matches its certificate.
struct TlsCertificate {
  std::string cert;         // PEM file: the certificate, then its chain
  std::string key;          // PEM file: its private key (RSA or EC)
  std::string ocsp_staple;  // optional DER OCSP response to staple ("" = none)
};

struct ListenerTls {
  // At least one. SNI picks the one whose names match; no match gets the first.
  std::vector<TlsCertificate> certificates;
  TlsVersion min_version = TlsVersion::V1_2;
  std::vector<std::string> alpn{"http/1.1"};  // offered protocols, in preference order
  bool session_tickets = true;
};

// The admin endpoint (/metrics, /healthz, /readyz, /config): off unless
// [admin] gives an address; a non-loopback address needs allow_remote.
struct AdminSettings {
  bool enabled = false;
  std::string address;  // as written
  SocketAddress addr;
  bool allow_remote = false;
};

struct Listener {
  std::string address;  // as written
  SocketAddress addr;
  std::optional<ListenerTls> tls;  // absent: plain TCP
  // Every connection starts with a PROXY protocol header (v1 or v2, from an
  // L4 balancer); its client address is the client's everywhere. A
  // connection without a valid one is closed.
  bool proxy_protocol = false;
};

struct UpstreamTls {
  bool enabled = false;
  bool verify = true;        // check the chain and the name
  std::string ca;            // PEM bundle; "" = the system store
  std::string server_name;   // SNI and the name checked; "" = the server's host as written
  std::string cert;          // client certificate (mTLS): both cert and key, or neither
  std::string key;
};

enum class Balance : std::uint8_t { RoundRobin, LeastConn, HashClientIp };

struct UpstreamServer {
  std::string name;  // as written, "host:port"
  // Every address it stands for, at least one: a literal is one address; a
  // name is every IPv4 and IPv6 address it resolved to at load, each its own
  // member of the pool (balanced, health-checked and ejected on its own).
  // In the loader's fixed order (sort_addresses).
  std::vector<SocketAddress> addrs;
  // Written as an IP literal: never re-resolved. A name is looked up again
  // every resolve_interval (proxy/resolver.hpp); `addrs` stays what the load
  // found, the current set lives with the resolver and the pools.
  bool literal = true;
};

// Active health checks of an upstream's servers ([upstream.health_check]).
// The loader has checked: path starts with "/" and is printable ASCII without
// spaces or '#'; 0 < timeout < interval; unhealthy and healthy in 1..100;
// origin only with websocket.
struct HealthCheck {
  bool enabled = false;          // the table is present
  std::string path = "/health";  // request target of the probe
  Millis interval{5'000};        // from one probe's start to the next
  Millis timeout{1'000};         // connect + TLS + response head
  std::uint32_t unhealthy = 3;   // consecutive failures that eject a server
  std::uint32_t healthy = 2;     // consecutive successes that restore it
  bool websocket = false;        // probe with a WebSocket upgrade, expect 101
  std::string origin;            // Origin sent with the upgrade ("" = none)
};

struct Upstream {
  std::string name;
  std::vector<UpstreamServer> servers;
  Balance balance = Balance::RoundRobin;
  std::uint32_t keepalive = 64;   // idle pooled connections per server per worker
  std::uint32_t max_fails = 3;    // consecutive connect failures before ejection
  Millis fail_timeout{10'000};    // how long an ejected server is left alone
  Millis resolve_interval{30'000};  // servers written as names are looked up again this often
  UpstreamTls tls;
  HealthCheck health_check;
};

// How a route treats a WebSocket upgrade. Read now; the relay that acts on it
// is not built yet (until then every Upgrade is answered 501). The loader has
// checked each origin with ws::parse_origin_pattern, each subprotocol is an
// RFC 7230 token, and 1 <= max_frame_bytes <= max_message_bytes <= 1GiB.
struct RouteWebSocket {
  bool enabled = true;                        // false: an Upgrade on this route is answered 403
  std::vector<ws::OriginPattern> allowed_origins;  // parsed at load; empty = any origin
  bool allow_missing_origin = false;          // non-browser clients send no Origin
  std::vector<std::string> subprotocols;      // allowlist; empty = pass through what the upstream picks
  std::uint64_t max_frame_bytes = 1 << 20;    // "1MiB"
  std::uint64_t max_message_bytes = 4 << 20;  // "4MiB"
  bool validate_utf8 = true;
  Millis idle_timeout{300'000};               // "5m"
  Millis ping_interval{30'000};               // "30s"
  Millis max_session{0};                      // 0: none; else closed 1001 within its last tenth
  std::uint32_t max_sessions_per_ip = 0;      // 0: no limit; over it the handshake is 429
  std::uint32_t max_messages_per_second = 0;  // client messages per session; 0: no limit; over: 1008
  enum class Extensions : std::uint8_t { Strip, Passthrough } extensions = Extensions::Strip;
};

struct Route {
  std::string host = "*";         // lower-case: exact, "*.example.com", or "*"
  std::string path_prefix = "/";
  std::string upstream;           // name as written
  std::size_t upstream_index = 0; // index into Config::upstreams, set by the loader
  bool strip_prefix = false;
  std::string hsts;               // Strict-Transport-Security value on TLS responses ("" = none)
  RouteWebSocket websocket;
};

struct ConfigError {
  std::string file;
  std::uint32_t line = 0;   // 1-based; 0 when the problem has no place in the file
  std::uint32_t column = 0;
  std::string key;          // "listener[0].address", "timeouts.header", ...
  std::string message;
  // "FILE:LINE:COL: key: message" (or "FILE: key: message" without a place)
  std::string to_string() const;
};

struct Config {
  std::string source_path;
  std::string source_sha256;  // of the file's bytes, lower-case hex
  AdminSettings admin;
  ServerSettings server;
  Limits limits;
  Timeouts timeouts;
  LogSettings log;
  std::vector<Listener> listeners;
  std::vector<Route> routes;
  std::vector<Upstream> upstreams;
  // Problems that do not stop the load (a certificate past its notAfter), in
  // file order. The loader has already logged each one at warn.
  std::vector<ConfigError> warnings;
};

using LoadResult = std::variant<std::shared_ptr<const Config>, std::vector<ConfigError>>;

// Reads and validates the file. Every problem is reported, not just the first.
LoadResult load_config(const std::string& path);
// The same from text already in memory; `path` is used only in messages.
LoadResult parse_config(std::string_view toml_text, const std::string& path);

// The same socket address (family, address and port), however it was
// spelt: "localhost:80" and "127.0.0.1:80" are the same.
bool same_address(const SocketAddress& a, const SocketAddress& b) noexcept;

// Parses "127.0.0.1:8080", "[::1]:8080", "localhost:9000" (name resolved).
// Returns an error message on failure.
std::variant<SocketAddress, std::string> resolve_address(std::string_view host_port);
// The same, with every address a name resolves to (in getaddrinfo's order,
// no duplicates); a literal gives one.
std::variant<std::vector<SocketAddress>, std::string> resolve_addresses(std::string_view host_port);
// True when "host:port" names an IP literal ("10.0.0.1:80", "[::1]:80"),
// which no lookup can ever change.
bool is_literal_address(std::string_view host_port);
// Every IPv4 and IPv6 address of a getaddrinfo answer, with `port`, each
// once, in the answer's order. The loader uses it, and so does the resolver
// (uv_getaddrinfo): with sort_addresses() both see the same members.
std::vector<SocketAddress> addresses_of(const addrinfo* answer, std::uint16_t port);
// One fixed order for a name's addresses (family, then bytes), not the
// resolver's: DNS servers rotate their answers, and the same addresses must
// always be the same members in the same order.
void sort_addresses(std::vector<SocketAddress>& addrs);

}  // namespace sluice::config
