// The members of an upstream: each address its servers stand for, with the
// health verdict that the active health checks keep for it.
//
// ServerHealth is the one piece of state that crosses threads on the data
// path, and it is a single atomic flag: the main thread's prober writes it,
// every worker's UpstreamPool::pick() reads it (relaxed; it publishes nothing
// else, so no ordering is needed). It is owned through shared_ptr by every
// party that names the server (generations, pools, the prober), so none of
// them has to know when the others let go. A reload that keeps a server
// keeps its ServerHealth: the verdict survives reloads.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/metrics.hpp"

namespace sluice::proxy {

struct ServerHealth {
  // False once `unhealthy` consecutive probes failed, true again after
  // `healthy` consecutive successes. True at start (see README: a start or a
  // reload must not refuse traffic until the first probes are in).
  std::atomic<bool> up{true};
  Counter successes;  // probes, counted by the main thread
  Counter failures;
  bool usable() const noexcept { return up.load(std::memory_order_relaxed); }
};

struct Member {
  std::string name;            // the server as written: "app.internal:8080"
  config::SocketAddress addr;  // one address it resolved to
  std::shared_ptr<ServerHealth> health;  // never null
};

using Members = std::vector<Member>;
// Per upstream (index as in its Config's upstreams), shared read-only.
using MemberLists = std::vector<std::shared_ptr<const Members>>;

// "host:port" or "[v6]:port" as written -> "host" / "v6" (SNI, certificate names).
inline std::string_view host_of(std::string_view name) noexcept {
  if (!name.empty() && name.front() == '[') {
    std::size_t close = name.find(']');
    return close == std::string_view::npos ? name : name.substr(1, close - 1);
  }
  std::size_t colon = name.rfind(':');
  return colon == std::string_view::npos ? name : name.substr(0, colon);
}

// Pure (no I/O, no loop): what a name's new answer changes.
struct AddressChange {
  std::vector<config::SocketAddress> added;    // in `after`, not in `before`
  std::vector<config::SocketAddress> removed;  // in `before`, not in `after`
  bool empty() const noexcept { return added.empty() && removed.empty(); }
};
AddressChange diff_addresses(const std::vector<config::SocketAddress>& before,
                             const std::vector<config::SocketAddress>& after);
// "127.0.0.1:80,127.0.0.2:80" ("-" for none), for log lines.
std::string address_list(const std::vector<config::SocketAddress>& addrs);

// Pure: the members of upstream `u` when its servers stand for `addrs` (one
// list per server, index as in u.servers; each list in sort_addresses()
// order), in server order. A member that is in `before` (same server as
// written and address) keeps its ServerHealth, so its verdict and probe
// history go on; a new one starts healthy.
Members members_for(const config::Upstream& u,
                    const std::vector<std::vector<config::SocketAddress>>& addrs,
                    const Members& before);

}  // namespace sluice::proxy
