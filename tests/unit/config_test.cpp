// Tests for src/config: the value grammars (durations, sizes, addresses), the
// loader's validation and its error reports (file:line:col, key path, all
// problems at once), and that the shipped configs in conf/ load.
//
// Only loopback literals and "localhost" are resolved here, plus one name
// under the reserved .invalid domain, so the tests never need a network.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.hpp"
#include "config_support.hpp"

namespace {

using namespace sluice::config;
using namespace std::chrono_literals;

constexpr const char* kPath = "test.toml";

// The smallest valid file; tests append to it or write their own.
constexpr const char* kMinimal = R"(
[[listener]]
address = "127.0.0.1:8080"
[[route]]
upstream = "app"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
)";

using config_support::config_of;
using config_support::errors_of;

std::shared_ptr<const Config> load_ok(const std::string& text) {
  return config_of(parse_config(text, kPath));
}

std::vector<ConfigError> load_bad(const std::string& text) {
  return errors_of(parse_config(text, kPath));
}

using config_support::error_for;

// A single error is expected, under `key`, with `fragment` in its message.
void expect_error(const std::string& text, const std::string& key, const std::string& fragment) {
  const auto e = config_support::single_error(load_bad(text), key, fragment);
  CHECK(e.file == kPath);
}

std::string with_section(const std::string& section, const std::string& body) {
  return std::string(kMinimal) + "[" + section + "]\n" + body + "\n";
}

Limits limits_of(const std::string& body) { return load_ok(with_section("limits", body))->limits; }

// One bad value in [section]: `body` must give exactly one error, at
// "section.key", whose message contains `fragment`.
struct BadValue {
  const char* body;
  const char* key;
  const char* fragment;
};

void expect_bad(const std::string& section, std::initializer_list<BadValue> cases) {
  for (const auto& c : cases) {
    INFO("[" << section << "] " << c.body);
    expect_error(with_section(section, c.body), section + "." + c.key, c.fragment);
  }
}

// A file under the temp dir that is removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("sluice-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
             ".toml");
    std::ofstream(path_) << text;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Every value that kMinimal and conf/sluice.toml leave at (or set to) its
// default, in their first route and first upstream; the two differ in the
// upstream's name, and in what conf/sluice.toml adds after those (a TLS
// listener, and the demo's /chat route and chat upstream), which its own test
// checks.
void check_defaults(const Config& c, const std::string& upstream) {
  CHECK(c.server.workers == 0);
  CHECK(c.server.drain_timeout == 30s);
  CHECK(c.limits.max_connections == 100'000);
  CHECK(c.limits.header_bytes == 16'384);
  CHECK(c.limits.header_count == 100);
  CHECK(c.limits.uri_bytes == 8'192);
  CHECK(c.limits.body_bytes == 10ull << 20);
  CHECK(c.timeouts.header == 10s);
  CHECK(c.timeouts.idle == 60s);
  CHECK(c.timeouts.upstream_connect == 3s);
  CHECK(c.timeouts.upstream_response == 60s);
  CHECK(c.log.level == LogLevel::Info);
  CHECK(c.log.access == "stdout");
  REQUIRE(!c.listeners.empty());
  CHECK(c.listeners[0].address == "127.0.0.1:8080");
  CHECK_FALSE(c.listeners[0].tls.has_value());
  REQUIRE(!c.routes.empty());
  CHECK(c.routes[0].host == "*");
  CHECK(c.routes[0].path_prefix == "/");
  CHECK(c.routes[0].upstream == upstream);
  CHECK(c.routes[0].upstream_index == 0);
  CHECK_FALSE(c.routes[0].strip_prefix);
  CHECK(c.routes[0].hsts.empty());
  REQUIRE(!c.upstreams.empty());
  const auto& up = c.upstreams[0];
  CHECK(up.name == upstream);
  REQUIRE(up.servers.size() == 1);
  CHECK(up.servers[0].name == "127.0.0.1:9000");
  REQUIRE(up.servers[0].addrs.size() == 1);
  CHECK(up.servers[0].addrs[0].text == "127.0.0.1:9000");
  CHECK(up.balance == Balance::RoundRobin);
  CHECK(up.keepalive == 64);
  CHECK(up.max_fails == 3);
  CHECK(up.fail_timeout == 10s);
  CHECK(up.resolve_interval == 30s);
  CHECK(up.servers[0].literal);  // never looked up again
  CHECK_FALSE(up.tls.enabled);
  CHECK(up.tls.verify);
  CHECK(up.tls.ca.empty());
  CHECK(up.tls.server_name.empty());
  CHECK(up.tls.cert.empty());
  CHECK(up.tls.key.empty());
  CHECK(c.warnings.empty());
}

using config_support::InDirectory;

}  // namespace

// ---- value grammars ----

TEST_CASE("config: durations need a whole number and a unit, and must not overflow", "[config]") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("10s") == 10s);
  CHECK(parse_duration("5m") == 5min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("0s") == 0ms);
  CHECK(parse_duration("007s") == 7s);
  for (const char* bad : {"", "10", "s", "ms", "-1s", "+1s", "1.5s", " 1s", "1s ", "1 s", "1S",
                          "1d", "1sec", "1hh", "1m1s", "0x10s", "1e3ms"}) {
    INFO("duration: \"" << bad << "\"");
    CHECK_FALSE(parse_duration(bad).has_value());
  }
  // Overflow of 64-bit milliseconds, in every unit, is refused rather than wrapped.
  CHECK(parse_duration("9223372036854775807ms") == Millis{9223372036854775807});
  CHECK_FALSE(parse_duration("9223372036854775808ms").has_value());
  CHECK_FALSE(parse_duration("9223372036854775807s").has_value());
  CHECK_FALSE(parse_duration("2562047788016h").has_value());  // just over the limit in h
  CHECK(parse_duration("2562047788015h").has_value());
  CHECK_FALSE(parse_duration("99999999999999999999999h").has_value());
}

TEST_CASE("config: sizes are bytes with an optional unit and must not overflow", "[config]") {
  const std::pair<const char*, std::uint64_t> good[] = {
      {"0", 0}, {"512", 512}, {"512B", 512}, {"16KiB", 16 << 10}, {"10MiB", 10 << 20},
      {"2GiB", 2ull << 30}, {"16KB", 16'000}, {"3MB", 3'000'000}, {"1GB", 1'000'000'000},
      {"18446744073709551615", 18446744073709551615ull}};
  for (const auto& [text, bytes] : good) CHECK(parse_size(text) == bytes);
  for (const char* bad : {"", "B", "KiB", "-1", "+1", "1.5KiB", "1 KiB", "1kib", "1K", "1Ki",
                          "1TiB", "1KiBB", "0x10", "12abc", " 1"}) {
    INFO("size: \"" << bad << "\"");
    CHECK_FALSE(parse_size(bad).has_value());
  }
  // Overflow of 64 bits is refused rather than wrapped.
  CHECK_FALSE(parse_size("18446744073709551616").has_value());
  CHECK_FALSE(parse_size("17179869184GiB").has_value());  // 2^34 GiB = 2^64
  CHECK(parse_size("17179869183GiB").has_value());
  CHECK_FALSE(parse_size("18446744073709552KB").has_value());
}

TEST_CASE("config: addresses resolve to socket addresses with a port", "[config]") {
  auto v4 = resolve_address("127.0.0.1:8080");
  REQUIRE(std::holds_alternative<SocketAddress>(v4));
  const auto& a = std::get<SocketAddress>(v4);
  CHECK(a.storage.ss_family == AF_INET);
  CHECK(a.length == sizeof(sockaddr_in));
  CHECK(ntohs(reinterpret_cast<const sockaddr_in&>(a.storage).sin_port) == 8080);
  CHECK(a.text == "127.0.0.1:8080");

  auto v6 = resolve_address("[::1]:443");
  REQUIRE(std::holds_alternative<SocketAddress>(v6));
  CHECK(std::get<SocketAddress>(v6).storage.ss_family == AF_INET6);
  CHECK(std::get<SocketAddress>(v6).text == "[::1]:443");

  auto named = resolve_address("localhost:9000");
  REQUIRE(std::holds_alternative<SocketAddress>(named));
  CHECK_THAT(std::get<SocketAddress>(named).text, Catch::EndsWith(":9000"));
}

TEST_CASE("config: malformed addresses say what is wrong", "[config]") {
  const auto why = [](std::string_view text) {
    auto r = resolve_address(text);
    REQUIRE(std::holds_alternative<std::string>(r));
    return std::get<std::string>(r);
  };
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1", "expected host:port"}, {"", "expected host:port"},
      {"[::1]8080", "expected host:port"}, {":8080", "missing host"},
      {"127.0.0.1:0", "port must be in 1..65535"}, {"127.0.0.1:65536", "port must be in 1..65535"},
      {"127.0.0.1:", "port must be in 1..65535"}, {"127.0.0.1:80x", "port must be in 1..65535"},
      {"127.0.0.1:-80", "port must be in 1..65535"}, {"::1:8080", "brackets"},
      {"[::zz]:8080", "invalid IPv6 address"}, {"256.0.0.1:80", "invalid IPv4 address"},
      {"127.1:80", "invalid IPv4 address"}, {"bad host:80", "invalid host name"},
      {"nowhere.invalid:80", "cannot resolve \"nowhere.invalid\""}};
  for (const auto& [text, fragment] : cases) {
    INFO(text);
    CHECK_THAT(why(text), Catch::Contains(fragment));
  }
}

// ---- whole files ----

TEST_CASE("config: defaults apply when optional sections are absent", "[config]") {
  const auto c = load_ok(kMinimal);
  CHECK(c->source_path == kPath);
  check_defaults(*c, "app");
  CHECK(c->listeners.size() == 1);
  CHECK(c->routes.size() == 1);
  CHECK(c->upstreams.size() == 1);
}

TEST_CASE("config: a full valid config sets every field", "[config]") {
  const auto c = load_ok(R"(
[server]
workers = 8
drain_timeout = "5s"
[limits]
max_connections = 42
header_bytes = "32KiB"
header_count = 50
uri_bytes = 1024
body_bytes = "1GB"
[timeouts]
header = "1s"
idle = "2m"
upstream_connect = "250ms"
upstream_response = "1h"
[log]
level = "debug"
access = "/tmp/access.log"
[[listener]]
address = "127.0.0.1:8080"
[[listener]]
address = "[::1]:8080"
[[route]]
host = "API.Example.com"
path_prefix = "/v1/"
upstream = "b"
strip_prefix = true
[[route]]
host = "*.example.com"
upstream = "a"
[[upstream]]
name = "a"
servers = ["127.0.0.1:9000", "127.0.0.1:9001"]
balance = "least_conn"
keepalive = 0
max_fails = 1000
fail_timeout = "24h"
[[upstream]]
name = "b"
servers = ["localhost:9002"]
balance = "hash_client_ip"
)");
  CHECK(c->server.workers == 8);
  CHECK(c->server.drain_timeout == 5s);
  CHECK(c->limits.max_connections == 42);
  CHECK(c->limits.header_bytes == 32 * 1024);
  CHECK(c->limits.header_count == 50);
  CHECK(c->limits.uri_bytes == 1024);
  CHECK(c->limits.body_bytes == 1'000'000'000);
  CHECK(c->timeouts.header == 1s);
  CHECK(c->timeouts.idle == 2min);
  CHECK(c->timeouts.upstream_connect == 250ms);
  CHECK(c->timeouts.upstream_response == 1h);
  CHECK(c->log.level == LogLevel::Debug);
  CHECK(c->log.access == "/tmp/access.log");
  REQUIRE(c->listeners.size() == 2);
  CHECK(c->listeners[1].addr.storage.ss_family == AF_INET6);
  REQUIRE(c->routes.size() == 2);
  CHECK(c->routes[0].host == "api.example.com");
  CHECK(c->routes[0].path_prefix == "/v1/");
  CHECK(c->routes[0].upstream_index == 1);
  CHECK(c->routes[0].strip_prefix);
  CHECK(c->routes[1].host == "*.example.com");
  CHECK(c->routes[1].upstream_index == 0);
  REQUIRE(c->upstreams.size() == 2);
  CHECK(c->upstreams[0].servers.size() == 2);
  CHECK(c->upstreams[0].balance == Balance::LeastConn);
  CHECK(c->upstreams[0].keepalive == 0);
  CHECK(c->upstreams[0].max_fails == 1000);
  CHECK(c->upstreams[0].fail_timeout == 24h);
  CHECK(c->upstreams[1].balance == Balance::HashClientIp);
  CHECK(c->upstreams[1].servers[0].name == "localhost:9002");
}

TEST_CASE("config: workers accepts \"auto\" as 0 and is at most 256", "[config]") {
  CHECK(load_ok(with_section("server", "workers = \"auto\""))->server.workers == 0);
  CHECK(load_ok(with_section("server", "workers = 256"))->server.workers == 256);
  expect_bad("server", {{"workers = 257", "workers", "must be in 0..256"},
                        {"workers = -1", "workers", "must be in 0..256"},
                        {"workers = \"many\"", "workers", "expected an integer or \"auto\""},
                        {"workers = 2.0", "workers", "expected an integer"}});
}

TEST_CASE("config: limits are range-checked", "[config]") {
  CHECK(limits_of("header_bytes = \"1MiB\"").header_bytes == 1u << 20);
  CHECK(limits_of("header_bytes = 2048\nuri_bytes = 2048").uri_bytes == 2048);
  CHECK(limits_of("body_bytes = 0").body_bytes == 0);
  CHECK(limits_of("body_bytes = \"18446744073709551615\"").body_bytes == 18446744073709551615ull);
  expect_bad(
      "limits",
      {{"max_connections = 0", "max_connections", "must be at least 1"},
       {"header_bytes = 1023", "header_bytes", "must be in 1KiB..1MiB"},
       {"header_bytes = \"2MiB\"", "header_bytes", "must be in 1KiB..1MiB"},
       {"header_count = 0", "header_count", "must be in 1..10000"},
       {"header_count = 10001", "header_count", "must be in 1..10000"},
       {"header_count = \"100\"", "header_count", "expected an integer"},
       {"uri_bytes = 63", "uri_bytes", "must be in 64..header_bytes"},
       {"header_bytes = 2048\nuri_bytes = 4096", "uri_bytes", "64..header_bytes (2048 bytes)"},
       {"body_bytes = -1", "body_bytes", "must not be negative"},
       {"body_bytes = \"10 MiB\"", "body_bytes", "invalid size \"10 MiB\""},
       {"body_bytes = \"99999999999GiB\"", "body_bytes", "does not fit in 64 bits"},
       {"body_bytes = true", "body_bytes", "expected an integer or a string"}});
}

TEST_CASE("config: durations in the file must be > 0 and <= 24h", "[config]") {
  CHECK(load_ok(with_section("timeouts", "idle = \"24h\""))->timeouts.idle == 24h);
  expect_bad("timeouts",
             {{"header = \"0s\"", "header", "must be greater than 0"},
              {"idle = \"25h\"", "idle", "at most 24h"},
              {"idle = \"99999999999999999999h\"", "idle", "at most 24h"},
              {"upstream_connect = \"1.5s\"", "upstream_connect", "invalid duration \"1.5s\""},
              {"upstream_response = 10", "upstream_response", "expected a string"}});
  expect_bad("server", {{"drain_timeout = \"-1s\"", "drain_timeout", "invalid duration"}});
}

TEST_CASE("config: log level and access are checked", "[config]") {
  CHECK(load_ok(with_section("log", "level = \"error\""))->log.level == LogLevel::Error);
  CHECK(load_ok(with_section("log", "level = \"warn\""))->log.level == LogLevel::Warn);
  CHECK(load_ok(with_section("log", "access = \"off\""))->log.access == "off");
  expect_bad("log", {{"level = \"verbose\"", "level", "must be one of debug, info, warn, error"},
                     {"level = \"INFO\"", "level", "must be one of"},
                     {"access = \"\"", "access", "or a file path"},
                     {"access = false", "access", "expected a string"}});
}

TEST_CASE("config: unknown key is an error naming file:line:col", "[config]") {
  const auto errors = load_bad(std::string(kMinimal) + "[server]\nworkerz = 4\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string() == "test.toml:10:1: server.workerz: unknown key");
}

TEST_CASE("config: unknown keys are found in every table", "[config]") {
  const auto errors = load_bad(R"([[listener]]
address = "127.0.0.1:8080"
backlog = 128
[[route]]
upstream = "app"
weight = 1
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
retries = 2
[admin]
address = "127.0.0.1:9901"
enabled = true
[metrics]
path = "/m"
)");
  CHECK(errors.size() == 5);
  CHECK(error_for(errors, "listener[0].backlog").message == "unknown key");
  CHECK(error_for(errors, "route[0].weight").message == "unknown key");
  CHECK(error_for(errors, "upstream[0].retries").message == "unknown key");
  CHECK(error_for(errors, "admin.enabled").message == "unknown key");
  CHECK(error_for(errors, "metrics").message == "unknown key");
  CHECK(error_for(errors, "metrics").line == 14);
}

TEST_CASE("config: the admin endpoint is loopback-only unless allowed", "[config]") {
  const std::string base = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[route]]\nupstream = \"app\"\n"
                           "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:9000\"]\n";
  const auto remote = load_bad(base + "[admin]\naddress = \"10.1.2.3:9901\"\n");
  REQUIRE(remote.size() == 1);
  CHECK(remote[0].key == "admin.address");
  CHECK(remote[0].line == 9);
  CHECK(remote[0].message.find("not a loopback address") != std::string::npos);
  const auto missing = load_bad(base + "[admin]\nallow_remote = true\n");
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].key == "admin.address");

  const auto cfg = load_ok(base + "[admin]\naddress = \"0.0.0.0:9901\"\nallow_remote = true\n");
  CHECK(cfg->admin.enabled);
  CHECK(cfg->admin.addr.text == "0.0.0.0:9901");
  CHECK(load_ok(base + "[admin]\naddress = \"127.0.0.2:9901\"\n")->admin.enabled);
  CHECK(load_ok(base + "[admin]\naddress = \"[::1]:9901\"\n")->admin.enabled);
  CHECK_FALSE(load_ok(base)->admin.enabled);
}

TEST_CASE("config: drain_delay may be 0, reload_grace may not", "[config]") {
  const std::string base = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[route]]\nupstream = \"app\"\n"
                           "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:9000\"]\n";
  const auto cfg = load_ok(base + "[server]\ndrain_delay = \"0s\"\nreload_grace = \"10s\"\n");
  CHECK(cfg->server.drain_delay.count() == 0);
  CHECK(cfg->server.reload_grace.count() == 10'000);
  CHECK(load_ok(base)->server.reload_grace.count() == 30'000);
  const auto bad = load_bad(base + "[server]\nreload_grace = \"0s\"\n");
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].key == "server.reload_grace");
}

TEST_CASE("config: wrong types are errors", "[config]") {
  expect_error("server = 1\n" + std::string(kMinimal), "server", "expected a table");
  const auto errors = load_bad(R"(
[listener]
address = "127.0.0.1:8080"
[[route]]
upstream = "app"
strip_prefix = "yes"
[[upstream]]
name = "app"
servers = "127.0.0.1:9000"
)");
  CHECK(errors.size() == 3);
  CHECK_THAT(error_for(errors, "listener").message, Catch::Contains("expected an array of tables"));
  CHECK(error_for(errors, "route[0].strip_prefix").message == "expected a boolean");
  CHECK_THAT(error_for(errors, "upstream[0].servers").message,
             Catch::Contains("expected an array"));
  expect_error("route = [1, 2]\n[[listener]]\naddress = \"127.0.0.1:80\"\n"
               "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:9000\"]\n",
               "route", "expected an array of tables");
}

TEST_CASE("config: listener, route and upstream are each required", "[config]") {
  for (const char* text : {"", "# nothing here\n"}) {
    const auto errors = load_bad(text);
    CHECK(errors.size() == 3);
    for (const char* key : {"listener", "route", "upstream"}) {
      const auto e = error_for(errors, key);
      CHECK_THAT(e.message, Catch::Contains("at least one [["));
      CHECK(e.line == 1);
    }
  }
  const auto empty = load_bad("listener = []\nroute = []\nupstream = []\n");
  CHECK(error_for(empty, "listener").line == 1);
  CHECK(error_for(empty, "route").line == 2);
  CHECK(error_for(empty, "upstream").line == 3);
}

TEST_CASE("config: a missing required key is reported at its table", "[config]") {
  const auto errors = load_bad(R"([[listener]]
[[route]]
host = "*"
[[upstream]]
servers = ["127.0.0.1:9000"]
[[upstream]]
name = "x"
)");
  CHECK(errors.size() == 4);
  const auto listener = error_for(errors, "listener[0].address");
  CHECK(listener.message == "missing required key");
  CHECK(listener.line == 1);
  CHECK(error_for(errors, "route[0].upstream").line == 2);
  CHECK(error_for(errors, "upstream[0].name").line == 4);
  CHECK(error_for(errors, "upstream[1].servers").line == 6);
}

TEST_CASE("config: listener addresses are validated and must differ", "[config]") {
  const auto errors = load_bad(R"(
[[listener]]
address = "127.0.0.1:0"
[[listener]]
address = "127.0.0.1:8080"
[[listener]]
address = "127.0.0.1:8080"
[[listener]]
address = 8080
[[route]]
upstream = "app"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
)");
  CHECK(errors.size() == 3);
  const auto port = error_for(errors, "listener[0].address");
  CHECK(port.to_string() == "test.toml:3:11: listener[0].address: port must be in 1..65535");
  CHECK_THAT(error_for(errors, "listener[2].address").message,
             Catch::Contains("same address as listener[1]"));
  CHECK(error_for(errors, "listener[3].address").message == "expected a string");
}

TEST_CASE("config: route hosts are exact, *.suffix or *, stored lower-case", "[config]") {
  const auto route = [](const std::string& host) {
    return std::string(kMinimal) + "[[route]]\nhost = \"" + host + "\"\nupstream = \"app\"\n";
  };
  CHECK(load_ok(route("WWW.Example.COM"))->routes[1].host == "www.example.com");
  CHECK(load_ok(route("*.Example.com"))->routes[1].host == "*.example.com");
  CHECK(load_ok(route("localhost"))->routes[1].host == "localhost");
  for (const char* bad :
       {"a*.b", "**", "*.", "*.*", "", " ", "a b.com", "example.com.", ".example.com", "a..b",
        "*example.com", "example.*", "host:80", "ex/ample"}) {
    INFO("host: \"" << bad << "\"");
    expect_error(route(bad), "route[1].host", "invalid host");
  }
}

TEST_CASE("config: route path_prefix must start with a slash", "[config]") {
  const auto route = [](const std::string& prefix) {
    return std::string(kMinimal) + "[[route]]\npath_prefix = \"" + prefix +
           "\"\nupstream = \"app\"\n";
  };
  CHECK(load_ok(route("/api"))->routes[1].path_prefix == "/api");
  for (const char* bad : {"", "api", "/a b", "/a?b", "/a#b"}) {
    INFO("path_prefix: \"" << bad << "\"");
    expect_error(route(bad), "route[1].path_prefix", "must start with \"/\"");
  }
}

TEST_CASE("config: routes must name a declared upstream and not repeat", "[config]") {
  const auto errors = load_bad(std::string(kMinimal) + R"(
[[route]]
upstream = "nope"
path_prefix = "/x"
[[route]]
host = "*"
path_prefix = "/"
upstream = "app"
)");
  CHECK(errors.size() == 2);
  CHECK(error_for(errors, "route[1].upstream").message == "no [[upstream]] named \"nope\"");
  const auto dup = error_for(errors, "route[2]");
  CHECK_THAT(dup.message, Catch::Contains("same host and path_prefix as route[0]"));
  CHECK(dup.line == 13);

  // Host comparison is by the stored, lower-case form.
  const auto mixed = load_bad(std::string(kMinimal) +
                              "[[route]]\nhost = \"A.com\"\nupstream = \"app\"\n"
                              "[[route]]\nhost = \"a.COM\"\nupstream = \"app\"\n");
  CHECK_THAT(error_for(mixed, "route[2]").message, Catch::Contains("route[1]"));
}

TEST_CASE("config: upstreams need unique non-empty names and servers", "[config]") {
  const auto errors = load_bad(R"(
[[listener]]
address = "127.0.0.1:8080"
[[route]]
upstream = "app"
[[upstream]]
name = "app"
servers = []
[[upstream]]
name = "app"
servers = ["127.0.0.1:9001"]
[[upstream]]
name = ""
servers = ["127.0.0.1:9002", 5, "127.0.0.1:99999", "nowhere.invalid:80"]
balance = "random"
keepalive = 10001
max_fails = 0
fail_timeout = "forever"
resolve_interval = "0s"
)");
  CHECK(errors.size() == 11);
  CHECK(error_for(errors, "upstream[0].servers").message == "must list at least one server");
  CHECK_THAT(error_for(errors, "upstream[1].name").message,
             Catch::Contains("duplicate upstream name \"app\" (also upstream[0])"));
  CHECK(error_for(errors, "upstream[2].name").message == "must not be empty");
  CHECK(error_for(errors, "upstream[2].servers[1]").message == "expected a string");
  CHECK(error_for(errors, "upstream[2].servers[2]").message == "port must be in 1..65535");
  const auto unresolved = error_for(errors, "upstream[2].servers[3]");
  CHECK_THAT(unresolved.message, Catch::StartsWith("cannot resolve \"nowhere.invalid\""));
  CHECK(unresolved.line == 14);
  CHECK_THAT(error_for(errors, "upstream[2].balance").message,
             Catch::Contains("round_robin, least_conn, hash_client_ip"));
  CHECK(error_for(errors, "upstream[2].keepalive").message == "must be in 0..10000");
  CHECK(error_for(errors, "upstream[2].max_fails").message == "must be in 1..1000");
  CHECK_THAT(error_for(errors, "upstream[2].fail_timeout").message,
             Catch::Contains("invalid duration"));
  const auto interval = error_for(errors, "upstream[2].resolve_interval");
  CHECK(interval.line == 19);
  CHECK_FALSE(interval.message.empty());
}

TEST_CASE("config: several errors are reported at once, in file order", "[config]") {
  const auto errors = load_bad(R"([server]
workers = 1000
[timeouts]
idle = "forever"
[[listener]]
address = "127.0.0.1:99999"
[[route]]
host = "a*.b"
upstream = "missing"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
colour = "blue"
)");
  REQUIRE(errors.size() == 6);
  const char* keys[] = {"server.workers", "timeouts.idle",     "listener[0].address",
                        "route[0].host",  "route[0].upstream", "upstream[0].colour"};
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CHECK(errors[i].key == keys[i]);
    if (i > 0) CHECK(errors[i - 1].line < errors[i].line);
  }
}

TEST_CASE("config: a TOML syntax error is one error at its position with no key", "[config]") {
  const auto errors = load_bad("[server]\nworkers = 1\nworkers = 2\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key.empty());
  CHECK(errors[0].line == 3);
  CHECK(errors[0].column > 0);
  CHECK_THAT(errors[0].to_string(),
             Catch::StartsWith("test.toml:3:" + std::to_string(errors[0].column) + ": "));
  CHECK_THAT(errors[0].to_string(), !Catch::Contains(":  "));

  const auto unterminated = load_bad("[[listener]]\naddress = \"127.0.0.1:80\n");
  REQUIRE(unterminated.size() == 1);
  CHECK(unterminated[0].line == 2);
  CHECK(load_bad("x = 99999999999999999999\n").size() == 1);
}

TEST_CASE("config: error strings omit what they do not have", "[config]") {
  CHECK(
      ConfigError{"f.toml", 4, 11, "listener[0].address", "port must be in 1..65535"}.to_string() ==
      "f.toml:4:11: listener[0].address: port must be in 1..65535");
  CHECK(ConfigError{"f.toml", 2, 5, "", "bad syntax"}.to_string() == "f.toml:2:5: bad syntax");
  CHECK(ConfigError{"f.toml", 0, 0, "", "cannot read: Permission denied"}.to_string() ==
        "f.toml: cannot read: Permission denied");
  CHECK(ConfigError{"f.toml", 0, 0, "route", "odd"}.to_string() == "f.toml: route: odd");
}

TEST_CASE("config: load_config reads a file and names it in errors", "[config]") {
  TempFile good(kMinimal);
  CHECK(config_of(load_config(good.path()))->source_path == good.path());

  TempFile bad(std::string(kMinimal) + "[log]\nlevel = \"loud\"\n");
  const auto errors = errors_of(load_config(bad.path()));
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0].to_string(), Catch::StartsWith(bad.path() + ":10:9: log.level: "));
}

TEST_CASE("config: a file that cannot be read is an error without a place", "[config]") {
  const std::string missing =
      (std::filesystem::temp_directory_path() / "sluice-config-test-does-not-exist.toml").string();
  const auto errors = errors_of(load_config(missing));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].line == 0);
  CHECK(errors[0].to_string() == missing + ": cannot read: No such file or directory");

  const auto dir = errors_of(load_config(std::filesystem::temp_directory_path().string()));
  CHECK_THAT(dir.at(0).message, Catch::StartsWith("cannot read: "));
}

#ifdef SLUICE_SOURCE_DIR
TEST_CASE("config: the shipped configs load", "[config]") {
  InDirectory root(SLUICE_SOURCE_DIR);
  INFO("conf/dev/localhost.pem and .key come from `sh scripts/dev-cert.sh` (run by make build)");
  const auto example = config_of(load_config("conf/example-full.toml"));
  CHECK(example->routes.size() == 6);
  REQUIRE(example->listeners.size() == 3);
  REQUIRE(example->listeners[2].tls.has_value());
  CHECK(example->listeners[2].tls->certificates.size() == 2);
  CHECK(example->listeners[2].tls->min_version == TlsVersion::V1_3);
  CHECK(example->routes[3].hsts == "max-age=31536000; includeSubDomains");
  CHECK(example->upstreams.at(4).tls.enabled);
  CHECK(example->upstreams.at(0).health_check.path == "/healthz");
  CHECK(example->upstreams.at(2).health_check.websocket);
  CHECK(example->upstreams.at(4).tls.cert == "conf/dev/localhost.pem");

  // sluice.toml writes every key out at its default value, and adds a TLS
  // listener on the dev certificate, and the demo's /chat route to its chat
  // upstream (whose WebSocket policy config_websocket_test.cpp checks).
  const auto c = config_of(load_config("conf/sluice.toml"));
  check_defaults(*c, "demo");
  REQUIRE(c->routes.size() == 2);
  const Route& chat = c->routes[1];
  CHECK(chat.host == "*");
  CHECK(chat.path_prefix == "/chat");
  CHECK(chat.upstream == "chat");
  CHECK(chat.upstream_index == 1);
  CHECK_FALSE(chat.strip_prefix);
  CHECK(chat.hsts.empty());
  REQUIRE(c->upstreams.size() == 2);
  const Upstream& chat_up = c->upstreams[1];
  CHECK(chat_up.name == "chat");
  REQUIRE(chat_up.servers.size() == 1);
  CHECK(chat_up.servers[0].addrs.at(0).text == "127.0.0.1:9001");
  CHECK(chat_up.balance == Balance::RoundRobin);
  CHECK(chat_up.keepalive == 64);
  CHECK(chat_up.max_fails == 3);
  CHECK(chat_up.fail_timeout == 10s);
  CHECK_FALSE(chat_up.tls.enabled);
  REQUIRE(c->listeners.size() == 2);
  const Listener& secure = c->listeners[1];
  CHECK(secure.address == "127.0.0.1:8443");
  REQUIRE(secure.tls.has_value());
  REQUIRE(secure.tls->certificates.size() == 1);
  CHECK(secure.tls->certificates[0].cert == "conf/dev/localhost.pem");
  CHECK(secure.tls->certificates[0].key == "conf/dev/localhost.key");
  CHECK(secure.tls->certificates[0].ocsp_staple.empty());
  CHECK(secure.tls->min_version == TlsVersion::V1_2);
  CHECK(secure.tls->alpn == std::vector<std::string>{"http/1.1"});
  CHECK(secure.tls->session_tickets);
}
#endif
