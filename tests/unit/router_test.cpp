// Tests for src/proxy/router: the config's routing contract. Among routes
// whose host matches, the longest path_prefix wins; on equal prefixes an
// exact host beats "*.suffix", which beats "*"; declaration order never
// matters. Routes are built directly, without the loader.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/router.hpp"

namespace {

using sluice::config::Route;
using sluice::proxy::Router;

Route route(std::string host, std::string prefix, std::string upstream) {
  Route r;
  r.host = std::move(host);
  r.path_prefix = std::move(prefix);
  r.upstream = std::move(upstream);
  return r;
}

// The upstream name of the matching route, "none" when nothing matches.
// Also checks that the result points into `routes` (not at a copy).
std::string pick(const Router& router, const std::vector<Route>& routes, std::string_view host,
                 std::string_view path) {
  const Route* r = router.match(host, path);
  if (!r) return "none";
  const bool inside = r >= routes.data() && r < routes.data() + routes.size();
  CHECK(inside);
  return r->upstream;
}

std::vector<Route> mixed_routes() {
  return {
      route("*", "/", "any-root"),
      route("*", "/api/", "any-api"),
      route("*.example.com", "/api/", "wild-api"),
      route("api.example.com", "/api/", "exact-api"),
      route("api.example.com", "/", "exact-root"),
      route("*", "/api/v2/", "any-v2"),
      route("*.example.com", "/static", "wild-static"),
  };
}

// Every expectation below must hold for any declaration order.
void check_mixed(const std::vector<Route>& routes) {
  const Router router(routes);
  // Longest prefix among the routes whose host matches.
  CHECK(pick(router, routes, "other.org", "/api/x") == "any-api");
  CHECK(pick(router, routes, "other.org", "/apix") == "any-root");
  CHECK(pick(router, routes, "other.org", "/") == "any-root");
  // Equal prefixes: exact > wildcard > "*".
  CHECK(pick(router, routes, "api.example.com", "/api/users") == "exact-api");
  CHECK(pick(router, routes, "www.example.com", "/api/users") == "wild-api");
  CHECK(pick(router, routes, "example.com", "/api/users") == "any-api");
  // A longer prefix beats a more specific host.
  CHECK(pick(router, routes, "api.example.com", "/api/v2/users") == "any-v2");
  CHECK(pick(router, routes, "api.example.com", "/other") == "exact-root");
  // Prefixes are plain string prefixes.
  CHECK(pick(router, routes, "a.example.com", "/staticfiles/x") == "wild-static");
  CHECK(pick(router, routes, "a.b.example.com", "/static") == "wild-static");
  CHECK(pick(router, routes, "example.com", "/static") == "any-root");
}

}  // namespace

TEST_CASE("router: longest prefix wins, then exact > wildcard > *", "[router]") {
  std::vector<Route> routes = mixed_routes();
  check_mixed(routes);
}

TEST_CASE("router: the result does not depend on declaration order", "[router]") {
  std::vector<Route> routes = mixed_routes();
  std::reverse(routes.begin(), routes.end());
  check_mixed(routes);
  std::sort(routes.begin(), routes.end(),
            [](const Route& a, const Route& b) { return a.upstream < b.upstream; });
  check_mixed(routes);
  std::rotate(routes.begin(), routes.begin() + 3, routes.end());
  check_mixed(routes);
}

TEST_CASE("router: *.example.com matches subdomains only", "[router]") {
  CHECK(Router::host_matches("*.example.com", "a.example.com"));
  CHECK(Router::host_matches("*.example.com", "a.b.example.com"));
  CHECK_FALSE(Router::host_matches("*.example.com", "example.com"));
  CHECK_FALSE(Router::host_matches("*.example.com", "badexample.com"));
  CHECK_FALSE(Router::host_matches("*.example.com", ".example.com"));
  CHECK_FALSE(Router::host_matches("*.example.com", "a.example.com.evil"));
  CHECK_FALSE(Router::host_matches("*.example.com", ""));
  CHECK(Router::host_matches("*", "anything.at.all"));
  CHECK(Router::host_matches("*", ""));
  CHECK(Router::host_matches("api.example.com", "api.example.com"));
  CHECK_FALSE(Router::host_matches("api.example.com", "x.api.example.com"));
  CHECK_FALSE(Router::host_matches("api.example.com", ""));

  const std::vector<Route> routes = {route("*.example.com", "/", "wild")};
  const Router router(routes);
  CHECK(pick(router, routes, "a.example.com", "/") == "wild");
  CHECK(pick(router, routes, "a.b.example.com", "/x") == "wild");
  CHECK(pick(router, routes, "example.com", "/") == "none");
  CHECK(pick(router, routes, "badexample.com", "/") == "none");
}

TEST_CASE("router: no matching host or prefix gives nullptr", "[router]") {
  const std::vector<Route> routes = {route("api.example.com", "/", "api"),
                                     route("*.example.org", "/v1/", "v1")};
  const Router router(routes);
  CHECK(router.match("other.net", "/") == nullptr);
  CHECK(router.match("a.example.org", "/v2/") == nullptr);
  CHECK(router.match("a.example.org", "/v1") == nullptr);  // shorter than the prefix
  CHECK(pick(router, routes, "a.example.org", "/v1/") == "v1");

  const Router empty(std::vector<Route>{});
  CHECK(empty.match("a", "/") == nullptr);
}

TEST_CASE("router: an empty host matches only *", "[router]") {
  std::vector<Route> routes = {route("example.com", "/", "exact"),
                               route("*.example.com", "/", "wild")};
  {
    const Router router(routes);
    CHECK(router.match("", "/") == nullptr);
  }
  routes.push_back(route("*", "/", "star"));
  const Router router(routes);
  CHECK(pick(router, routes, "", "/") == "star");
  CHECK(pick(router, routes, "", "/deep/path") == "star");
  CHECK(pick(router, routes, "example.com", "/") == "exact");
}

TEST_CASE("router: among identical routes the first declared wins", "[router]") {
  const std::vector<Route> routes = {route("*", "/", "first"), route("*", "/", "second")};
  const Router router(routes);
  CHECK(pick(router, routes, "x", "/") == "first");
}
