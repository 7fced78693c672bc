// Generation: see generation.hpp.
#include "proxy/generation.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::proxy {

namespace {
bool same_tls(const config::UpstreamTls& a, const config::UpstreamTls& b) {
  return a.enabled == b.enabled && a.verify == b.verify && a.ca == b.ca &&
         a.server_name == b.server_name && a.cert == b.cert && a.key == b.key;
}
// The health cell `live` (the members of `previous`'s upstreams as they are
// now, DNS changes included) kept for this server of upstream `name`, or a
// fresh one.
std::shared_ptr<ServerHealth> health_for(const Generation* previous, const MemberLists* live,
                                         const std::string& name,
                                         const config::UpstreamServer& server,
                                         const config::SocketAddress& addr) {
  if (previous) {
    const config::Config& pc = *previous->config;
    const MemberLists& lists = live ? *live : previous->members;
    for (std::size_t i = 0; i < pc.upstreams.size() && i < lists.size(); ++i) {
      if (pc.upstreams[i].name != name) continue;
      for (const Member& m : *lists[i]) {
        if (m.name == server.name && config::same_address(m.addr, addr)) return m.health;
      }
    }
  }
  return std::make_shared<ServerHealth>();
}
}  // namespace

bool same_servers(const config::Upstream& a, const config::Upstream& b) {
  if (a.name != b.name || a.servers.size() != b.servers.size() || !same_tls(a.tls, b.tls)) {
    return false;
  }
  // On the servers as written, not on what they resolved to: a name's
  // addresses change under a running pool (the resolver moves its members in
  // place), and a reload that finds them changed again is no reason to
  // replace the pool and retire its WebSocket sessions. A literal's address
  // is its name.
  for (std::size_t i = 0; i < a.servers.size(); ++i) {
    if (a.servers[i].name != b.servers[i].name) return false;
  }
  return true;
}

MemberLists Generation::members_of(const config::Config& c, const Generation* previous,
                                   const MemberLists* live) {
  std::vector<std::shared_ptr<const Members>> out;
  for (const config::Upstream& u : c.upstreams) {
    auto members = std::make_shared<Members>();
    for (const config::UpstreamServer& s : u.servers) {
      for (const config::SocketAddress& a : s.addrs) {
        members->push_back(Member{s.name, a, health_for(previous, live, u.name, s, a)});
      }
    }
    out.push_back(std::move(members));
  }
  return out;
}

std::shared_ptr<const Generation> Generation::build(std::shared_ptr<const config::Config> config,
                                                    const Generation* previous,
                                                    std::string& error,
                                                    const MemberLists* live) {
  auto g = std::make_shared<Generation>();
  g->config = std::move(config);
  g->number = previous ? previous->number + 1 : 1;
  const config::Config& c = *g->config;
  for (std::size_t i = 0; i < c.listeners.size(); ++i) {
    const config::Listener& l = c.listeners[i];
    if (!l.tls) {
      g->listener_tls.push_back(nullptr);
      continue;
    }
    std::string why;
    auto ctx = net::TlsServerContext::build(*l.tls, why);
    if (!ctx) {
      error = "listener[" + std::to_string(i) + "].tls: " + why;
      return nullptr;
    }
    if (previous) {
      const config::Config& pc = *previous->config;
      for (std::size_t j = 0; j < pc.listeners.size(); ++j) {
        const net::TlsServerContext* old = previous->listener_context(j);
        if (old && config::same_address(pc.listeners[j].addr, l.addr)) ctx->adopt_ticket_secret(*old);
      }
    }
    g->listener_tls.push_back(std::move(ctx));
  }
  g->members = members_of(c, previous, live);
  for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
    const config::Upstream& u = c.upstreams[i];
    if (!u.tls.enabled) {
      g->upstream_tls.push_back(nullptr);
      continue;
    }
    std::string why;
    auto ctx = net::TlsClientContext::build(u.tls, why);
    if (!ctx) {
      error = "upstream[" + std::to_string(i) + "].tls: " + why;
      return nullptr;
    }
    g->upstream_tls.push_back(std::move(ctx));
  }
  return g;
}

}  // namespace sluice::proxy
