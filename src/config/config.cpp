// The loader: one TOML document in, one immutable Config or every problem out.
//
// It walks the document section by section, and a bad value only costs that
// value: the default stays in place and the walk goes on, so a single run
// reports all the mistakes in a file, each with file:line:col and a key path.
// It never lets an exception out, never reports success while it holds an
// error, and never accepts a key it does not know (a misspelt key that is
// silently ignored is a setting the operator believes in and does not have).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include "config/config.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>

#include "config/health_settings.hpp"
#include "config/reader.hpp"
#include "config/tls_settings.hpp"
#include "config/websocket_settings.hpp"
#include "core/log.hpp"

namespace sluice::config {
namespace {

constexpr std::uint64_t kMinHeaderBytes = 1024;
constexpr std::uint64_t kMaxHeaderBytes = 1024 * 1024;
constexpr std::uint64_t kMinUriBytes = 64;
constexpr std::int64_t kMaxWorkers = 256;


// "*", "example.com" or "*.example.com", lower-cased; nullopt for anything else.
std::optional<std::string> normalize_host(std::string_view host) {
  if (host == "*") return std::string(host);
  std::string out;
  std::string_view name = host;
  if (name.substr(0, 2) == "*.") {
    out = "*.";
    name.remove_prefix(2);
  }
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
      if (!ok || ++label > 63) return std::nullopt;
    }
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  if (label == 0) return std::nullopt;  // trailing dot
  return out;
}

bool is_loopback(const SocketAddress& a) {
  if (a.storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (a.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// Query strings and fragments never reach the router as part of the path,
// so a prefix containing them could never match.
bool valid_path_prefix(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  return std::none_of(path.begin(), path.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '?' || c == '#';
  });
}

// A header value Sluice writes as given: a CR or LF in it would end the
// header early and let the rest be read as headers of its own.
bool printable_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

class Loader {
 public:
  explicit Loader(const std::string& path) : in_(path) { config_.source_path = path; }

  // The Config, or the errors in file order when there are any.
  LoadResult load(const toml::table& root) {
    in_.check_keys(root, "",
                   {"server", "limits", "timeouts", "log", "admin", "listener", "route",
                    "upstream"});
    load_server(root);
    load_admin(root);
    load_limits(root);
    load_timeouts(root);
    load_log(root);
    load_listeners(root);
    load_upstreams(root);  // before routes, which refer to them by name
    load_routes(root);
    // Logged here, whatever else the file holds: an expired certificate is
    // worth knowing about in the same run that reports the file's errors.
    config_.warnings = in_.take_warnings();
    for (const ConfigError& w : config_.warnings)
      SLUICE_LOG(Warn, "msg=\"%s\"", w.to_string().c_str());
    if (!in_.ok()) return in_.take_errors();
    return std::shared_ptr<const Config>(std::make_shared<Config>(std::move(config_)));
  }

 private:
  std::optional<Millis> duration(const toml::table& t, std::string_view prefix,
                                 std::string_view key, bool allow_zero = false) {
    const auto f = in_.field(t, prefix, key);
    return f ? in_.as_duration(*f, allow_zero) : std::nullopt;
  }

  template <typename Int>
  void integer(const toml::table& t, std::string_view prefix, std::string_view key,
               std::int64_t min, std::int64_t max, Int& out) {
    if (const auto f = in_.field(t, prefix, key))
      if (const auto v = in_.as_integer(*f, min, max)) out = static_cast<Int>(*v);
  }

  void load_server(const toml::table& root) {
    const auto* t = in_.section(root, "server",
                                {"workers", "drain_timeout", "drain_delay", "reload_grace",
                                 "trusted_proxies"});
    if (t == nullptr) return;
    if (auto f = in_.field(*t, "server", "workers")) {
      // "auto" is the spelling DESIGN.md uses; it means the same as 0.
      const auto* s = f->node->as_string();
      if (s != nullptr && s->get() == "auto")
        config_.server.workers = 0;
      else if (s != nullptr)
        in_.error(*f, "expected an integer or \"auto\"");
      else
        integer(*t, "server", "workers", 0, kMaxWorkers, config_.server.workers);
    }
    if (auto d = duration(*t, "server", "drain_timeout")) config_.server.drain_timeout = *d;
    if (auto d = duration(*t, "server", "drain_delay", true)) config_.server.drain_delay = *d;
    if (auto d = duration(*t, "server", "reload_grace")) config_.server.reload_grace = *d;
    if (auto f = in_.field(*t, "server", "trusted_proxies")) load_trusted(*f);
  }

  void load_trusted(const Field& f) {
    const toml::array* items = f.node->as_array();
    if (items == nullptr) {
      in_.error(f, "expected an array of addresses or CIDR prefixes, e.g. [\"10.0.0.0/8\", \"::1\"]");
      return;
    }
    for (std::size_t i = 0; i < items->size(); ++i) {
      const Field entry{items->get(i), indexed(f.path, i)};
      const auto text = in_.as_string(entry);
      if (!text) continue;
      auto parsed = net::parse_cidr(*text);
      if (auto* why = std::get_if<std::string>(&parsed)) {
        in_.error(entry, *why);
        continue;
      }
      const auto& p = std::get<net::CidrPrefix>(parsed);
      config_.server.trusted_proxies.add(p);
      config_.server.trusted_proxies_text.push_back(net::to_string(p));
    }
  }

  void load_limits(const toml::table& root) {
    const auto* t =
        in_.section(root, "limits",
                    {"max_connections", "connections_per_ip", "header_bytes", "header_count",
                     "uri_bytes", "body_bytes"});
    if (t == nullptr) return;
    Limits& l = config_.limits;
    integer(*t, "limits", "max_connections", 1, std::numeric_limits<std::int64_t>::max(),
            l.max_connections);
    integer(*t, "limits", "connections_per_ip", 0, 1'000'000, l.connections_per_ip);
    if (auto f = in_.field(*t, "limits", "header_bytes"))
      if (auto v =
              in_.as_size(*f, kMinHeaderBytes, kMaxHeaderBytes, "1KiB..1MiB (1024..1048576 bytes)"))
        l.header_bytes = static_cast<std::uint32_t>(*v);
    integer(*t, "limits", "header_count", 1, 10'000, l.header_count);
    // Judged by header_bytes as it stands after the lines above, so a bad
    // header_bytes is reported once and uri_bytes is compared with the default.
    if (auto f = in_.field(*t, "limits", "uri_bytes"))
      if (auto v = in_.as_size(*f, kMinUriBytes, l.header_bytes,
                               "64..header_bytes (" + std::to_string(l.header_bytes) + " bytes)"))
        l.uri_bytes = static_cast<std::uint32_t>(*v);
    if (auto f = in_.field(*t, "limits", "body_bytes"))
      if (auto v = in_.as_size(*f, 0, std::numeric_limits<std::uint64_t>::max(), "0..2^64-1"))
        l.body_bytes = *v;
  }

  void load_timeouts(const toml::table& root) {
    const auto* t =
        in_.section(root, "timeouts", {"header", "idle", "upstream_connect", "upstream_response"});
    if (t == nullptr) return;
    Timeouts& to = config_.timeouts;
    if (auto d = duration(*t, "timeouts", "header")) to.header = *d;
    if (auto d = duration(*t, "timeouts", "idle")) to.idle = *d;
    if (auto d = duration(*t, "timeouts", "upstream_connect")) to.upstream_connect = *d;
    if (auto d = duration(*t, "timeouts", "upstream_response")) to.upstream_response = *d;
  }

  void load_log(const toml::table& root) {
    const auto* t = in_.section(root, "log", {"level", "access", "format"});
    if (t == nullptr) return;
    if (auto f = in_.field(*t, "log", "level"))
      if (auto i = in_.as_choice(*f, {"debug", "info", "warn", "error"}))
        config_.log.level = static_cast<LogLevel>(*i);
    if (auto f = in_.field(*t, "log", "access")) {
      if (auto s = in_.as_string(*f)) {
        if (s->empty())
          in_.error(*f, "must be \"stdout\", \"off\" or a file path");
        else
          config_.log.access = std::move(*s);
      }
    }
    if (auto f = in_.field(*t, "log", "format"))
      if (auto i = in_.as_choice(*f, {"text", "json"})) config_.log.access_json = *i == 1;
  }

  // The required `address` key of table `t`, resolved; problems are
  // reported at the key.
  struct AddressKey {
    Field field;
    std::string text;  // as written
    SocketAddress addr;
  };
  std::optional<AddressKey> address(const toml::table& t, std::string_view prefix) {
    const auto f = in_.required(t, prefix, "address");
    auto text = f ? in_.as_string(*f) : std::nullopt;
    if (!text) return std::nullopt;
    auto resolved = resolve_address(*text);
    if (auto* why = std::get_if<std::string>(&resolved)) {
      in_.error(*f, *why);
      return std::nullopt;
    }
    return AddressKey{*f, std::move(*text), std::get<SocketAddress>(std::move(resolved))};
  }

  void load_admin(const toml::table& root) {
    const auto* t = in_.section(root, "admin", {"address", "allow_remote"});
    if (t == nullptr) return;
    AdminSettings& a = config_.admin;
    if (auto f = in_.field(*t, "admin", "allow_remote"))
      if (auto b = in_.as_bool(*f)) a.allow_remote = *b;
    auto at = address(*t, "admin");
    if (!at) return;
    a.address = std::move(at->text);
    a.addr = std::move(at->addr);
    if (!a.allow_remote && !is_loopback(a.addr)) {
      in_.error(at->field, a.addr.text + " is not a loopback address; the admin endpoint serves "
                    "metrics and config facts without authentication (set "
                    "admin.allow_remote = true to allow it)");
      return;
    }
    a.enabled = true;
  }

  void load_listeners(const toml::table& root) {
    const auto tables = in_.table_array(root, "listener");
    std::vector<std::string> keys;  // the key of each accepted listener, for duplicate reports
    for (std::size_t i = 0; i < tables.size(); ++i) {
      const toml::table& t = *tables[i];
      const std::string prefix = indexed("listener", i);
      in_.check_keys(t, prefix, {"address", "tls", "proxy_protocol"});
      bool proxy_protocol = false;
      if (const auto f = in_.field(t, prefix, "proxy_protocol"))
        if (const auto b = in_.as_bool(*f)) proxy_protocol = *b;
      // Read first, so its problems are reported even when the address is bad.
      std::optional<ListenerTls> tls;
      if (const auto f = in_.field(t, prefix, "tls")) tls = read_listener_tls(in_, *f);
      auto at = address(t, prefix);
      if (!at) continue;
      Listener listener{std::move(at->text), std::move(at->addr), std::move(tls), proxy_protocol};
      const auto& seen = config_.listeners;
      const auto dup = std::find_if(seen.begin(), seen.end(), [&](const Listener& other) {
        return same_address(other.addr, listener.addr);
      });
      if (dup != seen.end()) {
        in_.error(at->field, "same address as " + keys[static_cast<std::size_t>(dup - seen.begin())] +
                          " (" + listener.addr.text + ")");
        continue;
      }
      config_.listeners.push_back(std::move(listener));
      keys.push_back(prefix);
    }
  }

  void load_upstreams(const toml::table& root) {
    const auto tables = in_.table_array(root, "upstream");
    std::map<std::string, std::size_t> first;  // name -> index in the file, for duplicates
    for (std::size_t i = 0; i < tables.size(); ++i) {
      const toml::table& t = *tables[i];
      const std::string prefix = indexed("upstream", i);
      in_.check_keys(t, prefix, {"name", "servers", "balance", "keepalive", "max_fails",
                                 "fail_timeout", "resolve_interval", "tls", "health_check"});
      Upstream up;
      if (auto f = in_.required(t, prefix, "name")) {
        if (auto name = in_.as_string(*f)) {
          if (name->empty())
            in_.error(*f, "must not be empty");
          else if (auto [it, fresh] = first.emplace(*name, i); !fresh)
            in_.error(*f, "duplicate upstream name " + quoted(*name) + " (also upstream[" +
                              std::to_string(it->second) + "])");
          else
            up.name = std::move(*name);
        }
      }
      if (auto f = in_.required(t, prefix, "servers")) load_servers(*f, up);
      if (auto f = in_.field(t, prefix, "balance"))
        if (auto b = in_.as_choice(*f, {"round_robin", "least_conn", "hash_client_ip"}))
          up.balance = static_cast<Balance>(*b);
      integer(t, prefix, "keepalive", 0, 10'000, up.keepalive);
      integer(t, prefix, "max_fails", 1, 1'000, up.max_fails);
      if (auto d = duration(t, prefix, "fail_timeout")) up.fail_timeout = *d;
      if (auto d = duration(t, prefix, "resolve_interval")) up.resolve_interval = *d;
      if (auto f = in_.field(t, prefix, "tls")) read_upstream_tls(in_, *f, up.tls);
      if (auto f = in_.field(t, prefix, "health_check")) read_health_check(in_, *f, up.health_check);
      // Kept even when other keys were bad, so routes that use the name are
      // not reported a second time as naming nothing.
      if (!up.name.empty()) {
        upstream_index_.emplace(up.name, config_.upstreams.size());
        config_.upstreams.push_back(std::move(up));
      }
    }
  }

  void load_servers(const Field& f, Upstream& up) {
    const toml::array* servers = f.node->as_array();
    if (servers == nullptr) {
      in_.error(f, "expected an array of \"host:port\" strings");
      return;
    }
    if (servers->empty()) in_.error(f, "must list at least one server");
    for (std::size_t i = 0; i < servers->size(); ++i) {
      const Field entry{servers->get(i), indexed(f.path, i)};
      const auto text = in_.as_string(entry);
      if (!text) continue;
      auto resolved = resolve_addresses(*text);
      if (auto* why = std::get_if<std::string>(&resolved)) {
        in_.error(entry, *why);
        continue;
      }
      // In one fixed order, not the resolver's (sort_addresses): a reload
      // that finds the same addresses must see the same members in the same
      // order, and so must the resolver that follows the name afterwards.
      auto addrs = std::get<std::vector<SocketAddress>>(std::move(resolved));
      sort_addresses(addrs);
      up.servers.push_back(UpstreamServer{*text, std::move(addrs), is_literal_address(*text)});
    }
  }

  void load_routes(const toml::table& root) {
    const auto tables = in_.table_array(root, "route");
    std::map<std::pair<std::string, std::string>, std::size_t> seen;  // (host, prefix) -> index
    for (std::size_t i = 0; i < tables.size(); ++i) {
      const toml::table& t = *tables[i];
      const std::string prefix = indexed("route", i);
      in_.check_keys(t, prefix,
                     {"host", "path_prefix", "upstream", "strip_prefix", "hsts", "websocket"});
      Route route;
      bool comparable = true;
      if (auto f = in_.field(t, prefix, "host")) {
        const auto host = in_.as_string(*f);
        const auto normal = host ? normalize_host(*host) : std::nullopt;
        if (host && !normal)
          in_.error(*f, "invalid host " + quoted(*host) +
                            ": expected \"*\", \"name.example.com\" or \"*.example.com\"");
        if (normal) route.host = *normal;
        comparable = comparable && normal.has_value();
      }
      if (auto f = in_.field(t, prefix, "path_prefix")) {
        const auto path = in_.as_string(*f);
        const bool valid = path && valid_path_prefix(*path);
        if (path && !valid)
          in_.error(*f,
                    "must start with \"/\" and contain no spaces, control characters, '?' or '#'");
        if (valid) route.path_prefix = *path;
        comparable = comparable && valid;
      }
      if (auto f = in_.required(t, prefix, "upstream")) {
        if (auto name = in_.as_string(*f)) {
          const auto it = upstream_index_.find(*name);
          if (it == upstream_index_.end())
            in_.error(*f, "no [[upstream]] named " + quoted(*name));
          else
            route.upstream_index = it->second;
          route.upstream = std::move(*name);
        }
      }
      if (auto f = in_.field(t, prefix, "strip_prefix"))
        if (auto b = in_.as_bool(*f)) route.strip_prefix = *b;
      if (auto f = in_.field(t, prefix, "hsts")) {
        if (auto value = in_.as_string(*f)) {
          if (printable_ascii(*value))
            route.hsts = std::move(*value);
          else
            in_.error(*f, "must be printable ASCII, without CR, LF or other control characters");
        }
      }
      if (auto f = in_.field(t, prefix, "websocket"))
        read_route_websocket(in_, *f, route.websocket);
      // A route whose host or prefix was refused holds defaults there, which
      // would only produce a misleading duplicate report.
      if (comparable) {
        const auto [it, fresh] = seen.emplace(std::pair{route.host, route.path_prefix}, i);
        if (!fresh)
          in_.error(t.source(), prefix,
                    "same host and path_prefix as route[" + std::to_string(it->second) + "] (" +
                        route.host + " " + route.path_prefix + ")");
      }
      config_.routes.push_back(std::move(route));
    }
  }

  Reader in_;
  Config config_;
  std::map<std::string, std::size_t> upstream_index_;  // name -> index in config_.upstreams
};

std::vector<ConfigError> single_error(const std::string& path, std::uint32_t line,
                                      std::uint32_t column, std::string message) {
  return {ConfigError{path, line, column, "", std::move(message)}};
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ":" + std::to_string(line);
    if (column != 0) out += ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

LoadResult parse_config(std::string_view toml_text, const std::string& path) {
  try {
    toml::table root;
    try {
      root = toml::parse(toml_text, std::string_view(path));
    } catch (const toml::parse_error& e) {
      const auto& at = e.source().begin;
      return single_error(path, static_cast<std::uint32_t>(at.line),
                          static_cast<std::uint32_t>(at.column), std::string(e.description()));
    }
    LoadResult r = Loader(path).load(root);
    if (auto* c = std::get_if<std::shared_ptr<const Config>>(&r)) {
      auto with_hash = std::make_shared<Config>(**c);
      with_hash->source_sha256 = sha256_hex(toml_text);
      return std::shared_ptr<const Config>(std::move(with_hash));
    }
    return r;
  } catch (const std::exception& e) {
    // Only allocation failure is expected here; it still must not escape.
    return single_error(path, 0, 0, std::string("cannot load: ") + e.what());
  } catch (...) {
    return single_error(path, 0, 0, "cannot load: unknown error");
  }
}

LoadResult load_config(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int open_errno = errno;
    return single_error(path, 0, 0, std::string("cannot read: ") + std::strerror(open_errno));
  }
  std::string text;
  int read_errno = 0;
  errno = 0;
  try {
    char buf[16384];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) text.append(buf, n);
    // A directory opens fine and fails here, with EISDIR.
    if (std::ferror(file)) read_errno = errno != 0 ? errno : EIO;
  } catch (...) {
    read_errno = ENOMEM;
  }
  std::fclose(file);
  if (read_errno != 0)
    return single_error(path, 0, 0, std::string("cannot read: ") + std::strerror(read_errno));
  return parse_config(text, path);
}

}  // namespace sluice::config
