// Router: see router.hpp.
#include "proxy/router.hpp"

#include <algorithm>

namespace sluice::proxy {

namespace {
int host_rank(std::string_view pattern) noexcept {
  if (pattern == "*") return 0;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') return 1;
  return 2;
}
}  // namespace

Router::Router(const std::vector<config::Route>& routes) {
  ordered_.reserve(routes.size());
  for (const config::Route& r : routes) ordered_.push_back(&r);
  std::stable_sort(ordered_.begin(), ordered_.end(),
                   [](const config::Route* a, const config::Route* b) {
                     if (a->path_prefix.size() != b->path_prefix.size()) {
                       return a->path_prefix.size() > b->path_prefix.size();
                     }
                     return host_rank(a->host) > host_rank(b->host);
                   });
}

bool Router::host_matches(std::string_view pattern, std::string_view host) noexcept {
  if (pattern == "*") return true;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    // "*.example.com" covers "a.example.com" and "a.b.example.com", not "example.com".
    return host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix;
  }
  return pattern == host;
}

const config::Route* Router::match(std::string_view host, std::string_view path) const noexcept {
  for (const config::Route* r : ordered_) {
    if (path.substr(0, r->path_prefix.size()) == r->path_prefix && host_matches(r->host, host)) {
      return r;
    }
  }
  return nullptr;
}

}  // namespace sluice::proxy
