// Active health checks: probes of every upstream server that has a
// health_check, run once per process on the main thread's loop (never on a
// worker's), whose verdicts workers read from each member's ServerHealth.
//
// One Prober per (upstream, member): a repeating timer that starts one Probe
// per interval. A Probe is one fresh connection (TLS when the upstream has
// it), one `GET <path>` (or a WebSocket upgrade), and one response head read
// within `timeout`; it reports success or failure once and frees itself from
// its last close callback. The Prober counts consecutive results and flips
// the member's ServerHealth after `unhealthy` failures or `healthy`
// successes, logging each transition.
//
// It never touches a worker, a session or a pool: the only thing it shares is
// the atomic flag in ServerHealth.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "net/transport.hpp"
#include "proxy/generation.hpp"
#include "proxy/members.hpp"
#include "proxy/metrics.hpp"

namespace sluice::proxy {

class HealthChecker {
 public:
  explicit HealthChecker(uv_loop_t* loop) : loop_(loop), io_(loop) {}
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // At start and after each reload: a prober for each member of every
  // upstream of `gen` with a health_check. A member that already had one
  // (same ServerHealth: the reload kept the server) keeps it, with its timer
  // and its counts, under the new settings; probers of members that are gone
  // stop. Members of upstreams without a health_check are put back in
  // rotation (nothing would ever restore them otherwise).
  //
  // `members` is what each upstream's members are now (the resolver's lists,
  // index as in gen's upstreams); apply() is called again whenever DNS
  // changes them, so new members get probers and vanished ones stop.
  void apply(const std::shared_ptr<const Generation>& gen, const MemberLists& members);
  void apply(const std::shared_ptr<const Generation>& gen) { apply(gen, gen->members); }
  // Stops every prober and probe; the loop holds nothing of this once their
  // close callbacks ran. apply() does nothing afterwards.
  void close();

 private:
  class Prober;
  class Probe;

  uv_loop_t* loop_;
  net::IoContext io_;  // the probes' read blocks and write requests (main thread)
  std::vector<Prober*> probers_;  // each frees itself once stopped
  bool closed_ = false;
};

}  // namespace sluice::proxy
