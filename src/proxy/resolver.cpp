// Resolver: see resolver.hpp.
#include "proxy/resolver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "core/log.hpp"

namespace sluice::proxy {

namespace {
std::uint16_t port_of(const config::SocketAddress& a) noexcept {
  if (a.storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_port);
}
}  // namespace

// One server written as a name. Owned by the Resolver while current; once
// retired (reload, close) it owns itself and is freed when its timer has
// closed and no lookup is in flight (a uv_getaddrinfo cannot be withdrawn
// once the threadpool has started it).
struct Resolver::Name {
  Resolver* owner = nullptr;  // null once retired
  std::uint64_t epoch = 0;    // the owner's epoch when made
  std::size_t upstream = 0;   // index in the owner's generation
  std::size_t server = 0;     // index in that upstream's servers
  std::string host;           // as written, without the port
  std::uint16_t port = 0;
  std::vector<config::SocketAddress> addrs;  // last known, sorted; never empty
  uv_timer_t timer{};
  uv_getaddrinfo_t req{};
  bool in_flight = false;
  bool timer_open = false;
  bool failing = false;  // the last lookup failed (warned once for the streak)

  void retire() {
    owner = nullptr;
    if (timer_open) {
      uv_timer_stop(&timer);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), [](uv_handle_t* h) {
        auto* n = static_cast<Name*>(h->data);
        n->timer_open = false;
        n->free_if_quiet();
      });
    }
  }
  void free_if_quiet() {
    if (!owner && !timer_open && !in_flight) delete this;
  }
};

Resolver::~Resolver() { retire_all(); }

void Resolver::retire_all() {
  for (Name* n : names_) n->retire();
  names_.clear();
}

void Resolver::apply(std::shared_ptr<const Generation> gen) {
  if (closed_) return;
  retire_all();
  ++epoch_;
  gen_ = std::move(gen);
  members_ = gen_->members;
  const config::Config& c = *gen_->config;
  for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
    const config::Upstream& u = c.upstreams[i];
    for (std::size_t j = 0; j < u.servers.size(); ++j) {
      const config::UpstreamServer& s = u.servers[j];
      if (s.literal || s.addrs.empty()) continue;
      auto* n = new Name;
      n->owner = this;
      n->epoch = epoch_;
      n->upstream = i;
      n->server = j;
      n->host = std::string(host_of(s.name));
      n->port = port_of(s.addrs.front());
      n->addrs = s.addrs;
      uv_timer_init(loop_, &n->timer);
      n->timer.data = n;
      n->req.data = n;
      n->timer_open = true;
      const auto every = static_cast<std::uint64_t>(u.resolve_interval.count());
      uv_timer_start(&n->timer, on_tick, every, every);
      names_.push_back(n);
    }
  }
}

void Resolver::close() {
  if (closed_) return;
  closed_ = true;
  retire_all();
}

void Resolver::on_tick(uv_timer_t* t) noexcept {
  auto* n = static_cast<Name*>(t->data);
  if (n->in_flight || !n->owner) return;  // never two lookups of one name at once
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const int r = uv_getaddrinfo(n->owner->loop_, &n->req, on_answer, n->host.c_str(), nullptr,
                               &hints);
  if (r != 0) {
    n->owner->answered(*n, r, nullptr);
    return;
  }
  n->in_flight = true;
}

void Resolver::on_answer(uv_getaddrinfo_t* req, int status, addrinfo* answer) noexcept {
  auto* n = static_cast<Name*>(req->data);
  n->in_flight = false;
  Resolver* owner = n->owner;
  // Stale: a reload (or close) retired this name while the lookup ran.
  if (!owner || n->epoch != owner->epoch_) {
    uv_freeaddrinfo(answer);
    n->free_if_quiet();
    return;
  }
  owner->answered(*n, status, answer);
  uv_freeaddrinfo(answer);
}

void Resolver::answered(Name& n, int status, const addrinfo* answer) {
  const config::Upstream& u = gen_->config->upstreams[n.upstream];
  const std::string& server = u.servers[n.server].name;
  std::vector<config::SocketAddress> now;
  if (status == 0) {
    now = config::addresses_of(answer, n.port);
    config::sort_addresses(now);
  }
  if (now.empty()) {
    SLUICE_LOG(Debug, "msg=\"upstream server lookup failed\" upstream=%s server=%s error=\"%s\"",
               u.name.c_str(), server.c_str(),
               status == 0 ? "no IPv4 or IPv6 address" : uv_strerror(status));
    if (!n.failing) {
      SLUICE_LOG(Warn,
                 "msg=\"upstream server name did not resolve, keeping its last known "
                 "addresses\" upstream=%s server=%s error=\"%s\" addresses=%s",
                 u.name.c_str(), server.c_str(),
                 status == 0 ? "no IPv4 or IPv6 address" : uv_strerror(status),
                 address_list(n.addrs).c_str());
    }
    n.failing = true;
    return;
  }
  if (n.failing) {
    SLUICE_LOG(Info, "msg=\"upstream server name resolves again\" upstream=%s server=%s",
               u.name.c_str(), server.c_str());
    n.failing = false;
  }
  const AddressChange change = diff_addresses(n.addrs, now);
  if (change.empty()) return;
  SLUICE_LOG(Info,
             "msg=\"upstream server addresses changed\" upstream=%s server=%s added=%s "
             "removed=%s addresses=%s",
             u.name.c_str(), server.c_str(), address_list(change.added).c_str(),
             address_list(change.removed).c_str(), address_list(now).c_str());
  n.addrs = std::move(now);
  publish(n.upstream);
}

// The upstream's members from every server's current addresses: a name's
// last known set, a literal's own address.
void Resolver::publish(std::size_t upstream) {
  const config::Upstream& u = gen_->config->upstreams[upstream];
  std::vector<std::vector<config::SocketAddress>> addrs;
  for (const config::UpstreamServer& s : u.servers) addrs.push_back(s.addrs);
  for (const Name* n : names_) {
    if (n->upstream == upstream) addrs[n->server] = n->addrs;
  }
  auto members = std::make_shared<const Members>(members_for(u, addrs, *members_[upstream]));
  members_[upstream] = members;
  on_change_(upstream, std::move(members));
}

}  // namespace sluice::proxy
