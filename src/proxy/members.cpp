// Membership helpers: see members.hpp. Pure: no I/O, no loop, no logging.
#include "proxy/members.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::proxy {

namespace {
bool contains(const std::vector<config::SocketAddress>& list, const config::SocketAddress& a) {
  return std::any_of(list.begin(), list.end(),
                     [&](const config::SocketAddress& b) { return config::same_address(a, b); });
}
}  // namespace

AddressChange diff_addresses(const std::vector<config::SocketAddress>& before,
                             const std::vector<config::SocketAddress>& after) {
  AddressChange out;
  for (const config::SocketAddress& a : after) {
    if (!contains(before, a)) out.added.push_back(a);
  }
  for (const config::SocketAddress& b : before) {
    if (!contains(after, b)) out.removed.push_back(b);
  }
  return out;
}

std::string address_list(const std::vector<config::SocketAddress>& addrs) {
  if (addrs.empty()) return "-";
  std::string out;
  for (const config::SocketAddress& a : addrs) {
    if (!out.empty()) out += ',';
    out += a.text;
  }
  return out;
}

Members members_for(const config::Upstream& u,
                    const std::vector<std::vector<config::SocketAddress>>& addrs,
                    const Members& before) {
  Members out;
  for (std::size_t i = 0; i < u.servers.size() && i < addrs.size(); ++i) {
    const std::string& name = u.servers[i].name;
    for (const config::SocketAddress& a : addrs[i]) {
      std::shared_ptr<ServerHealth> health;
      for (const Member& m : before) {
        if (m.name == name && config::same_address(m.addr, a)) {
          health = m.health;
          break;
        }
      }
      if (!health) health = std::make_shared<ServerHealth>();
      out.push_back(Member{name, a, std::move(health)});
    }
  }
  return out;
}

}  // namespace sluice::proxy
