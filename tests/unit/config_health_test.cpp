// Tests for an upstream's health_check table (src/config/health_settings):
// defaults, both spellings (inline and [upstream.health_check]), and every
// refusal naming its key with file:line:col.
#include <catch2/catch.hpp>

#include <string>

#include "config/config.hpp"
#include "config_support.hpp"

namespace {

using namespace sluice::config;
using namespace std::chrono_literals;

constexpr const char* kPath = "health.toml";

constexpr const char* kBase = R"(
[[listener]]
address = "127.0.0.1:8080"
[[route]]
upstream = "app"
[[upstream]]
name = "app"
servers = ["127.0.0.1:9000", "127.0.0.1:9001"]
)";

std::shared_ptr<const Config> load_ok(const std::string& extra) {
  return config_support::config_of(parse_config(std::string(kBase) + extra, kPath));
}

void expect_error(const std::string& extra, const std::string& key, const std::string& fragment) {
  const auto errors = config_support::errors_of(parse_config(std::string(kBase) + extra, kPath));
  const auto e = config_support::single_error(errors, key, fragment);
  CHECK(e.file == kPath);
}

}  // namespace

TEST_CASE("config health_check: absent means no active checks", "[config][health]") {
  const auto c = load_ok("");
  CHECK_FALSE(c->upstreams[0].health_check.enabled);
}

TEST_CASE("config health_check: an empty table takes every default", "[config][health]") {
  const auto c = load_ok("health_check = {}\n");
  const HealthCheck& h = c->upstreams[0].health_check;
  CHECK(h.enabled);
  CHECK(h.path == "/health");
  CHECK(h.interval == 5s);
  CHECK(h.timeout == 1s);
  CHECK(h.unhealthy == 3);
  CHECK(h.healthy == 2);
  CHECK_FALSE(h.websocket);
  CHECK(h.origin.empty());
}

TEST_CASE("config health_check: inline table sets every key", "[config][health]") {
  const auto c = load_ok(
      "health_check = { path = \"/ready?deep=1\", interval = \"200ms\", timeout = \"150ms\", "
      "unhealthy = 1, healthy = 100, websocket = true, origin = \"https://app.example.com\" }\n");
  const HealthCheck& h = c->upstreams[0].health_check;
  CHECK(h.path == "/ready?deep=1");
  CHECK(h.interval == 200ms);
  CHECK(h.timeout == 150ms);
  CHECK(h.unhealthy == 1);
  CHECK(h.healthy == 100);
  CHECK(h.websocket);
  CHECK(h.origin == "https://app.example.com");
}

TEST_CASE("config health_check: the sub-table spelling", "[config][health]") {
  const auto c = load_ok("[upstream.health_check]\npath = \"/hc\"\ninterval = \"10s\"\n");
  const HealthCheck& h = c->upstreams[0].health_check;
  CHECK(h.enabled);
  CHECK(h.path == "/hc");
  CHECK(h.interval == 10s);
}

TEST_CASE("config health_check: bad values name their key and place", "[config][health]") {
  expect_error("health_check = { path = \"health\" }\n", "upstream[0].health_check.path",
               "must start with \"/\"");
  expect_error("health_check = { path = \"/a b\" }\n", "upstream[0].health_check.path",
               "no spaces");
  expect_error("health_check = { path = \"/a\\r\\nX: y\" }\n", "upstream[0].health_check.path",
               "control characters");
  expect_error("health_check = { interval = \"0s\" }\n", "upstream[0].health_check.interval",
               "greater than 0");
  expect_error("health_check = { timeout = \"0ms\" }\n", "upstream[0].health_check.timeout",
               "greater than 0");
  expect_error("health_check = { interval = \"1s\", timeout = \"1s\" }\n",
               "upstream[0].health_check.timeout", "shorter than interval");
  expect_error("health_check = { unhealthy = 0 }\n", "upstream[0].health_check.unhealthy",
               "1..100");
  expect_error("health_check = { healthy = 101 }\n", "upstream[0].health_check.healthy",
               "1..100");
  expect_error("health_check = { websocket = \"yes\" }\n", "upstream[0].health_check.websocket",
               "expected a boolean");
  expect_error("health_check = { origin = \"https://a.example\" }\n",
               "upstream[0].health_check.origin", "websocket = true");
  expect_error("health_check = { path = \"/h\", intervall = \"5s\" }\n",
               "upstream[0].health_check.intervall", "unknown key");
  expect_error("health_check = \"/health\"\n", "upstream[0].health_check", "expected a table");
}

TEST_CASE("config health_check: a short interval needs a shorter timeout", "[config][health]") {
  // The default timeout (1s) does not fit in a 500ms interval: said at the table.
  const auto errors =
      config_support::errors_of(parse_config(std::string(kBase) + "health_check = { interval = \"500ms\" }\n", kPath));
  const auto e = config_support::error_for(errors, "upstream[0].health_check");
  CHECK_THAT(e.message, Catch::Contains("longer than timeout"));
  CHECK(e.line == 9);
}
