// Generation: one loaded configuration with everything built from it that
// every worker shares read-only: the Config itself and the TLS contexts of
// its listeners and upstreams.
//
// The first generation is built at start; each successful reload (SIGHUP)
// builds the next one on the main thread, off the data path, and hands it to
// every worker. A generation lives as long as anything still uses it: a
// worker's view of it (and through that, sessions that started under it), or
// an upstream pool bound to it. Nothing in it changes after build().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/tls.hpp"
#include "proxy/members.hpp"

namespace sluice::proxy {

struct Generation {
  std::shared_ptr<const config::Config> config;
  // Per listener (index as in config->listeners); nullptr for plain TCP.
  std::vector<std::unique_ptr<net::TlsServerContext>> listener_tls;
  // Per upstream (index as in config->upstreams); nullptr without TLS.
  std::vector<std::unique_ptr<net::TlsClientContext>> upstream_tls;
  // Per upstream: its members as the load found them, in the order of its
  // servers. A member that was in `previous` (same upstream name, server and
  // address) shares its ServerHealth with it, so a reload neither resets an
  // ejected server nor forgets its probe history. The resolver (main thread)
  // starts from these and moves on as DNS answers change; pools follow it.
  MemberLists members;
  std::uint64_t number = 1;  // 1 at start, one more for each reload

  // Builds the TLS contexts for `config`. A listener whose address was also a
  // TLS listener in `previous` keeps that listener's ticket secret, so that
  // sessions resume across the reload. On failure returns nullptr and sets
  // `error` ("listener[1].tls: conf/x.pem: cannot load ...").
  // `live`, when given, is what `previous`'s upstreams' members are now (the
  // resolver's current lists, index as in previous->config->upstreams):
  // health cells are shared from it rather than from previous->members, so a
  // member that DNS added keeps its verdict across the reload.
  static std::shared_ptr<const Generation> build(std::shared_ptr<const config::Config> config,
                                                 const Generation* previous, std::string& error,
                                                 const MemberLists* live = nullptr);

  // The members of every upstream of `config` as loaded (each address of each
  // server), sharing health cells with `previous` (or `live`, as above; both
  // may be null). build() sets them; tests that assemble a Generation by
  // hand call it themselves.
  static MemberLists members_of(const config::Config& config, const Generation* previous,
                                const MemberLists* live = nullptr);

  const net::TlsServerContext* listener_context(std::size_t i) const noexcept {
    return i < listener_tls.size() ? listener_tls[i].get() : nullptr;
  }
  const net::TlsClientContext* upstream_context(std::size_t i) const noexcept {
    return i < upstream_tls.size() ? upstream_tls[i].get() : nullptr;
  }
};

// True when `a` and `b` reach the same servers the same way (name, servers
// as written, TLS settings): a pool for `a` may go on serving `b`, its
// members moved to `b`'s addresses in place. Compared on what was written,
// not on the addresses a name resolved to (those change under a running
// pool). Tunables (balance, keepalive, max_fails, fail_timeout,
// resolve_interval) may differ.
bool same_servers(const config::Upstream& a, const config::Upstream& b);

}  // namespace sluice::proxy
