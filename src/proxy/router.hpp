// Router: picks the route for a request's host and path.
//
// Rule (the config's public contract): among routes whose host matches, the
// longest path_prefix wins; on equal prefixes an exact host beats a wildcard,
// which beats "*". Prefixes match as plain string prefixes, as in nginx and
// Envoy ("/api" matches "/api/x" and "/apix"; write "/api/" to exclude the latter).
// Pure: built once per config snapshot, no allocation when matching.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace sluice::proxy {

class Router {
 public:
  explicit Router(const std::vector<config::Route>& routes);
  // `host` must be lower case without port ("" when the request had none).
  const config::Route* match(std::string_view host, std::string_view path) const noexcept;

  static bool host_matches(std::string_view pattern, std::string_view host) noexcept;

 private:
  std::vector<const config::Route*> ordered_;  // longest prefix first, then most specific host
};

}  // namespace sluice::proxy
