// Tests for a route's WebSocket settings in src/config: the [route.websocket]
// table and its inline form, the defaults when it is absent, and every check
// on its values, each reported with its place and key path.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>

#include "config/config.hpp"
#include "config_support.hpp"

namespace {

using namespace sluice::config;
using namespace std::chrono_literals;
using Extensions = RouteWebSocket::Extensions;

// What the loader keeps of an allowlist written as `texts`: each parsed, in order.
std::vector<sluice::ws::OriginPattern> origins(std::initializer_list<const char*> texts) {
  std::vector<sluice::ws::OriginPattern> out;
  for (const char* t : texts) out.push_back(sluice::ws::parse_origin_pattern(t).value());
  return out;
}

constexpr const char* kPath = "test.toml";

// Lines 1..10; the route under test is route[1], and what the test adds
// starts on line 11.
constexpr const char* kTwoRoutes = R"([[listener]]
address = "127.0.0.1:8080"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
[[route]]
upstream = "app"
[[route]]
path_prefix = "/chat"
upstream = "app")";

// kTwoRoutes with `text` after route[1]'s keys: a "[route.websocket]"
// section with its keys, or a line such as `websocket = { ... }`.
std::string with_websocket(const std::string& text) {
  return std::string(kTwoRoutes) + "\n" + text + "\n";
}

// The same with `body` as the keys of a [route.websocket] section.
std::string with_table(const std::string& body) {
  return with_websocket("[route.websocket]\n" + body);
}

std::shared_ptr<const Config> load_ok(const std::string& text) {
  return config_support::config_of(parse_config(text, kPath));
}

std::vector<ConfigError> load_bad(const std::string& text) {
  return config_support::errors_of(parse_config(text, kPath));
}

const RouteWebSocket& ws_of(const std::shared_ptr<const Config>& c) {
  REQUIRE(c->routes.size() == 2);
  return c->routes[1].websocket;
}

using config_support::error_for;

// Exactly one error, at route[1].websocket.<key>, placed, holding `fragment`.
void expect_error(const std::string& text, const std::string& key, const std::string& fragment) {
  const auto e = config_support::single_error(
      load_bad(text), "route[1].websocket" + (key.empty() ? "" : "." + key), fragment);
  CHECK(e.line >= 11);
}

void check_defaults(const RouteWebSocket& ws) {
  CHECK(ws.enabled);
  CHECK(ws.allowed_origins.empty());
  CHECK_FALSE(ws.allow_missing_origin);
  CHECK(ws.subprotocols.empty());
  CHECK(ws.max_frame_bytes == 1u << 20);
  CHECK(ws.max_message_bytes == 4u << 20);
  CHECK(ws.validate_utf8);
  CHECK(ws.idle_timeout == 5min);
  CHECK(ws.ping_interval == 30s);
  CHECK(ws.extensions == Extensions::Strip);
}

// Every key set away from its default.
constexpr const char* kEveryKey = R"(enabled = false
allowed_origins = ["https://chat.example.com", "https://*.example.com", "http://localhost:3000"]
allow_missing_origin = true
subprotocols = ["chat.v2", "chat.v1"]
max_frame_bytes = "64KiB"
max_message_bytes = 1048576
validate_utf8 = false
idle_timeout = "90s"
ping_interval = "250ms"
extensions = "passthrough")";

void check_every_key(const RouteWebSocket& ws) {
  CHECK_FALSE(ws.enabled);
  CHECK(ws.allowed_origins == origins({"https://chat.example.com", "https://*.example.com",
                                       "http://localhost:3000"}));
  CHECK(ws.allow_missing_origin);
  CHECK(ws.subprotocols == std::vector<std::string>{"chat.v2", "chat.v1"});
  CHECK(ws.max_frame_bytes == 64 * 1024);
  CHECK(ws.max_message_bytes == 1024 * 1024);
  CHECK_FALSE(ws.validate_utf8);
  CHECK(ws.idle_timeout == 90s);
  CHECK(ws.ping_interval == 250ms);
  CHECK(ws.extensions == Extensions::Passthrough);
}

// kEveryKey as one inline table: the lines joined with ", ".
std::string inline_every_key() {
  std::string body = kEveryKey;
  for (std::size_t at = body.find('\n'); at != std::string::npos; at = body.find('\n', at))
    body.replace(at, 1, ", ");
  return "websocket = { " + body + " }";
}

}  // namespace

// ---- reading ----

TEST_CASE("config websocket: a route without the table has the defaults", "[config]") {
  const auto c = load_ok(with_websocket(""));
  check_defaults(c->routes.at(0).websocket);
  check_defaults(ws_of(c));
  check_defaults(ws_of(load_ok(with_websocket("[route.websocket]"))));
  check_defaults(ws_of(load_ok(with_websocket("websocket = {}"))));
}

TEST_CASE("config websocket: every key is read, as a sub-table and inline", "[config]") {
  const auto table = load_ok(with_table(kEveryKey));
  check_defaults(table->routes.at(0).websocket);  // only route[1] has the table
  check_every_key(ws_of(table));
  check_every_key(ws_of(load_ok(with_websocket(inline_every_key()))));
  // Dotted keys in the route make the same table.
  const auto dotted = ws_of(load_ok(with_websocket(
      "websocket.enabled = false\nwebsocket.extensions = \"passthrough\"")));
  CHECK_FALSE(dotted.enabled);
  CHECK(dotted.extensions == Extensions::Passthrough);
  CHECK(dotted.max_frame_bytes == 1u << 20);
}

TEST_CASE("config websocket: origins in every accepted form are kept, parsed, in order", "[config]") {
  const std::initializer_list<const char*> texts{
      "https://chat.example.com", "http://localhost:3000",   "https://*.example.com",
      "https://*.example.com:8443", "http://127.0.0.1:8080", "http://[::1]:8080",
      "HTTPS://Chat.Example.COM"};
  std::string list;
  for (const char* o : texts) list += (list.empty() ? "\"" : ", \"") + std::string(o) + "\"";
  CHECK(ws_of(load_ok(with_table("allowed_origins = [" + list + "]"))).allowed_origins ==
        origins(texts));
  CHECK(ws_of(load_ok(with_table("allowed_origins = []"))).allowed_origins.empty());
}

TEST_CASE("config websocket: sizes at the ends of their ranges", "[config]") {
  const auto sizes = [](const std::string& frame, const std::string& message) {
    const auto ws = ws_of(
        load_ok(with_table("max_frame_bytes = " + frame + "\nmax_message_bytes = " + message)));
    return std::pair{ws.max_frame_bytes, ws.max_message_bytes};
  };
  CHECK(sizes("1", "1") == std::pair<std::uint64_t, std::uint64_t>{1, 1});
  CHECK(sizes("\"1GiB\"", "\"1GiB\"") ==
        std::pair<std::uint64_t, std::uint64_t>{1ull << 30, 1ull << 30});
  CHECK(sizes("\"16KiB\"", "\"1GB\"") ==
        std::pair<std::uint64_t, std::uint64_t>{16 * 1024, 1'000'000'000});
  // Equal to the default message size is still at most it.
  CHECK(ws_of(load_ok(with_table("max_frame_bytes = \"4MiB\""))).max_frame_bytes == 4u << 20);
  CHECK(ws_of(load_ok(with_table("max_message_bytes = \"1MiB\""))).max_message_bytes == 1u << 20);
}

// ---- errors ----

TEST_CASE("config websocket: an origin that parse_origin_pattern refuses is an error at its "
          "index",
          "[config]") {
  const auto errors =
      load_bad(with_table("allowed_origins = [\"https://ok.example.com\", \"htps://typo.com\"]"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string() ==
        "test.toml:12:46: route[1].websocket.allowed_origins[1]: invalid origin "
        "\"htps://typo.com\": expected \"scheme://host[:port]\" or \"scheme://*.domain[:port]\", "
        "scheme http or https, with no path (not even a trailing \"/\")");

  for (const char* bad :
       {"", "chat.example.com", "ws://chat.example.com", "https://", "https://chat.example.com/",
        "https://chat.example.com/app", "https://x.com?q=1", "https://user@x.com", "https://x.com:0",
        "https://x.com:65536", "https://x.com:", "https://*.0.0.1", "https://*", "https://a..b",
        "null", " https://x.com"}) {
    INFO(bad);
    expect_error(with_table(std::string("allowed_origins = [\"") + bad + "\"]"),
                 "allowed_origins[0]", "expected \"scheme://host[:port]\" or");
  }
  // Each bad entry is its own error.
  const auto two = load_bad(with_table("allowed_origins = [\"a\", \"https://x.com\", \"b\"]"));
  CHECK(two.size() == 2);
  CHECK(error_for(two, "route[1].websocket.allowed_origins[0]").column == 20);
  CHECK(error_for(two, "route[1].websocket.allowed_origins[2]").column == 42);
}

TEST_CASE("config websocket: subprotocols must be RFC 7230 tokens", "[config]") {
  CHECK(ws_of(load_ok(with_table("subprotocols = [\"graphql-transport-ws\", \"mqtt\", "
                                 "\"v1.json.api\", \"!#$%&'*+-.^_`|~\"]")))
            .subprotocols.size() == 4);
  expect_error(with_table("subprotocols = [\"\"]"), "subprotocols[0]", "must not be empty");
  for (const char* bad : {"a b", "a,b", "v1/json", "\\\"q\\\"", "chat;v=1", "tab\\there", "caf\\u00e9",
                          "(x)", "a=b", "{x}", "a:b", "[x]", "x@y", "x?"}) {
    INFO(bad);
    expect_error(with_table(std::string("subprotocols = [\"chat\", \"") + bad + "\"]"),
                 "subprotocols[1]", "expected an RFC 7230 token");
  }
}

TEST_CASE("config websocket: max_frame_bytes is 1..2GiB", "[config]") {
  expect_error(with_table("max_frame_bytes = 0"), "max_frame_bytes",
               "must be in 1..2GiB (1..2147483648 bytes)");
  expect_error(with_table("max_frame_bytes = 2147483649\nmax_message_bytes = \"1GiB\""),
               "max_frame_bytes", "must be in 1..2GiB");
  expect_error(with_table("max_frame_bytes = -1"), "max_frame_bytes", "must not be negative");
  expect_error(with_table("max_frame_bytes = \"1 MiB\""), "max_frame_bytes", "invalid size");
  expect_error(with_table("max_frame_bytes = 1.5"), "max_frame_bytes",
               "expected an integer or a string");
  // 2GiB itself is in range, and then larger than any message may be.
  expect_error(with_table("max_frame_bytes = \"2GiB\"\nmax_message_bytes = \"1GiB\""),
               "max_message_bytes",
               "max_message_bytes (1073741824 bytes) must be at least max_frame_bytes "
               "(2147483648 bytes)");
}

TEST_CASE("config websocket: max_message_bytes is max_frame_bytes..1GiB", "[config]") {
  expect_error(with_table("max_message_bytes = \"1025MiB\""), "max_message_bytes",
               "must be in 1..1GiB (1..1073741824 bytes)");
  expect_error(with_table("max_message_bytes = 0"), "max_message_bytes", "must be in 1..1GiB");
  expect_error(with_table("max_message_bytes = true"), "max_message_bytes",
               "expected an integer or a string");

  // The error is on the message key, and names both.
  const auto errors = load_bad(with_table("max_frame_bytes = \"1MiB\"\nmax_message_bytes = "
                                          "\"512KiB\""));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string() ==
        "test.toml:13:21: route[1].websocket.max_message_bytes: max_message_bytes (524288 bytes) "
        "must be at least max_frame_bytes (1048576 bytes)");
  // Against the default frame size, too.
  expect_error(with_table("max_message_bytes = \"1023KiB\""), "max_message_bytes",
               "(1047552 bytes) must be at least max_frame_bytes (1048576 bytes)");
  // Only the frame size written: the message size it outgrew is the default,
  // and the error points at the key that was written.
  expect_error(with_table("max_frame_bytes = \"8MiB\""), "max_frame_bytes",
               "max_frame_bytes (8388608 bytes) is larger than max_message_bytes (4194304 bytes, "
               "the default): raise max_message_bytes too");
  // A refused size is reported once, not again as a bad comparison.
  expect_error(with_table("max_frame_bytes = \"lots\"\nmax_message_bytes = 1024"),
               "max_frame_bytes", "invalid size \"lots\"");
  expect_error(with_table("max_frame_bytes = \"8MiB\"\nmax_message_bytes = \"2GiB\""),
               "max_message_bytes", "must be in 1..1GiB");
}

TEST_CASE("config websocket: durations follow the usual rules", "[config]") {
  for (const char* key : {"idle_timeout", "ping_interval"}) {
    INFO(key);
    const std::string k = key;
    expect_error(with_table(k + " = \"0s\""), k, "must be greater than 0 and at most 24h");
    expect_error(with_table(k + " = \"25h\""), k, "must be greater than 0 and at most 24h");
    expect_error(with_table(k + " = \"30\""), k, "invalid duration \"30\"");
    expect_error(with_table(k + " = 30"), k, "expected a string such as \"10s\"");
  }
  const auto ws = ws_of(load_ok(with_table("idle_timeout = \"24h\"\nping_interval = \"1ms\"")));
  CHECK(ws.idle_timeout == 24h);
  CHECK(ws.ping_interval == 1ms);
}

TEST_CASE("config websocket: extensions is strip or passthrough", "[config]") {
  CHECK(ws_of(load_ok(with_table("extensions = \"strip\""))).extensions == Extensions::Strip);
  expect_error(with_table("extensions = \"permessage-deflate\""), "extensions",
               "must be one of strip, passthrough");
  expect_error(with_table("extensions = \"Strip\""), "extensions",
               "must be one of strip, passthrough");
  expect_error(with_table("extensions = []"), "extensions", "expected a string");
}

TEST_CASE("config websocket: unknown keys are errors", "[config]") {
  expect_error(with_table("origins = [\"https://x.com\"]"), "origins", "unknown key");
  expect_error(with_websocket("websocket = { enabled = true, compression = false }"),
               "compression", "unknown key");
  const auto errors = load_bad(with_table("max_frame = 10\nping = \"1s\""));
  CHECK(errors.size() == 2);
  CHECK(error_for(errors, "route[1].websocket.max_frame").line == 12);
  CHECK(error_for(errors, "route[1].websocket.ping").line == 13);
}

TEST_CASE("config websocket: wrong types are errors", "[config]") {
  const struct {
    const char* body;
    const char* key;
    const char* fragment;
  } cases[] = {
      {"enabled = \"yes\"", "enabled", "expected a boolean"},
      {"enabled = 1", "enabled", "expected a boolean"},
      {"allow_missing_origin = \"no\"", "allow_missing_origin", "expected a boolean"},
      {"validate_utf8 = 0", "validate_utf8", "expected a boolean"},
      {"allowed_origins = \"https://x.com\"", "allowed_origins",
       "expected an array of strings such as [\"https://chat.example.com\"]"},
      {"allowed_origins = { a = 1 }", "allowed_origins", "expected an array of strings"},
      {"allowed_origins = [1]", "allowed_origins[0]", "expected a string"},
      {"allowed_origins = [[\"https://x.com\"]]", "allowed_origins[0]", "expected a string"},
      {"subprotocols = \"chat\"", "subprotocols",
       "expected an array of strings such as [\"chat.v1\"]"},
      {"subprotocols = [\"chat\", true]", "subprotocols[1]", "expected a string"},
      {"max_frame_bytes = [1]", "max_frame_bytes", "expected an integer or a string"},
      {"idle_timeout = true", "idle_timeout", "expected a string such as \"10s\""},
      {"extensions = 1", "extensions", "expected a string"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    expect_error(with_table(c.body), c.key, c.fragment);
  }
  expect_error(with_websocket("websocket = true"), "",
               "expected a table ([route.websocket] or websocket = { ... })");
  expect_error(with_websocket("websocket = [\"enabled\"]"), "", "expected a table");
}

TEST_CASE("config websocket: every problem is reported at once, in file order", "[config]") {
  const auto errors = load_bad(std::string(kTwoRoutes) + R"(
strip_prefix = "yes"
[route.websocket]
enabled = "no"
allowed_origins = ["https://ok.com", "https://bad.com/"]
subprotocols = ["a b"]
max_frame_bytes = "2MiB"
max_message_bytes = "1MiB"
idle_timeout = "0s"
ping_interval = "soon"
extensions = "gzip"
colour = "blue"
)");
  std::vector<std::string> keys;
  for (const auto& e : errors) keys.push_back(e.key);
  CHECK(keys == std::vector<std::string>{
                    "route[1].strip_prefix",
                    "route[1].websocket.enabled",
                    "route[1].websocket.allowed_origins[1]",
                    "route[1].websocket.subprotocols[0]",
                    "route[1].websocket.max_message_bytes",
                    "route[1].websocket.idle_timeout",
                    "route[1].websocket.ping_interval",
                    "route[1].websocket.extensions",
                    "route[1].websocket.colour",
                });
  // The route's index counts every [[route]], including those after it.
  const auto first = load_bad(R"([[listener]]
address = "127.0.0.1:8080"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000"]
[[route]]
upstream = "app"
websocket = { ping_interval = "0ms" }
[[route]]
path_prefix = "/b"
upstream = "app"
)");
  REQUIRE(first.size() == 1);
  CHECK(first[0].to_string() ==
        "test.toml:8:31: route[0].websocket.ping_interval: must be greater than 0 and at most 24h");
}

#ifdef SLUICE_SOURCE_DIR
namespace {

using config_support::InDirectory;

std::shared_ptr<const Config> load_file(const std::string& path) {
  LoadResult result = load_config(path);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    for (const auto& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("expected " + path + " to load");
  }
  return std::get<std::shared_ptr<const Config>>(result);
}

}  // namespace

TEST_CASE("config websocket: the shipped configs show the table", "[config]") {
  InDirectory root(SLUICE_SOURCE_DIR);
  INFO("conf/dev/localhost.pem and .key come from `sh scripts/dev-cert.sh` (run by make build)");
  // sluice.toml: the block of its first route is commented out (the
  // defaults); the demo's /chat route writes every key out, with its own
  // origins and a 1 MiB message limit.
  const auto shipped = load_file("conf/sluice.toml");
  REQUIRE(shipped->routes.size() == 2);
  check_defaults(shipped->routes[0].websocket);
  const Route& demo = shipped->routes[1];
  CHECK(demo.path_prefix == "/chat");
  const RouteWebSocket& d = demo.websocket;
  CHECK(d.enabled);
  CHECK(d.allowed_origins == origins({"https://localhost:8443", "https://127.0.0.1:8443",
                                      "http://127.0.0.1:8080", "http://localhost:8080"}));
  CHECK_FALSE(d.allow_missing_origin);
  CHECK(d.subprotocols.empty());
  CHECK(d.max_frame_bytes == 1u << 20);
  CHECK(d.max_message_bytes == 1u << 20);
  CHECK(d.validate_utf8);
  CHECK(d.idle_timeout == 5min);
  CHECK(d.ping_interval == 30s);
  CHECK(d.extensions == Extensions::Strip);

  const auto example = load_file("conf/example-full.toml");
  const auto chat = std::find_if(example->routes.begin(), example->routes.end(),
                                 [](const Route& r) { return r.path_prefix == "/chat"; });
  REQUIRE(chat != example->routes.end());
  const RouteWebSocket& ws = chat->websocket;
  CHECK(ws.enabled);
  CHECK(ws.allowed_origins == origins({"https://chat.example.com", "https://*.example.com"}));
  CHECK_FALSE(ws.allow_missing_origin);
  CHECK(ws.subprotocols == std::vector<std::string>{"chat.v2", "chat.v1"});
  CHECK(ws.max_frame_bytes == 64 * 1024);
  CHECK(ws.max_message_bytes == 1024 * 1024);
  CHECK(ws.validate_utf8);
  CHECK(ws.idle_timeout == 10min);
  CHECK(ws.ping_interval == 20s);
  CHECK(ws.extensions == Extensions::Strip);
}
#endif
